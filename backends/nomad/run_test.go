package nomad

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
)

func runTestSpec(image string) backends.RunSpec {
	return backends.RunSpec{
		ID: "k3x9q2",
		App: &backends.AppSpec{App: "hello", MetaVersion: "1700000000-abcdef0",
			Env:        map[string]string{"GREETING": "hi"},
			PrivateEnv: map[string]string{"DB_PASSWORD": "never-in-the-job"},
			SecretPath: "secret/berth/apps/hello/runtime-env",
			Routes:     []string{"hello.apps.example.com"},
			Procs:      []backends.ProcSpec{{Name: "web", Type: backends.ProcWeb, Cmd: "./hello", Instances: 3}}},
		Proc: backends.ProcSpec{Name: "web", Type: backends.ProcWeb, Cmd: "./hello -port $PORT", Image: image, Port: 8080,
			Instances: 3, CPU: 0.5, MemoryMB: 128, Env: map[string]string{"PROC_ONLY": "1"}, HealthCheck: "/ping"},
		Command: []string{"sh", "-c", "env; exit 3"},
	}
}

func TestRenderRunGolden(t *testing.T) {
	for name, image := range map[string]string{"run-cmd": "", "run-image": "registry.example.com/hello:1"} {
		t.Run(name, func(t *testing.T) {
			job, err := RenderRun(runTestSpec(image), Config{VaultRole: "berth-apps"})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name, job)
			if *job.ID != "hello-run-k3x9q2" || *job.Type != "batch" || len(job.TaskGroups) != 1 {
				t.Fatalf("job %s type %s, %d groups", *job.ID, *job.Type, len(job.TaskGroups))
			}
			g := job.TaskGroups[0]
			if *g.Count != 1 || len(g.Services) != 0 || len(g.Networks) != 0 || g.Update != nil {
				t.Errorf("group: count %d, %d services, %d networks, update %v: a run is one task, unrouted", *g.Count, len(g.Services), len(g.Networks), g.Update)
			}
			if *g.RestartPolicy.Attempts != 0 || *g.ReschedulePolicy.Attempts != 0 {
				t.Error("a one-off command must not run again")
			}
			task := g.Tasks[0]
			if task.Config["command"] != "sh" || fmt.Sprint(task.Config["args"]) != "[-c env; exit 3]" {
				t.Errorf("task config %v", task.Config)
			}
			if task.Env["GREETING"] != "hi" || task.Env["PROC_ONLY"] != "1" {
				t.Errorf("env %v lacks the app's and the proc's env", task.Env)
			}
			if strings.Contains(fmt.Sprintf("%+v", task.Env), "never-in-the-job") || len(task.Templates) != 1 {
				t.Errorf("private env must come from Vault: env %v, templates %d", task.Env, len(task.Templates))
			}
		})
	}
}

func TestRenderRunRejects(t *testing.T) {
	for name, mod := range map[string]func(*backends.RunSpec){
		"no command": func(s *backends.RunSpec) { s.Command = nil },
		"bad id":     func(s *backends.RunSpec) { s.ID = "../x" },
		"no app":     func(s *backends.RunSpec) { s.App = nil },
	} {
		spec := runTestSpec("")
		mod(&spec)
		if _, err := RenderRun(spec, Config{}); err == nil {
			t.Errorf("%s: rendered", name)
		}
	}
}

// TestRealNomadRun runs one-off commands as batch jobs in the Nomad at
// NOMAD_ADDR: output, exit code, the job purged after; cancel kills one.
func TestRealNomadRun(t *testing.T) {
	cfg := realConfig(t)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	app := fmt.Sprintf("btrun%d", time.Now().Unix()%100000)
	spec := backends.RunSpec{ID: "t1", App: &backends.AppSpec{App: app, MetaVersion: "v1", Env: map[string]string{"GREETING": "hi"}},
		Proc:    backends.ProcSpec{Name: "web", Type: backends.ProcWeb, Cmd: "true", CPU: 0.1, MemoryMB: 64},
		Command: []string{"/bin/sh", "-c", `echo "greeting=$GREETING"; echo oops >&2; exit 3`}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := s.Run(ctx, app, spec)
	if err != nil {
		t.Fatal(err)
	}
	var out, errs []string
	for l := range h.Lines {
		if l.Stream == backends.StreamStderr {
			errs = append(errs, l.Text)
		} else {
			out = append(out, l.Text)
		}
	}
	res := <-h.Result
	if res.ExitCode != 3 || res.Err != nil || strings.Join(out, "|") != "greeting=hi" || strings.Join(errs, "|") != "oops" {
		t.Fatalf("stdout %q stderr %q result %+v", out, errs, res)
	}
	if j, _, err := s.client.Jobs().Info(RunJobID(app, "t1"), s.q(ctx)); err == nil {
		t.Errorf("the run's job %s is still there (status %s)", *j.ID, *j.Status)
	}

	rctx, rcancel := context.WithCancel(ctx)
	spec.ID, spec.Command = "t2", []string{"/bin/sh", "-c", "echo started; exec sleep 300"}
	h, err = s.Run(rctx, app, spec)
	if err != nil {
		t.Fatal(err)
	}
	if l := <-h.Lines; l.Text != "started" {
		t.Fatalf("first line %+v", l)
	}
	rcancel()
	for range h.Lines {
	}
	if res := <-h.Result; !errors.Is(res.Err, context.Canceled) {
		t.Errorf("cancelled run: %+v", res)
	}
	if _, _, err := s.client.Jobs().Info(RunJobID(app, "t2"), s.q(ctx)); err == nil {
		t.Error("the cancelled run's job is still there")
	}

	// Stopping (undeploying) the app ends its runs and removes their jobs.
	spec.ID, spec.Command = "t3", []string{"/bin/sh", "-c", "echo started; exec sleep 300"}
	h, err = s.Run(ctx, app, spec)
	if err != nil {
		t.Fatal(err)
	}
	if l := <-h.Lines; l.Text != "started" {
		t.Fatalf("first line %+v", l)
	}
	if err := s.Stop(ctx, app); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.client.Jobs().Info(RunJobID(app, "t3"), s.q(ctx)); err == nil {
		t.Error("the run's job is still there after the app was stopped")
	}
	for range h.Lines {
	}
	if res := <-h.Result; res.ExitCode == 0 && res.Err == nil {
		t.Errorf("a run of a stopped app ended as if it had finished: %+v", res)
	}
}
