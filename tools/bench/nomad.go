package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"
	napi "github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/nomad"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
	"github.com/berthpaas/berth/server"
)

// deployRounds is how many apps the deploy row deploys (the median counts).
const deployRounds = 5

// runOnly measures one row alone (-only): "deploy" is the deploy row, on
// a Consul of its own, without seeding the fleet.
func (b *bench) runOnly(what string) error {
	if what != "deploy" {
		return fmt.Errorf("-only %q: the rows measured alone are: deploy", what)
	}
	if os.Getenv("NOMAD_ADDR") == "" {
		return errors.New("-only deploy needs NOMAD_ADDR (a Nomad of your own: see tools/nomad/README.md)")
	}
	var err error
	if b.tmp, err = os.MkdirTemp("", "berth-bench-"); err != nil {
		return err
	}
	b.cleanups = append(b.cleanups, func() { os.RemoveAll(b.tmp) })
	if err := b.startConsul(); err != nil {
		return err
	}
	return b.deployToRegistered()
}

// deployToRegistered measures, on the Nomad at NOMAD_ADDR, the time from a
// deploy accepted by Berth (POST /api/v1/apps/ answered 202) until Nomad
// has the app's job at the release's version, against a direct
// Jobs().Register of the same job under another id. Berth runs in process
// on a Consul prefix of its own, with its reconciler (it takes the lock of
// that prefix at once).
func (b *bench) deployToRegistered() error {
	addr := os.Getenv("NOMAD_ADDR")
	nc, err := napi.NewClient(&napi.Config{Address: addr, SecretID: os.Getenv("NOMAD_TOKEN")})
	if err != nil {
		return err
	}
	prefix := fmt.Sprintf("berth-bench-nomad/%d/", time.Now().UnixNano())
	cluster := fmt.Sprintf("berth-bench-%d", time.Now().UnixNano())
	st, err := b.storeAt(prefix)
	if err != nil {
		return err
	}
	sched, err := nomad.New(nomad.Config{Address: addr, Token: os.Getenv("NOMAD_TOKEN"), RawExec: true, ClusterID: cluster, Logger: hclog.NewNullLogger()})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(b.tmp, "nomad-server-")
	if err != nil {
		return err
	}
	cfg := config.Default()
	cfg.DataDir, cfg.ClusterID = dir, cluster
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		return err
	}
	b.cleanups = append(b.cleanups, func() { sec.Close() })
	s, err := server.New(server.Deps{Config: cfg, Logger: hclog.NewNullLogger(), Store: st, StoreName: "consul", Secrets: sec, SecretsName: "sealed", Scheduler: sched, SchedulerName: "nomad"})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	s.Start()
	var jobs []string
	b.cleanups = append(b.cleanups, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		s.Close()
		sched.Close()
		for _, j := range jobs {
			_, _, _ = nc.Jobs().Deregister(j, true, nil)
		}
	})
	base := "http://" + ln.Addr().String()
	ctx := context.Background()
	if _, err := state.Create(ctx, st, state.UserKey(reconcilertest.Owner), &state.User{ID: state.NewID(), Email: reconcilertest.Owner, Admin: true, Created: time.Now().UTC()}); err != nil {
		return err
	}
	tok, _, err := s.Engine().IssueToken(ctx, reconcilertest.Owner, engine.TokenUser, "", time.Hour)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	b.cleanups = append(b.cleanups, hc.CloseIdleConnections)

	var berthT, directT []time.Duration
	for i := 0; i < deployRounds; i++ {
		app := fmt.Sprintf("bench-deploy-%d", i)
		mv := reconcilertest.MV
		// One worker proc that sleeps: registration is what is timed, not
		// the allocation.
		rel := &state.Release{App: app, MetaVersion: mv, Pushed: time.Now().UTC(), PushedBy: reconcilertest.Owner,
			Spec: release.Spec{AppName: app, Procs: []release.Proc{{Name: "worker", Type: backends.ProcWorker, Cmd: "sleep 600", NumInstances: 1, CPU: 0.1, MemoryMB: 32}}}}
		av, _ := json.Marshal(reconcilertest.App(app, mv, false))
		rv, _ := json.Marshal(rel)
		if _, err := st.Txn(ctx, []backends.TxnOp{
			{Verb: backends.TxnSet, Key: state.AppKey(app), Value: av},
			{Verb: backends.TxnSet, Key: state.ReleaseKey(app, mv), Value: rv},
		}); err != nil {
			return err
		}
		jobs = append(jobs, app)
		if err := send(hc, "POST", base+"/api/v1/apps/", tok, fmt.Sprintf(`{"appname":%q}`, app)); err != nil {
			return err
		}
		accepted := time.Now()
		job, err := waitJob(nc, app, mv, 60*time.Second)
		if err != nil {
			return err
		}
		berthT = append(berthT, time.Since(accepted))

		// The same job, registered directly under another id.
		direct := app + "-direct"
		job.ID, job.Name = &direct, &direct
		job.Version, job.ModifyIndex, job.CreateIndex, job.JobModifyIndex = nil, nil, nil, nil
		job.Status, job.StatusDescription, job.SubmitTime, job.Stable = nil, nil, nil, nil
		jobs = append(jobs, direct)
		t := time.Now()
		if _, _, err := nc.Jobs().Register(job, nil); err != nil {
			return fmt.Errorf("nomad: registering %s: %w", direct, err)
		}
		if _, err := waitJob(nc, direct, mv, 60*time.Second); err != nil {
			return err
		}
		directT = append(directT, time.Since(t))
	}
	bm, dm := median(berthT), median(directT)
	b.add(row{name: "deploy accepted -> job registered", berth: ms(bm), base: ms(dm), hasBase: true, unit: "ms", goal: "ratio <= 1.1", met: yes(bm <= dm*11/10),
		note: fmt.Sprintf("median of %d deploys (POST /api/v1/apps/ answered, until Nomad has the job at the release's meta_version, polled every 2 ms) vs Jobs().Register of the same job until Nomad has it; Nomad at %s", deployRounds, addr)})
	return nil
}

// waitJob polls Nomad until job id exists with meta berth_meta_version mv.
func waitJob(nc *napi.Client, id, mv string, limit time.Duration) (*napi.Job, error) {
	deadline := time.Now().Add(limit)
	for {
		job, _, err := nc.Jobs().Info(id, nil)
		if err == nil && job != nil && job.Meta["berth_meta_version"] == mv {
			return job, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("nomad: job %s at %s not registered within %v (last error: %v)", id, mv, limit, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
