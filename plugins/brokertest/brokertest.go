// Package brokertest is the conformance suite every service broker passes
// (built-in or written with plugins/sdk), and helpers to run a broker under
// test as a real go-plugin subprocess of the test binary.
//
// Typical use in a broker's external test package:
//
//	func TestMain(m *testing.M) {
//		brokertest.ServeChild(func() broker.Broker { return mybroker.New(sdk.Logger("mybroker")) })
//		os.Exit(m.Run())
//	}
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, func(t testing.TB) broker.Broker {
//			return brokertest.Subprocess(t, "mybroker", settings)
//		}, brokertest.Checker{Use: ..., Trespass: ...})
//	}
package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/plugins"
	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/hashicorp/go-hclog"
)

// Checker proves, with a real client of the backing server, what a binding's
// credentials can and cannot do. Nil functions skip those checks (with a
// logged reason).
type Checker struct {
	// Use connects with a binding's credentials and does what an app does
	// (write a value, read it back) on its own instance. It returns an error
	// when the server refuses.
	Use func(ctx context.Context, creds map[string]string) error
	// Isolated connects with creds and tries to reach the data of the
	// instance that other (a binding of another instance) belongs to. It
	// returns nil when the server refused every attempt, and an error saying
	// what got through (or what went wrong) otherwise.
	Isolated func(ctx context.Context, creds, other map[string]string) error
	// Persistent says the broker keeps its state in the backing server, so
	// a second broker from newBroker (a new process) sees the instances the
	// first one made.
	Persistent bool
}

const childEnv = "BERTH_BROKERTEST_CHILD"

// ServeChild must be called first thing in TestMain. When the test binary
// was started as a broker plugin by Subprocess, it serves newImpl() and
// exits; otherwise it returns at once.
func ServeChild(newImpl func() broker.Broker) {
	if os.Getenv(childEnv) == "" && !strings.HasPrefix(filepath.Base(os.Args[0]), plugins.ExternalPrefix) {
		return
	}
	sdk.Serve(newImpl())
	os.Exit(0)
}

// Options tune Subprocess.
type Options struct {
	CallTimeout time.Duration // default 20s
}

// Subprocess starts the test binary as broker plugin name through a real
// plugins.Manager (go-plugin, gRPC, AutoMTLS) and returns the configured
// broker. Built-in names go through ManagerConfig.Command; other names are
// found as <tempdir>/berth-broker-<name>, a symlink to the test binary.
// The process is killed when the test ends.
func Subprocess(t testing.TB, name string, settings map[string]string) broker.Broker {
	b, _ := SubprocessManager(t, name, settings, Options{})
	return b
}

// SubprocessManager is Subprocess returning the Manager too.
func SubprocessManager(t testing.TB, name string, settings map[string]string, opt Options) (broker.Broker, *plugins.Manager) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if !plugins.IsBuiltin(name) {
		if err := os.Symlink(self, filepath.Join(dir, plugins.ExternalPrefix+name)); err != nil {
			t.Fatal(err)
		}
	}
	if opt.CallTimeout == 0 {
		opt.CallTimeout = 20 * time.Second
	}
	m := plugins.NewManager(plugins.ManagerConfig{
		PluginDir: dir,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "brokertest", Level: hclog.Info, Output: testWriter{t},
		}),
		Command: func(string) (*exec.Cmd, error) {
			cmd := exec.Command(self)
			cmd.Env = append(os.Environ(), childEnv+"=1")
			return cmd, nil
		},
		CallTimeout: opt.CallTimeout,
	})
	t.Cleanup(m.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := m.Broker(ctx, "test-"+name+"-"+RandomID(""), name, settings)
	if err != nil {
		t.Fatalf("starting broker %s: %v", name, err)
	}
	return b, m
}

