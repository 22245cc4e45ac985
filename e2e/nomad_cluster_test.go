package e2e

// Issue 12, defects 1-4 on a real Nomad (gated on NOMAD_ADDR, see
// tools/nomad/README.md): a deploy whose submit fails while Nomad is
// unreachable converges when it returns; reads answer from the last known
// state while Nomad is frozen or down; a job stopped with -purge and
// registered again is not running before its own deployment succeeded;
// two Berth clusters on one Nomad leave each other's jobs alone.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/backends/devagent"
)

// nomadProxy is a TCP proxy in front of the Nomad HTTP API that the test
// can take down (connections refused) or freeze (connections accepted and
// never answered, as a Nomad agent stopped with SIGSTOP does), while the
// Nomad behind it keeps running.
type nomadProxy struct {
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	frozen       bool
	conns        map[net.Conn]bool
	wg           sync.WaitGroup
}

func startNomadProxy(t testing.TB, nomadAddr string) *nomadProxy {
	t.Helper()
	u, err := url.Parse(nomadAddr)
	if err != nil || u.Host == "" {
		t.Fatalf("NOMAD_ADDR %q: %v", nomadAddr, err)
	}
	p := &nomadProxy{target: u.Host, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() {
		p.down()
		p.wg.Wait()
	})
	return p
}

func (p *nomadProxy) URL() string { return "http://" + p.addr }

func (p *nomadProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[c] = true
			frozen := p.frozen
			p.mu.Unlock()
			if frozen {
				continue // held open, never answered, until thawed or down
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.pipe(c)
			}()
		}
	}()
}

func (p *nomadProxy) pipe(c net.Conn) {
	defer p.drop(c)
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.conns[up] = true
	p.mu.Unlock()
	defer p.drop(up)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

func (p *nomadProxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// cut closes every connection under way.
func (p *nomadProxy) cut() {
	p.mu.Lock()
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.conns = map[net.Conn]bool{}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// down stops listening: connections are refused.
func (p *nomadProxy) down() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	p.frozen = false
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	p.cut()
}

// up listens again on the same address.
func (p *nomadProxy) up(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the Nomad proxy could not listen on %s again: %v", p.addr, err)
	}
	p.serve(ln)
}

// freeze: connections are accepted (new ones and, cut now, the pooled
// ones the server reconnects) and never answered.
func (p *nomadProxy) freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
	p.cut()
}

// thaw answers again (held connections are closed).
func (p *nomadProxy) thaw() {
	p.mu.Lock()
	p.frozen = false
	p.mu.Unlock()
	p.cut()
}

// fastSweeps is config for a Berth whose reconciler sweeps every 2s.
const fastSweeps = "reconciler {\n  interval = \"2s\"\n}\n"

// deployNomadApp creates app for u, pushes a release and deploys it,
// waiting until it runs; it returns the release's meta_version.
func deployNomadApp(t *testing.T, b *Berth, u *User, nc *nomadapi.Client, app string) string {
	t.Helper()
	t.Cleanup(func() { _, _, _ = nc.Jobs().DeregisterOpts(app, &nomadapi.DeregisterOptions{Purge: true}, nil) })
	b.createApp(t, u, app)
	mv := metaVersion()
	b.push(t, u, app, nomadRelease(mv, "one"))
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	b.waitNomadRunning(t, u, app, generationOf(t, r))
	return mv
}

