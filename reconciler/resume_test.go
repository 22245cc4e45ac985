package reconciler

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/osb"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// inprocOSB starts the built-in osb broker in process for every call.
type inprocOSB struct{}

func (inprocOSB) Check(string) error { return nil }
func (inprocOSB) Broker(ctx context.Context, _, _ string, s map[string]string) (broker.Broker, error) {
	b := osb.New(nil)
	return b, b.Configure(ctx, s)
}
func (inprocOSB) Stop(string) {}

// TestResumeOperationsAtStart: an instance left provisioning with a
// pending asynchronous operation (Berth stopped while its external OSB
// broker worked) is polled as soon as the reconciler starts, not one
// reconciler interval later.
func TestResumeOperationsAtStart(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/v2/catalog":
			fmt.Fprint(w, `{"services":[{"id":"s1","name":"x","description":"d","bindable":true,"plans":[{"id":"p1","name":"p","description":"d"}]}]}`)
		case strings.HasSuffix(r.URL.Path, "/last_operation") && r.URL.Query().Get("operation") == "op-7":
			fmt.Fprint(w, `{"state":"succeeded"}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"description":"unexpected"}`)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Reconcile.IntervalDur = time.Hour // no sweep during the test
	cfg.BrokerTargets = []*config.BrokerTarget{{Name: "ext", Broker: "osb", Resolved: map[string]string{"url": srv.URL}}}
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Deps{Config: cfg, Store: st, StoreName: "bolt", Secrets: sec, SecretsName: "sealed", Brokers: inprocOSB{},
		Scheduler: reconcilertest.NewMemScheduler(), SchedulerName: "mem"})
	if err != nil {
		t.Fatal(err)
	}
	rec := New(eng)
	defer func() { rec.Close(); eng.Close(); _ = sec.Close(); _ = st.Close() }()
	ctx := context.Background()
	admin := &engine.Identity{Email: "admin@berth.local", Admin: true}
	if _, err := eng.CreateTeam(ctx, admin, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.CreateService(ctx, admin, strings.NewReader("id: ext\nbroker: osb\ntarget: ext\nteam: ops\n")); err != nil {
		t.Fatal(err)
	}
	// What a Berth that stopped mid-operation left.
	inst := &state.ServiceInstance{Name: "pending-1", ServiceName: "ext", Teams: []string{"ops"}, Apps: []string{},
		State: state.InstanceProvisioning, Created: time.Now().UTC(), Async: true, Operation: "op-7", OperationStarted: time.Now().UTC()}
	if _, err := state.Create(ctx, st, state.InstanceKey("pending-1"), inst); err != nil {
		t.Fatal(err)
	}
	rec.Start()
	waitFor(t, "the pending provision to be polled to its end", func() bool {
		got, _, err := state.Get[state.ServiceInstance](ctx, st, state.InstanceKey("pending-1"))
		return err == nil && got.State == state.InstanceReady && !got.Async
	})
}