// testWriter sends plugin logs to t.Log (until the test ends).
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // logging after the test ended panics
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// RandomID returns prefix followed by 8 random hex digits, a valid ID.
func RandomID(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Run runs the conformance suite against the brokers newBroker returns.
func Run(t *testing.T, newBroker func(t testing.TB) broker.Broker, check Checker) {
	b := newBroker(t)
	ctx := ctxT(t)

	cat, err := b.Catalog(ctx)
	if err != nil {
		t.Fatalf("Catalog: %v", err)
	}
	svc, plan := firstPlan(t, cat)

	// provision makes an instance that is deprovisioned when the test ends.
	provision := func(t *testing.T, params map[string]string) string {
		t.Helper()
		id := RandomID("bt-")
		resp, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id, ServiceID: svc, PlanID: plan, Params: params})
		if err != nil {
			t.Fatalf("Provision %s: %v", id, err)
		}
		if resp.AlreadyExisted {
			t.Fatalf("Provision of new instance %s says AlreadyExisted", id)
		}
		t.Cleanup(func() {
			_, err := b.Deprovision(context.Background(), broker.DeprovisionRequest{InstanceID: id})
			if err != nil && !errors.Is(err, broker.ErrGone) {
				t.Errorf("cleanup: Deprovision %s: %v", id, err)
			}
		})
		waitOp(t, ctx, b, id, resp.Async, resp.Operation)
		return id
	}
	bind := func(t *testing.T, instance, binding string) map[string]string {
		t.Helper()
		resp, err := b.Bind(ctx, broker.BindRequest{InstanceID: instance, BindingID: binding, AppName: "app-" + binding})
		if err != nil {
			t.Fatalf("Bind %s/%s: %v", instance, binding, err)
		}
		if len(resp.Credentials) == 0 {
			t.Fatalf("Bind %s/%s returned no credentials", instance, binding)
		}
		return resp.Credentials
	}

	t.Run("Catalog", func(t *testing.T) {
		for _, s := range cat.Services {
			if s.ID == "" || s.Name == "" || len(s.Plans) == 0 {
				t.Errorf("service %+v lacks an ID, a name or plans", s)
			}
			for _, p := range s.Plans {
				if p.ID == "" || p.Name == "" {
					t.Errorf("service %s: plan %+v lacks an ID or a name", s.ID, p)
				}
			}
		}
	})

	t.Run("ProvisionIdempotent", func(t *testing.T) {
		params := map[string]string{"note": "first"}
		id := provision(t, params)
		again, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id, ServiceID: svc, PlanID: plan, Params: params})
		if err != nil {
			t.Fatalf("second Provision with the same parameters: %v", err)
		}
		if !again.AlreadyExisted {
			t.Errorf("second Provision with the same parameters: AlreadyExisted = false")
		}
		_, err = b.Provision(ctx, broker.ProvisionRequest{InstanceID: id, ServiceID: svc, PlanID: plan, Params: map[string]string{"note": "other"}})
		if !errors.Is(err, broker.ErrConflict) {
			t.Errorf("Provision with different parameters: err = %v, want ErrConflict", err)
		}
		lo, err := b.LastOperation(ctx, broker.LastOperationRequest{InstanceID: id})
		if err != nil || lo.State != broker.StateSucceeded {
			t.Errorf("LastOperation on a provisioned instance = %+v, %v; want succeeded", lo, err)
		}
	})

	t.Run("ProvisionConcurrent", func(t *testing.T) {
		id := RandomID("bt-")
		t.Cleanup(func() { _, _ = b.Deprovision(context.Background(), broker.DeprovisionRequest{InstanceID: id}) })
		const n = 4
		var wg sync.WaitGroup
		results := make([]*broker.ProvisionResponse, n)
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				results[i], errs[i] = b.Provision(ctx, broker.ProvisionRequest{InstanceID: id, ServiceID: svc, PlanID: plan})
			}(i)
		}
		wg.Wait()
		created := 0
		for i := 0; i < n; i++ {
			if errs[i] != nil {
				t.Errorf("concurrent Provision %d: %v", i, errs[i])
				continue
			}
			if !results[i].AlreadyExisted {
				created++
			}
		}
		if created != 1 && !t.Failed() {
			t.Errorf("%d of %d concurrent Provisions of one ID say they created it, want 1", created, n)
		}
	})

	t.Run("BindConcurrent", func(t *testing.T) {
		id := provision(t, nil)
		bid := RandomID("bc-")
		const n = 4
		var wg sync.WaitGroup
		results := make([]*broker.BindResponse, n)
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				results[i], errs[i] = b.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: bid, AppName: "app"})
			}(i)
		}
		wg.Wait()
		created := 0
		for i := 0; i < n; i++ {
			if errs[i] != nil {
				t.Fatalf("concurrent Bind %d: %v", i, errs[i])
			}
			if !results[i].AlreadyExisted {
				created++
			}
			if !broker.EqualParams(results[i].Credentials, results[0].Credentials) {
				t.Errorf("concurrent Binds of one ID returned different credentials")
			}
		}
		if created != 1 {
			t.Errorf("%d of %d concurrent Binds of one ID say they created it, want 1", created, n)
		}
		if check.Use != nil {
			if err := check.Use(ctx, results[0].Credentials); err != nil {
				t.Errorf("credentials from concurrent Binds do not work: %v", err)
			}
		}
	})

	t.Run("BindUnbind", func(t *testing.T) {
		id := provision(t, nil)
		bid := RandomID("bb-")
		creds := bind(t, id, bid)
		again, err := b.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: bid, AppName: "app-" + bid})
		if err != nil {
			t.Fatalf("second Bind with the same parameters: %v", err)
		}
		if !again.AlreadyExisted {
			t.Errorf("second Bind: AlreadyExisted = false")
		}
		if !broker.EqualParams(again.Credentials, creds) {
			t.Errorf("second Bind returned other credentials (keys %v vs %v)", keys(again.Credentials), keys(creds))
		}
		_, err = b.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: bid, AppName: "another-app"})
		if !errors.Is(err, broker.ErrConflict) {
			t.Errorf("Bind of the same ID for another app: err = %v, want ErrConflict", err)
		}
		if check.Use != nil {
			if err := check.Use(ctx, creds); err != nil {
				t.Fatalf("binding credentials do not work: %v", err)
			}
		} else {
			t.Log("no Checker.Use: not proving that credentials work")
		}
		if err := b.Unbind(ctx, broker.UnbindRequest{InstanceID: id, BindingID: bid}); err != nil {
			t.Fatalf("Unbind: %v", err)
		}
		if check.Use != nil {
			if err := check.Use(ctx, creds); err == nil {
				t.Errorf("credentials still work after Unbind")
			}
		}
		if err := b.Unbind(ctx, broker.UnbindRequest{InstanceID: id, BindingID: bid}); !errors.Is(err, broker.ErrGone) {
			t.Errorf("second Unbind: err = %v, want ErrGone", err)
		}
		if err := b.Unbind(ctx, broker.UnbindRequest{InstanceID: id, BindingID: RandomID("never-")}); !errors.Is(err, broker.ErrGone) {
			t.Errorf("Unbind of a binding that never existed: err = %v, want ErrGone", err)
		}
		// A binding ID can be used again after Unbind.
		creds2 := bind(t, id, bid)
		if check.Use != nil {
			if err := check.Use(ctx, creds2); err != nil {
				t.Errorf("credentials of a re-made binding do not work: %v", err)
			}
		}
	})

	t.Run("BindMissingInstance", func(t *testing.T) {
		_, err := b.Bind(ctx, broker.BindRequest{InstanceID: RandomID("missing-"), BindingID: "b1", AppName: "app"})
		if !errors.Is(err, broker.ErrNotFound) {
			t.Errorf("Bind on a missing instance: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("Isolation", func(t *testing.T) {
		a, c := provision(t, nil), provision(t, nil)
		credsA, credsC := bind(t, a, RandomID("ba-")), bind(t, c, RandomID("bc-"))
		if check.Use == nil || check.Isolated == nil {
			t.Skip("no Checker.Use/Isolated: cannot prove isolation with a real client")
		}
		if err := check.Use(ctx, credsA); err != nil {
			t.Fatalf("instance A's credentials do not work: %v", err)
		}
		if err := check.Use(ctx, credsC); err != nil {
			t.Fatalf("instance C's credentials do not work: %v", err)
		}
		if err := check.Isolated(ctx, credsA, credsC); err != nil {
			t.Errorf("instance A's credentials on instance C: %v", err)
		}
		if err := check.Isolated(ctx, credsC, credsA); err != nil {
			t.Errorf("instance C's credentials on instance A: %v", err)
		}
	})

	t.Run("Deprovision", func(t *testing.T) {
		id := provision(t, nil)
		creds := bind(t, id, RandomID("bd-"))
		resp, err := b.Deprovision(ctx, broker.DeprovisionRequest{InstanceID: id})
		if err != nil {
			t.Fatalf("Deprovision: %v", err)
		}
		waitOpGone(t, ctx, b, id, resp.Async, resp.Operation)
		if _, err := b.Deprovision(ctx, broker.DeprovisionRequest{InstanceID: id}); !errors.Is(err, broker.ErrGone) {
			t.Errorf("second Deprovision: err = %v, want ErrGone", err)
		}
		if _, err := b.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: "b1", AppName: "app"}); !errors.Is(err, broker.ErrNotFound) {
			t.Errorf("Bind after Deprovision: err = %v, want ErrNotFound", err)
		}
		if _, err := b.LastOperation(ctx, broker.LastOperationRequest{InstanceID: id}); !errors.Is(err, broker.ErrGone) {
			t.Errorf("LastOperation after Deprovision: err = %v, want ErrGone", err)
		}
		if check.Use != nil {
			if err := check.Use(ctx, creds); err == nil {
				t.Errorf("a binding's credentials still work after Deprovision")
			}
		}
		// The ID can be provisioned again, from scratch.
		again, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id, ServiceID: svc, PlanID: plan})
		if err != nil || again.AlreadyExisted {
			t.Errorf("Provision after Deprovision = %+v, %v; want a new instance", again, err)
		}
	})

	t.Run("InvalidIDs", func(t *testing.T) {
		good := provision(t, nil)
		for _, bad := range []string{"", "Upper", "under_score", "../etc", "a/b", "a b", "x;drop", strings.Repeat("a", 64)} {
			if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: bad, ServiceID: svc, PlanID: plan}); !errors.Is(err, broker.ErrBadRequest) {
				t.Errorf("Provision(%q): err = %v, want ErrBadRequest", bad, err)
			}
			if _, err := b.Deprovision(ctx, broker.DeprovisionRequest{InstanceID: bad}); !errors.Is(err, broker.ErrBadRequest) {
				t.Errorf("Deprovision(%q): err = %v, want ErrBadRequest", bad, err)
			}
			if _, err := b.Bind(ctx, broker.BindRequest{InstanceID: good, BindingID: bad, AppName: "app"}); !errors.Is(err, broker.ErrBadRequest) {
				t.Errorf("Bind(binding %q): err = %v, want ErrBadRequest", bad, err)
			}
			if err := b.Unbind(ctx, broker.UnbindRequest{InstanceID: good, BindingID: bad}); !errors.Is(err, broker.ErrBadRequest) {
				t.Errorf("Unbind(binding %q): err = %v, want ErrBadRequest", bad, err)
			}
		}
		if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: RandomID("bt-"), ServiceID: "no-such-service", PlanID: plan}); !errors.Is(err, broker.ErrBadRequest) {
			t.Errorf("Provision of an unknown service: err = %v, want ErrBadRequest", err)
		}
	})

	t.Run("TwoProcesses", func(t *testing.T) {
		if !check.Persistent {
			t.Skip("Checker.Persistent is false: two broker processes do not share state")
		}
		b2 := newBroker(t)
		id := RandomID("bt-")
		t.Cleanup(func() { _, _ = b.Deprovision(context.Background(), broker.DeprovisionRequest{InstanceID: id}) })
		var wg sync.WaitGroup
		results := make([]*broker.ProvisionResponse, 4)
		errs := make([]error, 4)
		for i, bb := range []broker.Broker{b, b2, b, b2} {
			wg.Add(1)
			go func(i int, bb broker.Broker) {
				defer wg.Done()
				results[i], errs[i] = bb.Provision(ctx, broker.ProvisionRequest{InstanceID: id, ServiceID: svc, PlanID: plan})
			}(i, bb)
		}
		wg.Wait()
		created := 0
		for i := range results {
			if errs[i] != nil {
				t.Fatalf("Provision %d from two processes: %v", i, errs[i])
			}
			if !results[i].AlreadyExisted {
				created++
			}
		}
		if created != 1 {
			t.Errorf("%d of 4 Provisions of one ID from two processes say they created it, want 1", created)
		}
		if _, err := b2.Deprovision(ctx, broker.DeprovisionRequest{InstanceID: id}); err != nil {
			t.Fatalf("Deprovision from the second process: %v", err)
		}
		if _, err := b.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: "b1", AppName: "app"}); !errors.Is(err, broker.ErrNotFound) {
			t.Errorf("first process still sees the instance the second deprovisioned: err = %v", err)
		}
	})

	t.Run("StateSurvivesRestart", func(t *testing.T) {
		if !check.Persistent {
			t.Skip("Checker.Persistent is false: this broker keeps its state in memory")
		}
		id := provision(t, map[string]string{"note": "kept"})
		bid := RandomID("bp-")
		creds := bind(t, id, bid)
		b2 := newBroker(t)
		again, err := b2.Provision(ctx, broker.ProvisionRequest{InstanceID: id, ServiceID: svc, PlanID: plan, Params: map[string]string{"note": "kept"}})
		if err != nil || !again.AlreadyExisted {
			t.Fatalf("Provision on a new broker process = %+v, %v; want AlreadyExisted", again, err)
		}
		br, err := b2.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: bid, AppName: "app-" + bid})
		if err != nil || !br.AlreadyExisted || !broker.EqualParams(br.Credentials, creds) {
			t.Fatalf("Bind on a new broker process: AlreadyExisted=%v same credentials=%v err=%v",
				br != nil && br.AlreadyExisted, br != nil && broker.EqualParams(br.Credentials, creds), err)
		}
	})
}