// TestNomadSchedulerDown (defects 1 and 3): with Nomad frozen, then
// unreachable, GET /api/v1/apps/:app/ answers 200 from the last known
// state with scheduler_stale; a deploy asked for while Nomad is
// unreachable is not failed, and converges once Nomad answers again (the
// job runs the new version, the deploy is recorded running) without a
// restart of Berth.
func TestNomadSchedulerDown(t *testing.T) {
	addr, nc := nomadEnv(t)
	proxy := startNomadProxy(t, addr)
	b := startBerth(t, Options{ExtraHCL: nomadHCL(proxy.URL()) + fastSweeps + "scheduler_timeout = \"2s\"\n"})
	u := b.newUser(t, "down")
	app := fmt.Sprintf("nd%d", time.Now().UnixNano()%1000000)
	deployNomadApp(t, b, u, nc, app)
	before := b.deployed(t, u, app)
	if before.SchedulerStale != nil {
		t.Fatalf("with Nomad answering, the app's view says the scheduler is stale: %+v", before.SchedulerStale)
	}
	v2 := metaVersion()
	b.push(t, u, app, nomadRelease(v2, "two"))

	// Berth reads Nomad's state from its view fed by the event stream:
	// for up to scheduler_timeout after Nomad stopped answering that view
	// is still shown as current; after that it is shown with its age.
	// Every read answers 200 meanwhile.
	checkStale := func(what string) api.DeployedApp {
		t.Helper()
		var (
			r    *Resp
			v    api.DeployedApp
			took time.Duration
		)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			start := time.Now()
			r = b.do(t, "GET", "/api/v1/apps/"+app+"/", u, nil)
			took = time.Since(start)
			if r.Code != http.StatusOK {
				t.Fatalf("with Nomad %s GET /api/v1/apps/%s/ answered %d: %s", what, app, r.Code, r)
			}
			v = decodeAs[api.DeployedApp](t, r)
			if v.SchedulerStale != nil || time.Now().After(deadline) {
				break
			}
		}
		st := v.SchedulerStale
		if st == nil || st.AsOf == nil || st.Error == "" || st.Since.Before(*st.AsOf) {
			t.Fatalf("with Nomad %s the app's view does not say (within 30s) since when Nomad has not answered and how old its state is: %s", what, r)
		}
		n := 0
		for _, p := range v.Procs {
			n += len(p.Instances)
		}
		if n != 2 || v.State != "running" || v.MetaVersion != before.MetaVersion {
			t.Errorf("with Nomad %s the app's view lost its last known state: %d instances, state %q: %s", what, n, v.State, r)
		}
		t.Logf("with Nomad %s GET /api/v1/apps/%s/ answered in %v: scheduler_stale %+v", what, app, took.Round(time.Millisecond), *st)
		return v
	}

	// Frozen: connections accepted, never answered.
	proxy.freeze()
	checkStale("frozen")
	// Down: connections refused.
	proxy.down()
	checkStale("down")

	// A deploy asked for while Nomad is down...
	r := b.do(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{"meta_version": v2}).want(t, http.StatusAccepted)
	gen := generationOf(t, r)
	time.Sleep(6 * time.Second) // a few submits refused, retried
	v := b.deployed(t, u, app)
	if v.State == "failed" || v.State == "running" {
		t.Fatalf("while Nomad is down the deploy of %s is %s (%s), want it still under way", v2, v.State, v.Message)
	}
	t.Logf("while Nomad is down the deploy is %s: %s", v.State, v.Message)
	if job := nomadJob(t, nc, app); job == nil || job.Meta["berth_meta_version"] == v2 {
		t.Fatalf("the job changed while Berth could not reach Nomad: %+v", job)
	}

	// ... converges when Nomad answers again.
	proxy.up(t)
	v = b.waitNomadRunning(t, u, app, gen)
	if v.MetaVersion != v2 || v.SchedulerStale != nil {
		t.Errorf("after Nomad returned: version %s, stale %+v", v.MetaVersion, v.SchedulerStale)
	}
	if job := nomadJob(t, nc, app); job == nil || job.Meta["berth_meta_version"] != v2 {
		t.Fatalf("after Nomad returned the job does not run %s: %+v", v2, job)
	}
	answers(t, b.runningInstances(t, u, app, "web", 1, true), "/version.txt", "two")
}

