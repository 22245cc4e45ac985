package nomad

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/schedulertest"
)

const skipMsg = "NOMAD_ADDR not set: skipping real Nomad test"

func realConfig(t testing.TB) Config {
	t.Helper()
	addr := os.Getenv("NOMAD_ADDR")
	if addr == "" {
		fmt.Println(skipMsg)
		t.Skip(skipMsg)
	}
	return Config{
		Address:   addr,
		Token:     os.Getenv("NOMAD_TOKEN"),
		Region:    os.Getenv("NOMAD_REGION"),
		Namespace: os.Getenv("NOMAD_NAMESPACE"),
		RawExec:   os.Getenv("BERTH_NOMAD_EXEC") == "", // raw_exec unless told to use exec
		Logger:    hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: os.Stderr}),
	}
}

// testApp is a web proc any Nomad client with python3 can run.
func testApp(t testing.TB, name string) *backends.AppSpec {
	return &backends.AppSpec{
		App:         name,
		MetaVersion: "v1",
		Procs: []backends.ProcSpec{
			{Name: "web", Type: backends.ProcWeb, Cmd: "exec python3 -m http.server --bind 0.0.0.0 $PORT", Instances: 1, CPU: 0.1, MemoryMB: 64, HealthCheck: "/"},
			{Name: "worker", Type: backends.ProcWorker, Cmd: "exec sleep 3600", Instances: 1, CPU: 0.1, MemoryMB: 32},
		},
		Routes: []string{name + ".apps.localhost"},
	}
}

// TestRealNomad runs the scheduler conformance suite (submit, converge,
// scale, roll, restart, stop) against the Nomad at NOMAD_ADDR.
func TestRealNomad(t *testing.T) {
	cfg := realConfig(t)
	schedulertest.Run(t, func(t testing.TB) backends.Scheduler {
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, schedulertest.AppFactory{
		New: testApp,
		Logging: func(t testing.TB, name string) *backends.AppSpec {
			return &backends.AppSpec{App: name, MetaVersion: "v1", Procs: []backends.ProcSpec{
				{Name: "log", Type: backends.ProcWorker, Cmd: schedulertest.LoggingCmd, Instances: 1, CPU: 0.1, MemoryMB: 32},
			}}
		},
		Timeout: 3 * time.Minute,
		Prefix:  fmt.Sprintf("bt%d", time.Now().Unix()%100000),
	})
}

// TestRealNomadScaleSurvivesNewVersion: a count scaled with `nomad job
// scale` (Jobs().Scale) survives a new version that does not change it.
func TestRealNomadScaleSurvivesNewVersion(t *testing.T) {
	cfg := realConfig(t)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	spec := testApp(t, fmt.Sprintf("btscale%d", time.Now().Unix()%100000))
	spec.Procs = spec.Procs[1:] // the worker only: quick to place
	spec.Procs[0].Name = "worker"
	defer s.Stop(context.Background(), spec.App)
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// Nomad refuses to scale during a deployment: wait for it to end.
	for {
		st, err := s.Status(ctx, spec.App)
		if err == nil && st.Deployment == backends.DeployRunning {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("v1 not running: %+v %v", st, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	n := 2
	if _, _, err := s.Client().Jobs().Scale(spec.App, "worker", &n, "operator scaled", false, nil, nil); err != nil {
		t.Fatal(err)
	}
	spec.MetaVersion = "v2"
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	job, _, err := s.Client().Jobs().Info(spec.App, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := countOf(job, "worker"); c != 2 || job.Meta[MetaVersion] != "v2" {
		t.Fatalf("after v2: count %d version %s, want the scaled 2 and v2", c, job.Meta[MetaVersion])
	}
}

func BenchmarkRender(b *testing.B) {
	r := releases()["image-private-env"]
	for b.Loop() {
		if _, err := Render(r.spec, r.cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeployToRegistered measures the latency from a deploy request
// (Submit) to the job being registered in the Nomad at NOMAD_ADDR (each
// iteration registers a new version of one app).
func BenchmarkDeployToRegistered(b *testing.B) {
	cfg := realConfig(b)
	cfg.Logger = hclog.NewNullLogger()
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	spec := testApp(b, fmt.Sprintf("btbench%d", time.Now().Unix()%100000))
	defer s.Stop(context.Background(), spec.App)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		spec.MetaVersion = fmt.Sprintf("v%d", i)
		if err := s.Submit(ctx, spec); err != nil {
			b.Fatal(err)
		}
	}
	job, _, err := s.Client().Jobs().Info(spec.App, nil)
	if err != nil || !strings.HasPrefix(job.Meta[MetaVersion], "v") {
		b.Fatalf("job not registered: %v", err)
	}
}