func firstPlan(t *testing.T, cat *broker.Catalog) (string, string) {
	t.Helper()
	if cat == nil || len(cat.Services) == 0 || len(cat.Services[0].Plans) == 0 {
		t.Fatalf("Catalog is empty: %+v", cat)
	}
	return cat.Services[0].ID, cat.Services[0].Plans[0].ID
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// waitOp polls LastOperation until an async operation ends.
func waitOp(t *testing.T, ctx context.Context, b broker.Broker, id string, async bool, op string) {
	t.Helper()
	if !async {
		return
	}
	for i := 0; i < 600; i++ {
		lo, err := b.LastOperation(ctx, broker.LastOperationRequest{InstanceID: id, Operation: op})
		if err != nil {
			t.Fatalf("LastOperation(%s): %v", id, err)
		}
		switch lo.State {
		case broker.StateSucceeded:
			return
		case broker.StateFailed:
			t.Fatalf("operation on %s failed: %s", id, lo.Description)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("operation on %s still in progress after 60s", id)
}

// waitOpGone polls an async deprovision until LastOperation says gone.
func waitOpGone(t *testing.T, ctx context.Context, b broker.Broker, id string, async bool, op string) {
	t.Helper()
	if !async {
		return
	}
	for i := 0; i < 600; i++ {
		lo, err := b.LastOperation(ctx, broker.LastOperationRequest{InstanceID: id, Operation: op})
		if errors.Is(err, broker.ErrGone) || (err == nil && lo.State == broker.StateSucceeded) {
			return
		}
		if err != nil {
			t.Fatalf("LastOperation(%s): %v", id, err)
		}
		if lo.State == broker.StateFailed {
			t.Fatalf("deprovision of %s failed: %s", id, lo.Description)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("deprovision of %s still in progress after 60s", id)
}