// TestNomadRecreatedJob (defect 2): after `nomad job stop -purge`, Berth
// registers the job again (its versions start at 0 again) and does not say
// running before Nomad's deployment of the new job succeeded.
func TestNomadRecreatedJob(t *testing.T) {
	addr, nc := nomadEnv(t)
	b := startBerth(t, Options{ExtraHCL: nomadHCL(addr) + fastSweeps})
	u := b.newUser(t, "purge")
	app := fmt.Sprintf("np%d", time.Now().UnixNano()%1000000)
	deployNomadApp(t, b, u, nc, app)
	old := nomadJob(t, nc, app)

	purged := time.Now()
	if _, _, err := nc.Jobs().DeregisterOpts(app, &nomadapi.DeregisterOptions{Purge: true}, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(nomadTimeout)
	sawDeploying := false
	for {
		v := b.deployed(t, u, app)
		if v.State == "deploying" || v.State == "pending" {
			sawDeploying = true
		}
		if v.State == "failed" {
			t.Fatalf("after the purge the app is failed: %s", v.Message)
		}
		if v.State == "running" && v.Deploy != nil && v.Deploy.Updated.After(purged) {
			job := nomadJob(t, nc, app)
			if job == nil || *job.CreateIndex == *old.CreateIndex {
				t.Fatalf("Berth says running after the purge, but the job was not registered again: %+v", job)
			}
			d, _, err := nc.Jobs().LatestDeployment(app, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d == nil || d.JobCreateIndex != *job.CreateIndex || d.Status != nomadapi.DeploymentStatusSuccessful {
				desc := "none"
				if d != nil {
					desc = fmt.Sprintf("%s (job create index %d, version %d, status %s: %s)", d.ID, d.JobCreateIndex, d.JobVersion, d.Status, d.StatusDescription)
				}
				t.Fatalf("Berth says running while the re-registered job's (create index %d, version %d) deployment is not successful: latest deployment %s",
					*job.CreateIndex, *job.Version, desc)
			}
			t.Logf("re-registered job: create index %d -> %d, version %d; Berth says running after its deployment %s succeeded (%v after the purge)",
				*old.CreateIndex, *job.CreateIndex, *job.Version, d.ID, time.Since(purged).Round(time.Second))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the purged app did not run again within %v: %+v", nomadTimeout, v)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !sawDeploying {
		t.Error("Berth never said the app was being deployed again after the purge")
	}
	b.runningInstances(t, u, app, "web", 1, true)
}

// clusterJob is what the two-clusters test keeps of an app's job.
type clusterJob struct {
	create, modify uint64
	cluster        string
	allocs         []string // running allocations, sorted
}

func readClusterJob(t *testing.T, nc *nomadapi.Client, app string) clusterJob {
	t.Helper()
	job := nomadJob(t, nc, app)
	if job == nil || *job.Stop {
		t.Fatalf("the job of %s is gone or stopped: %+v", app, job)
	}
	allocs, _, err := nc.Jobs().Allocations(app, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	cj := clusterJob{create: *job.CreateIndex, modify: *job.JobModifyIndex, cluster: job.Meta["berth_cluster"]}
	for _, a := range allocs {
		if a.DesiredStatus == "run" && a.ClientStatus == "running" {
			cj.allocs = append(cj.allocs, a.ID)
		}
	}
	sort.Strings(cj.allocs)
	for _, g := range job.TaskGroups {
		if len(g.Services) > 0 && !slices.Contains(g.Services[0].Tags, "berth-cluster="+cj.cluster) {
			t.Errorf("the Consul service of %s/%s has no berth-cluster tag: %q", app, *g.Name, g.Services[0].Tags)
		}
	}
	return cj
}

// TestNomadTwoClusters (defect 4): two Berth clusters (one on bolt, one on
// Consul) on one Nomad each deploy an app; after several sweeps both
// apps' allocations still run, untouched (no re-registration, no new
// allocation), each cluster lists only its own app, and a deploy in one
// cluster of an app whose name the other cluster's job has fails, leaving
// that job alone.
func TestNomadTwoClusters(t *testing.T) {
	addr, nc := nomadEnv(t)
	a := startBerth(t, Options{ExtraHCL: nomadHCL(addr) + fastSweeps})
	b := startBerth(t, Options{Consul: devagent.Consul(t), ExtraHCL: nomadHCL(addr) + fastSweeps})
	ua, ub := a.newUser(t, "blue"), b.newUser(t, "green")
	n := time.Now().UnixNano() % 1000000
	appA, appB := fmt.Sprintf("nca%d", n), fmt.Sprintf("ncb%d", n)
	deployNomadApp(t, a, ua, nc, appA)
	deployNomadApp(t, b, ub, nc, appB)

	ja, jb := readClusterJob(t, nc, appA), readClusterJob(t, nc, appB)
	if ja.cluster == "" || jb.cluster == "" || ja.cluster == jb.cluster {
		t.Fatalf("the two clusters' jobs carry cluster ids %q and %q, want two different ones", ja.cluster, jb.cluster)
	}
	if len(ja.allocs) != 2 || len(jb.allocs) != 2 {
		t.Fatalf("running allocations: %s %v, %s %v; want 2 each", appA, ja.allocs, appB, jb.allocs)
	}
	t.Logf("cluster %s runs %s, cluster %s runs %s", ja.cluster, appA, jb.cluster, appB)

	// Cluster A is asked to deploy an app named as B's: it fails, and B's
	// job is left alone.
	a.createApp(t, ua, appB)
	a.push(t, ua, appB, nomadRelease(metaVersion(), "intruder"))
	r := a.do(t, "POST", "/api/v1/apps/", ua, map[string]any{"appname": appB}).want(t, http.StatusAccepted)
	gen := generationOf(t, r)
	deadline := time.Now().Add(time.Minute)
	for {
		v := a.deployed(t, ua, appB)
		if v.Deploy != nil && v.Deploy.Generation >= gen && v.State == "failed" {
			if !strings.Contains(v.Message, "another Berth cluster") {
				t.Errorf("the refused deploy's message does not say why: %q", v.Message)
			}
			break
		}
		if v.State == "running" {
			t.Fatalf("cluster %s deployed %s over cluster %s's job", ja.cluster, appB, jb.cluster)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deploy of %s in cluster %s did not fail within a minute: %+v", appB, ja.cluster, v)
		}
		time.Sleep(500 * time.Millisecond)
	}

	time.Sleep(12 * time.Second) // six sweeps of each cluster
	for _, c := range []struct {
		app  string
		was  clusterJob
		mine *Berth
		u    *User
	}{{appA, ja, a, ua}, {appB, jb, b, ub}} {
		now := readClusterJob(t, nc, c.app)
		if now.create != c.was.create || now.modify != c.was.modify || now.cluster != c.was.cluster {
			t.Errorf("the job of %s was changed after several sweeps: create %d -> %d, modify %d -> %d, cluster %q -> %q",
				c.app, c.was.create, now.create, c.was.modify, now.modify, c.was.cluster, now.cluster)
		}
		if !slices.Equal(now.allocs, c.was.allocs) {
			t.Errorf("the allocations of %s changed after several sweeps: %v -> %v", c.app, c.was.allocs, now.allocs)
		}
		v := c.mine.deployed(t, c.u, c.app)
		if v.State != "running" {
			t.Errorf("%s is %s in its own cluster: %s", c.app, v.State, v.Message)
		}
	}
	// Each cluster lists only its own apps (A's record of appB is the
	// failed one, with no instance from B's job).
	for _, c := range []struct {
		srv      *Berth
		other    string
		otherJob bool
	}{{a, appB, true}, {b, appA, false}} {
		list := decodeAs[[]api.DeployedApp](t, c.srv.do(t, "GET", "/api/v1/apps/", c.srv.Admin, nil).want(t, http.StatusOK))
		for _, d := range list {
			if d.AppName != c.other {
				continue
			}
			if !c.otherJob {
				t.Errorf("a cluster lists the other cluster's app %s", c.other)
			}
			for _, p := range d.Procs {
				if len(p.Instances) > 0 {
					t.Errorf("a cluster shows instances of the other cluster's job %s: %+v", c.other, p.Instances)
				}
			}
		}
	}
}
