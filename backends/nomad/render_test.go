package nomad

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/names"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// releases are representative specs, rendered and compared with
// testdata/<name>.golden.json.
func releases() map[string]struct {
	spec *backends.AppSpec
	cfg  Config
} {
	return map[string]struct {
		spec *backends.AppSpec
		cfg  Config
	}{
		// A LAIN-style release: a web proc and a worker, both commands.
		"cmd-web-worker": {
			spec: &backends.AppSpec{
				App:         "hello",
				MetaVersion: "1700000000-abcdef0",
				Procs: []backends.ProcSpec{
					{Name: "web", Type: backends.ProcWeb, Cmd: "./hello -port $PORT", Port: 8080, Instances: 2,
						CPU: 0.5, MemoryMB: 64, Env: map[string]string{"GREETING": "hi"}, HealthCheck: "/ping"},
					{Name: "mailer", Type: backends.ProcWorker, Cmd: "./mailer", Instances: 1, CPU: 0.05, MemoryMB: 32},
				},
				Env:    map[string]string{"DATABASE_HOST": "db.internal", "GREETING": "hello"},
				Routes: []string{"hello.apps.example.com"},
				// Berth's defaults (reconciler.progress_deadline, auto_revert).
				ProgressDeadline: 5 * time.Minute, AutoRevert: true,
			},
			cfg: Config{Datacenters: []string{"dc1"}},
		},
		// Custom domains (berth domain add) are routes beside the app's
		// own: each becomes a routing tag of the web service.
		"custom-domains": {
			spec: &backends.AppSpec{
				App:         "blog",
				MetaVersion: "1700000900-fedcba9",
				Procs: []backends.ProcSpec{
					{Name: "web", Type: backends.ProcWeb, Cmd: "./blog", Port: 8080, Instances: 1, CPU: 0.25, MemoryMB: 64},
				},
				Routes:           []string{"blog.apps.example.com", "www.blog.example", "blog.example.org"},
				ProgressDeadline: 5 * time.Minute, AutoRevert: true,
			},
			cfg: Config{Datacenters: []string{"dc1"}},
		},
		// Docker images, a private env read from Vault, raw_exec for cmds,
		// a region and a namespace.
		"image-private-env": {
			spec: &backends.AppSpec{
				App:         "shop",
				MetaVersion: "1700000500-1234567",
				Procs: []backends.ProcSpec{
					{Name: "web", Type: backends.ProcWeb, Image: "registry.example.com/shop:1.2", Port: 3000,
						Instances: 3, CPU: 2, MemoryMB: 512, HealthCheck: "healthz"},
					{Name: "admin", Type: backends.ProcPortal, Image: "registry.example.com/shop:1.2",
						Cmd: "bin/admin --listen :$PORT", Port: 9000, Instances: 1, CPU: 0.25, MemoryMB: 128},
					{Name: "jobs", Type: backends.ProcWorker, Cmd: "bin/jobs", Instances: 2, CPU: 1, MemoryMB: 256},
				},
				Env:        map[string]string{"RAILS_ENV": "production", "MYSQL_PASSWORD": "overridden-by-vault"},
				PrivateEnv: map[string]string{"MYSQL_PASSWORD": "hunter2-do-not-leak", "API_KEY": "sk-live-do-not-leak"},
				SecretPath: "secret/berth/apps/shop/env",
				Routes:     []string{"shop.apps.example.com", "www.shop.example"},
				// An app's own short deadline: the update block's
				// durations shrink below it.
				ProgressDeadline: 20 * time.Second, AutoRevert: true,
			},
			cfg: Config{Region: "eu", Namespace: "apps", Datacenters: []string{"eu-1a", "eu-1b"}, RawExec: true,
				VaultRole: "berth-apps", ConsulTagsPrefix: "traefik.http.routers.shop.rule=Host:"},
		},
	}
}

func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./backends/nomad/ -run TestRender -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("rendered %s differs from %s (rerun with -update if the change is intended):\n%s", name, path, lineDiff(string(want), string(got)))
	}
}

func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g + "\n")
			if b.Len() > 2000 {
				break
			}
		}
	}
	return b.String()
}

func TestRenderGolden(t *testing.T) {
	for name, r := range releases() {
		t.Run(name, func(t *testing.T) {
			job, err := Render(r.spec, r.cfg)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name, job)
			again, _ := Render(r.spec, r.cfg)
			if SpecHash(again) != SpecHash(job) || !sameSpec(again, job) {
				t.Error("rendering twice gives different hashes")
			}
		})
	}
}

func TestRenderOneshotGolden(t *testing.T) {
	spec := &backends.AppSpec{
		App: "hello", MetaVersion: "1700000000-abcdef0",
		Procs: []backends.ProcSpec{
			{Name: "web", Type: backends.ProcWeb, Cmd: "./hello", Instances: 1, CPU: 0.1, MemoryMB: 64},
			{Name: "migrate", Type: backends.ProcOneshot, Cmd: "./migrate up", Instances: 1, CPU: 0.1, MemoryMB: 64},
		},
	}
	jobs, err := RenderOneshots(spec, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || *jobs[0].ID != "hello.migrate" || *jobs[0].Type != "batch" {
		t.Fatalf("oneshot jobs: %+v", jobs)
	}
	golden(t, "oneshot", jobs[0])
	job, _ := Render(spec, Config{})
	if len(job.TaskGroups) != 1 || *job.TaskGroups[0].Name != "web" {
		t.Fatalf("service job groups: %d (oneshot procs belong in their batch job)", len(job.TaskGroups))
	}
}

// TestRenderShape checks the properties the issue asks for on the real
// api types, so that a golden file rewritten carelessly cannot hide them.
func TestRenderShape(t *testing.T) {
	r := releases()["image-private-env"]
	job, err := Render(r.spec, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(job)
	for _, secret := range r.spec.PrivateEnv {
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("private value %q is written into the job", secret)
		}
	}
	if bytes.Contains(b, []byte("overridden-by-vault")) {
		t.Fatal("a public env value for a private key is written into the job")
	}
	if *job.ID != "shop" || *job.Type != "service" || job.Meta[MetaApp] != "shop" || job.Meta[MetaVersion] != "1700000500-1234567" {
		t.Fatalf("job identity/meta: %s %s %v", *job.ID, *job.Type, job.Meta)
	}
	if *job.Region != "eu" || *job.Namespace != "apps" {
		t.Fatal("region/namespace not set")
	}
	groups := map[string]*api.TaskGroup{}
	for _, g := range job.TaskGroups {
		groups[*g.Name] = g
	}
	web := groups["web"]
	if web == nil || *web.Count != 3 {
		t.Fatal("web group missing or wrong count")
	}
	if web.Tasks[0].Driver != "docker" || web.Tasks[0].Config["image"] != "registry.example.com/shop:1.2" {
		t.Fatalf("web task: %s %v", web.Tasks[0].Driver, web.Tasks[0].Config)
	}
	if *web.Tasks[0].Resources.CPU != 2000 || *web.Tasks[0].Resources.MemoryMB != 512 {
		t.Fatal("web resources")
	}
	if p := web.Networks[0].DynamicPorts[0]; p.Label != "http" || p.To != 3000 || p.Value != 0 {
		t.Fatalf("web port %+v, want dynamic http -> 3000", p)
	}
	svc := web.Services[0]
	if svc.Name != "shop-web" || svc.PortLabel != "http" || len(svc.Checks) != 1 || svc.Checks[0].Type != "http" || svc.Checks[0].Path != "/healthz" {
		t.Fatalf("web service %+v", svc)
	}
	tags := strings.Join(svc.Tags, " ")
	if !strings.Contains(tags, "traefik.http.routers.shop.rule=Host:shop.apps.example.com/") || !strings.Contains(tags, "www.shop.example/") {
		t.Fatalf("routing tags %v", svc.Tags)
	}
	u := web.Update
	if *u.MaxParallel != 1 || *u.HealthCheck != "checks" || !*u.AutoRevert {
		t.Fatalf("update %+v", u)
	}
	task := web.Tasks[0]
	if task.Vault == nil || task.Vault.Role != "berth-apps" || len(task.Templates) != 1 || !*task.Templates[0].Envvars {
		t.Fatalf("vault/template missing: %+v %+v", task.Vault, task.Templates)
	}
	if tmpl := *task.Templates[0].EmbeddedTmpl; !strings.Contains(tmpl, `secret "secret/data/berth/apps/shop/env"`) {
		t.Fatalf("template does not read the KV v2 path: %s", tmpl)
	}
	if _, ok := task.Env["MYSQL_PASSWORD"]; ok {
		t.Fatal("private key in the env block")
	}
	if task.Env["PORT"] != "3000" || task.Env["RAILS_ENV"] != "production" {
		t.Fatalf("env %v", task.Env)
	}
	jobs := groups["jobs"]
	if jobs.Tasks[0].Driver != "raw_exec" || jobs.Networks != nil || len(jobs.Services[0].Checks) != 0 || *jobs.Update.HealthCheck != "task_states" {
		t.Fatalf("worker group: driver %s networks %v", jobs.Tasks[0].Driver, jobs.Networks)
	}
	admin := groups["admin"]
	if admin.Tasks[0].Config["command"] != "/bin/sh" || admin.Services[0].Checks[0].Type != "tcp" {
		t.Fatalf("admin: %v", admin.Tasks[0].Config)
	}
	// cmd procs on exec by default, PORT from Nomad's dynamic port.
	c := releases()["cmd-web-worker"]
	job, _ = Render(c.spec, c.cfg)
	if d := job.TaskGroups[1].Tasks[0]; d.Driver != "exec" || d.Env["PORT"] != "${NOMAD_PORT_http}" || d.Env["GREETING"] != "hello" {
		t.Fatalf("cmd web task: %s %v", d.Driver, d.Env)
	}
}

// TestRenderVaultPolicies: Nomad 1.6 and earlier refuse a vault block
// without policies, so the configured VaultPolicies land in every task that
// reads private env (a copy, not the config's slice), and tasks without
// private env get no vault block at all.
func TestRenderVaultPolicies(t *testing.T) {
	r := releases()["image-private-env"]
	cfg := r.cfg
	cfg.VaultRole = ""
	cfg.VaultPolicies = []string{"berth-apps-read", "berth-extra"}
	job, err := Render(r.spec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range job.TaskGroups {
		v := g.Tasks[0].Vault
		if v == nil || !slices.Equal(v.Policies, []string{"berth-apps-read", "berth-extra"}) || v.Role != "" {
			t.Fatalf("group %s: vault block %+v, want the two policies and no role", *g.Name, v)
		}
		if *v.ChangeMode != "restart" || *v.Env {
			t.Fatalf("group %s: vault block %+v", *g.Name, v)
		}
	}
	job.TaskGroups[0].Tasks[0].Vault.Policies[0] = "mutated"
	if cfg.VaultPolicies[0] != "berth-apps-read" {
		t.Fatal("the rendered policies alias the config's slice")
	}
	// Both a role and policies (a cluster in transition): both rendered.
	cfg.VaultRole = "berth-apps"
	job, _ = Render(r.spec, cfg)
	if v := job.TaskGroups[0].Tasks[0].Vault; v.Role != "berth-apps" || len(v.Policies) != 2 {
		t.Fatalf("vault block %+v, want the role and the policies", v)
	}
	// The policies change the group hash (a config change rolls the tasks).
	plain, _ := Render(r.spec, r.cfg)
	if plain.TaskGroups[0].Services[0].Meta[MetaGroupHash] == job.TaskGroups[0].Services[0].Meta[MetaGroupHash] {
		t.Error("adding vault policies left the group hash unchanged")
	}
	// No private env: no vault block, whatever the config.
	c := releases()["cmd-web-worker"]
	c.cfg.VaultPolicies = []string{"berth-apps-read"}
	job, _ = Render(c.spec, c.cfg)
	for _, g := range job.TaskGroups {
		if g.Tasks[0].Vault != nil || len(g.Tasks[0].Templates) != 0 {
			t.Fatalf("group %s without private env has a vault block or template", *g.Name)
		}
	}
}

func TestRenderRejects(t *testing.T) {
	for name, spec := range map[string]*backends.AppSpec{
		"bad app name":            {App: "../etc", Procs: []backends.ProcSpec{{Name: "web", Type: "web", Cmd: "x"}}},
		"bad proc name":           {App: "a", Procs: []backends.ProcSpec{{Name: "We b", Type: "web", Cmd: "x"}}},
		"no cmd nor image":        {App: "a", Procs: []backends.ProcSpec{{Name: "web", Type: "web"}}},
		"private env, no path":    {App: "a", Procs: []backends.ProcSpec{{Name: "web", Type: "web", Cmd: "x"}}, PrivateEnv: map[string]string{"K": "v"}},
		"unknown proc type":       {App: "a", Procs: []backends.ProcSpec{{Name: "web", Type: "daemon", Cmd: "x"}}},
		"duplicate proc":          {App: "a", Procs: []backends.ProcSpec{{Name: "w", Type: "web", Cmd: "x"}, {Name: "w", Type: "worker", Cmd: "y"}}},
		"negative instance count": {App: "a", Procs: []backends.ProcSpec{{Name: "web", Type: "web", Cmd: "x", Instances: -1}}},
	} {
		if _, err := Render(spec, Config{}); err == nil {
			t.Errorf("%s: rendered", name)
		}
	}
}

// TestRenderRejectsNames: the app, proc and route names are checked by
// package names, the same rule as the API's: a name the API refuses never
// becomes a job, a group or a Consul tag.
func TestRenderRejectsNames(t *testing.T) {
	web := func(name string) []backends.ProcSpec {
		return []backends.ProcSpec{{Name: name, Type: backends.ProcWeb, Cmd: "x", Instances: 1}}
	}
	for _, c := range []struct {
		spec *backends.AppSpec
		kind string
	}{
		{&backends.AppSpec{App: "1abc", Procs: web("web")}, "app name"},
		{&backends.AppSpec{App: "a-", Procs: web("web")}, "app name"},
		{&backends.AppSpec{App: "Shop", Procs: web("web")}, "app name"},
		{&backends.AppSpec{App: "a", Procs: web("9web")}, "proc name"},
		{&backends.AppSpec{App: "a", Procs: web("w.b")}, "proc name"},
		{&backends.AppSpec{App: "a", Procs: web("web"), Routes: []string{"a.example/x"}}, "host name"},
		{&backends.AppSpec{App: "a", Procs: web("web"), Routes: []string{""}}, "host name"},
		{&backends.AppSpec{App: "a", Procs: web("web"), Routes: []string{"a b.example"}}, "host name"},
	} {
		_, err := Render(c.spec, Config{})
		var ne *names.Error
		if !errors.As(err, &ne) || ne.Kind != c.kind {
			t.Errorf("Render(app %q, procs %v, routes %q) = %v, want a %s error", c.spec.App, c.spec.Procs[0].Name, c.spec.Routes, err, c.kind)
		}
		if _, err := RenderOneshots(c.spec, Config{}); !errors.As(err, &ne) {
			t.Errorf("RenderOneshots(app %q) = %v, want a names error", c.spec.App, err)
		}
	}
}

// TestScaleBackToReleaseCount: Berth scales web 2 -> 5 -> 2. Each scale
// is registered with its new release count, so scaling back to the first
// count is a change (it was ignored when scales went through Jobs().Scale,
// which left the release count at 2); resubmitting changes nothing.
func TestScaleBackToReleaseCount(t *testing.T) {
	c := releases()["cmd-web-worker"]
	render := func(web int, cur *api.Job) *api.Job {
		spec := *c.spec
		spec.Procs = append([]backends.ProcSpec(nil), c.spec.Procs...)
		spec.Procs[0].Instances = web
		job, err := Render(&spec, c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		applyCountRule(job, cur)
		return job
	}
	running := render(2, nil)
	if !sameCounts(render(2, running), running) {
		t.Fatal("the same spec again would be registered")
	}
	up := render(5, running)
	if n, _ := countOf(up, "web"); n != 5 || sameCounts(up, running) {
		t.Fatalf("scaling to 5: web count %d, same counts %v", n, sameCounts(up, running))
	}
	running = up // registered
	down := render(2, running)
	if n, _ := countOf(down, "web"); n != 2 || sameCounts(down, running) {
		t.Fatalf("scaling back to 2: web count %d, same counts %v", n, sameCounts(down, running))
	}
	// An operator's scale (count 7, release count still 2) survives a
	// submit that asks for the release count.
	running = down
	running.TaskGroups[1].Count = new(7)
	again := render(2, running)
	if n, _ := countOf(again, "web"); n != 7 || !sameCounts(again, running) {
		t.Fatalf("after an operator's scale: web count %d, same counts %v", n, sameCounts(again, running))
	}
}

// TestCountRule: counts scaled outside the release survive a new version;
// a count the release changes wins.
func TestCountRule(t *testing.T) {
	c := releases()["cmd-web-worker"]
	v1, _ := Render(c.spec, c.cfg)
	// Nomad runs v1; the web group was scaled from 2 to 5 since.
	running, _ := Render(c.spec, c.cfg)
	running.TaskGroups[1].Count = new(5)

	spec2 := *c.spec
	spec2.MetaVersion = "1700000100-bbbbbbb"
	v2, _ := Render(&spec2, c.cfg)
	applyCountRule(v2, running)
	if n, _ := countOf(v2, "web"); n != 5 {
		t.Fatalf("new version, same release count: web count %d, want the scaled 5", n)
	}
	if n, _ := countOf(v2, "mailer"); n != 1 {
		t.Fatalf("mailer count %d", n)
	}

	spec3 := spec2
	spec3.Procs = append([]backends.ProcSpec(nil), c.spec.Procs...)
	spec3.Procs[0].Instances = 3
	v3, _ := Render(&spec3, c.cfg)
	applyCountRule(v3, running)
	if n, _ := countOf(v3, "web"); n != 3 {
		t.Fatalf("release asks 3: web count %d, want 3", n)
	}
	if SpecHash(v1) == SpecHash(v2) {
		t.Fatal("a new meta_version has the same spec hash")
	}
	if SpecHash(v2) != SpecHash(v3) {
		t.Fatal("a count change alone changed the spec hash (it must not roll the instances)")
	}
	// A change to one proc changes that group's hash only (so Nomad leaves
	// the other groups' allocations alone), and the job is not the same spec.
	spec5 := *c.spec
	spec5.Procs = append([]backends.ProcSpec(nil), c.spec.Procs...)
	spec5.Procs[1].Cmd = "./mailer --fast"
	v5, _ := Render(&spec5, c.cfg)
	if bookkeeping(v5.TaskGroups[1])[MetaGroupHash] != bookkeeping(v1.TaskGroups[1])[MetaGroupHash] {
		t.Error("changing the mailer changed the web group's hash")
	}
	if bookkeeping(v5.TaskGroups[0])[MetaGroupHash] == bookkeeping(v1.TaskGroups[0])[MetaGroupHash] || sameSpec(v5, v1) {
		t.Error("changing the mailer's command went unnoticed")
	}
	// Bookkeeping lives in service meta (updated in place by Nomad), not in
	// group/job meta (whose change replaces every allocation).
	for _, g := range v1.TaskGroups {
		if _, ok := g.Meta[MetaReleaseCount]; ok {
			t.Error("release count in group meta: a scale would replace allocations")
		}
		if _, ok := g.Meta[MetaGroupHash]; ok {
			t.Error("group hash in group meta: a route change would replace allocations")
		}
	}
	// A restart mark is carried over, and does not change the hash.
	running.TaskGroups[1].Meta[MetaRestart] = "2026-01-01T00:00:00Z"
	v4, _ := Render(&spec2, c.cfg)
	applyCountRule(v4, running)
	if v4.TaskGroups[1].Meta[MetaRestart] == "" || SpecHash(v4) != SpecHash(v2) {
		t.Fatal("restart mark not carried over, or it changed the hash")
	}
}

func TestKVv2ReadPath(t *testing.T) {
	for in, want := range map[string]string{
		"secret/berth/apps/x":      "secret/data/berth/apps/x",
		"/secret/berth/apps/x/":    "secret/data/berth/apps/x",
		"secret/data/berth/apps/x": "secret/data/berth/apps/x",
		"kv/x":                     "kv/data/x",
	} {
		if got := KVv2ReadPath(in); got != want {
			t.Errorf("KVv2ReadPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAllocIndexAndInstances(t *testing.T) {
	healthy := true
	allocs := []*api.AllocationListStub{
		{ID: "b", Name: "hello.web[1]", JobID: "hello", JobType: "service", TaskGroup: "web", DesiredStatus: "run", ClientStatus: "running",
			DeploymentStatus: &api.AllocDeploymentStatus{Healthy: &healthy},
			AllocatedResources: &api.AllocatedResources{Shared: api.AllocatedSharedResources{
				Ports: []api.PortMapping{{Label: "http", Value: 25123, HostIP: "10.0.0.7"}}}},
			TaskStates: map[string]*api.TaskState{"web": {Restarts: 2}}},
		{ID: "a", Name: "hello.web[0]", JobID: "hello", JobType: "service", TaskGroup: "web", DesiredStatus: "run", ClientStatus: "pending"},
		{ID: "z", Name: "hello.web[0]", JobID: "hello", JobType: "service", TaskGroup: "web", DesiredStatus: "stop", ClientStatus: "complete"},
		{ID: "m", Name: "hello.migrate.migrate[0]", JobID: "hello.migrate", JobType: "batch", TaskGroup: "migrate", DesiredStatus: "run", ClientStatus: "complete"},
	}
	got := instancesOf(allocs)
	if len(got) != 3 {
		t.Fatalf("instances %+v", got)
	}
	if got[0].Proc != "migrate" || got[0].State != backends.StateComplete {
		t.Errorf("oneshot %+v", got[0])
	}
	if got[1].ID != "a" || got[1].Index != 0 || got[1].State != backends.StateStarting {
		t.Errorf("pending %+v", got[1])
	}
	if got[2].ID != "b" || got[2].Index != 1 || got[2].State != backends.StateRunning || got[2].Address != "10.0.0.7:25123" || got[2].Restarts != 2 {
		t.Errorf("running %+v", got[2])
	}
}

// TestRenderUpdateBlock: the spec's progress deadline and auto_revert go
// into every service group's update block, with
// min_healthy_time < healthy_deadline < progress_deadline as Nomad requires.
func TestRenderUpdateBlock(t *testing.T) {
	for _, tc := range []struct {
		deadline, wantProgress, wantHealthy, wantMin time.Duration
		revert                                       bool
	}{
		{0, DefaultProgressDeadline, 3 * time.Minute, 10 * time.Second, true},
		{5 * time.Minute, 5 * time.Minute, 3 * time.Minute, 10 * time.Second, false},
		{time.Hour, time.Hour, 3 * time.Minute, 10 * time.Second, true},
		{20 * time.Second, 20 * time.Second, 16 * time.Second, 8 * time.Second, false},
		{5 * time.Second, 5 * time.Second, 4 * time.Second, 2 * time.Second, true},
		{time.Second, time.Second, 800 * time.Millisecond, 400 * time.Millisecond, true},
	} {
		spec := &backends.AppSpec{App: "hello", MetaVersion: "1700000000-abcdef0", ProgressDeadline: tc.deadline, AutoRevert: tc.revert,
			Procs: []backends.ProcSpec{
				{Name: "web", Type: backends.ProcWeb, Cmd: "./hello", Instances: 1, CPU: 0.1, MemoryMB: 64, HealthCheck: "/ping"},
				{Name: "worker", Type: backends.ProcWorker, Cmd: "./work", Instances: 1, CPU: 0.1, MemoryMB: 64},
			}}
		job, err := Render(spec, Config{})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range job.TaskGroups {
			u := g.Update
			if *u.ProgressDeadline != tc.wantProgress || *u.HealthyDeadline != tc.wantHealthy || *u.MinHealthyTime != tc.wantMin || *u.AutoRevert != tc.revert {
				t.Errorf("deadline %v, group %s: progress %v healthy %v min_healthy %v auto_revert %v; want %v %v %v %v", tc.deadline, *g.Name,
					*u.ProgressDeadline, *u.HealthyDeadline, *u.MinHealthyTime, *u.AutoRevert, tc.wantProgress, tc.wantHealthy, tc.wantMin, tc.revert)
			}
			if !(*u.MinHealthyTime < *u.HealthyDeadline && *u.HealthyDeadline < *u.ProgressDeadline) {
				t.Errorf("deadline %v: min_healthy_time %v < healthy_deadline %v < progress_deadline %v does not hold", tc.deadline, *u.MinHealthyTime, *u.HealthyDeadline, *u.ProgressDeadline)
			}
		}
		if got := jobProgressDeadline(job); got != tc.wantProgress {
			t.Errorf("deadline %v: the watcher would wait for %v", tc.deadline, got)
		}
	}
}

// Custom domains are routes: on Nomad each is a routing tag of the web
// service in the form of the configured prefix (fabio's urlprefix- by
// default), and workers get none.
func TestRenderDomainTags(t *testing.T) {
	spec := &backends.AppSpec{
		App: "blog", MetaVersion: "1700000900-fedcba9",
		Procs: []backends.ProcSpec{
			{Name: "web", Type: backends.ProcWeb, Cmd: "./blog", Port: 8080, Instances: 1, CPU: 0.25, MemoryMB: 64},
			{Name: "jobs", Type: backends.ProcWorker, Cmd: "./jobs", Instances: 1, CPU: 0.25, MemoryMB: 64},
		},
		Routes:           []string{"blog.apps.example.com", "www.blog.example"},
		ProgressDeadline: time.Minute,
	}
	for prefix, want := range map[string][]string{
		"":                   {"urlprefix-blog.apps.example.com/", "urlprefix-www.blog.example/"},
		"traefik.http.host=": {"traefik.http.host=blog.apps.example.com/", "traefik.http.host=www.blog.example/"},
	} {
		job, err := Render(spec, Config{Datacenters: []string{"dc1"}, ConsulTagsPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range job.TaskGroups {
			var routing []string
			for _, svc := range g.Services {
				for _, tag := range svc.Tags {
					if !strings.HasPrefix(tag, "berth") {
						routing = append(routing, tag)
					}
				}
			}
			switch *g.Name {
			case "web":
				if !slices.Equal(routing, want) {
					t.Errorf("prefix %q: web's routing tags %v, want %v", prefix, routing, want)
				}
			default:
				if len(routing) != 0 {
					t.Errorf("prefix %q: %s has routing tags %v", prefix, *g.Name, routing)
				}
			}
		}
	}
}
