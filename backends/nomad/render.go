package nomad

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/names"
)

// Meta keys Berth puts on the jobs and groups it renders.
const (
	MetaApp          = "berth_app"           // job: the app's name (Apps lists jobs carrying it)
	MetaVersion      = "berth_meta_version"  // job: the release's meta_version
	MetaGroupHash    = "berth_group_hash"    // group's bookkeeping meta: hash of the rendered group and job settings, counts left out
	MetaOneshot      = "berth_oneshot"       // oneshot job: the proc's name
	MetaProc         = "berth_proc"          // group: the proc's name
	MetaProcType     = "berth_proc_type"     // group: web, worker, portal, oneshot
	MetaReleaseCount = "berth_release_count" // group's bookkeeping meta: the count the spec asked for when the job was registered
	MetaRestart      = "berth_restart"       // group: bumped by Restart to roll the group
	MetaCluster      = "berth_cluster"       // job: the Berth cluster's id (Config.ClusterID); absent when it has none
)

// PortLabel is the label of the dynamic port of procs that listen.
const PortLabel = "http"

// MHzPerCore converts a proc's CPU (cores) to Nomad's CPU shares (MHz).
const MHzPerCore = 1000

// Update strategy of every service group.
var (
	updateMaxParallel     = 1
	updateMinHealthyTime  = 10 * time.Second
	updateHealthyDeadline = 3 * time.Minute
)

// DefaultProgressDeadline is the update block's progress_deadline when the
// spec sets none (Berth always sets its reconciler.progress_deadline).
const DefaultProgressDeadline = 5 * time.Minute

// updateTimes are the update block's durations for a progress deadline:
// healthy_deadline 3m but below the progress deadline (4/5 of it), and
// min_healthy_time 10s but below the healthy deadline (half of it), as
// Nomad requires min_healthy_time < healthy_deadline < progress_deadline.
func updateTimes(progress time.Duration) (minHealthy, healthy, prog time.Duration) {
	if progress <= 0 {
		progress = DefaultProgressDeadline
	}
	healthy = min(updateHealthyDeadline, progress*4/5)
	minHealthy = min(updateMinHealthyTime, healthy/2)
	return minHealthy, healthy, progress
}

// OneshotJobID is the ID of the batch job that runs oneshot proc of app.
// App names are DNS labels and cannot contain a dot, so these IDs never
// collide with an app's job.
func OneshotJobID(app, proc string) string { return app + "." + proc }

// Render turns an AppSpec into the Nomad service job of the app: one task
// group per non-oneshot proc (oneshot procs are batch jobs, see
// RenderOneshots). It is pure: the same spec and config render the same job.
//
// Each group has the proc's Count; a task with Resources (CPU in MHz,
// MHzPerCore per core, at least 100; MemoryMB); a dynamic port labelled
// "http" for web procs and procs with a Port (PORT in the task's env is the
// port the proc must listen on); a Consul service "<app>-<proc>" with an
// HTTP check on HealthCheck (a TCP check for listening procs without one)
// and, on web procs, a routing tag ConsulTagsPrefix+<route>+"/" per route;
// an Update block (max_parallel 1, health from checks or task states, the
// spec's ProgressDeadline and AutoRevert, see updateTimes); and Meta carrying the proc and the release count. The job's
// Meta carries berth_app and berth_meta_version.
//
// Image procs use the docker driver (a Cmd, if also given, runs through
// /bin/sh -c in the image); cmd procs use raw_exec or exec (cfg.RawExec).
//
// PrivateEnv values are never written into the job: when the spec has any,
// each task gets a Vault block (cfg.VaultRole and cfg.VaultPolicies) and a
// template that reads the KV v2 secret at SecretPath into the task's
// environment at run time.
func Render(spec *backends.AppSpec, cfg Config) (*api.Job, error) {
	if err := validate(spec); err != nil {
		return nil, err
	}
	job := newJob(spec, cfg, spec.App, "service")
	procs := append([]backends.ProcSpec(nil), spec.Procs...)
	sort.Slice(procs, func(i, j int) bool { return procs[i].Name < procs[j].Name })
	for _, p := range procs {
		if p.Type == backends.ProcOneshot {
			continue
		}
		g, err := renderGroup(spec, cfg, p)
		if err != nil {
			return nil, err
		}
		job.TaskGroups = append(job.TaskGroups, g)
	}
	setGroupHashes(job)
	return job, nil
}

// RenderOneshots renders one batch job per oneshot proc of the spec (ID
// OneshotJobID(app, proc)), each running the proc's Instances copies once.
// Registering an unchanged one again runs nothing; a changed one (new
// meta_version, command or env) runs again.
func RenderOneshots(spec *backends.AppSpec, cfg Config) ([]*api.Job, error) {
	if err := validate(spec); err != nil {
		return nil, err
	}
	var jobs []*api.Job
	for _, p := range spec.Procs {
		if p.Type != backends.ProcOneshot {
			continue
		}
		job := newJob(spec, cfg, OneshotJobID(spec.App, p.Name), "batch")
		job.Meta[MetaOneshot] = p.Name
		g, err := renderGroup(spec, cfg, p)
		if err != nil {
			return nil, err
		}
		job.TaskGroups = []*api.TaskGroup{g}
		setGroupHashes(job)
		jobs = append(jobs, job)
	}
	sort.Slice(jobs, func(i, j int) bool { return *jobs[i].ID < *jobs[j].ID })
	return jobs, nil
}

func validate(spec *backends.AppSpec) error {
	if spec == nil {
		return errors.New("nomad: nil spec")
	}
	if err := names.App(spec.App); err != nil {
		return fmt.Errorf("nomad: %w", err)
	}
	seen := map[string]bool{}
	for _, p := range spec.Procs {
		if err := names.Proc(p.Name); err != nil {
			return fmt.Errorf("nomad: app %s: %w", spec.App, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("nomad: app %s: duplicate proc %q", spec.App, p.Name)
		}
		seen[p.Name] = true
		switch p.Type {
		case backends.ProcWeb, backends.ProcWorker, backends.ProcPortal, backends.ProcOneshot:
		default:
			return fmt.Errorf("nomad: app %s proc %s: unknown type %q", spec.App, p.Name, p.Type)
		}
		if p.Image == "" && strings.TrimSpace(p.Cmd) == "" {
			return fmt.Errorf("nomad: app %s proc %s: neither image nor cmd", spec.App, p.Name)
		}
		if p.Instances < 0 {
			return fmt.Errorf("nomad: app %s proc %s: negative instances", spec.App, p.Name)
		}
	}
	for _, h := range spec.Routes {
		if err := names.Host(h); err != nil {
			return fmt.Errorf("nomad: app %s: route: %w", spec.App, err)
		}
	}
	if len(spec.PrivateEnv) > 0 && spec.SecretPath == "" {
		return fmt.Errorf("nomad: app %s has private env but no SecretPath to read it from Vault", spec.App)
	}
	return nil
}

func newJob(spec *backends.AppSpec, cfg Config, id, typ string) *api.Job {
	job := &api.Job{
		ID:          new(id),
		Name:        new(id),
		Type:        new(typ),
		Datacenters: cfg.Datacenters,
		Meta: map[string]string{
			MetaApp:     spec.App,
			MetaVersion: spec.MetaVersion,
		},
	}
	if cfg.ClusterID != "" {
		job.Meta[MetaCluster] = cfg.ClusterID
	}
	if len(job.Datacenters) == 0 {
		job.Datacenters = []string{"*"}
	}
	if cfg.Region != "" {
		job.Region = new(cfg.Region)
	}
	if cfg.Namespace != "" {
		job.Namespace = new(cfg.Namespace)
	}
	return job
}

func listens(p backends.ProcSpec) bool { return p.Port > 0 || p.Type == backends.ProcWeb }

func renderGroup(spec *backends.AppSpec, cfg Config, p backends.ProcSpec) (*api.TaskGroup, error) {
	g := &api.TaskGroup{
		Name:  new(p.Name),
		Count: new(p.Instances),
		Meta: map[string]string{
			MetaProc:     p.Name,
			MetaProcType: p.Type,
		},
	}
	docker := p.Image != ""
	if listens(p) {
		port := api.Port{Label: PortLabel}
		if docker && p.Port > 0 {
			port.To = p.Port
		}
		g.Networks = []*api.NetworkResource{{Mode: "host", DynamicPorts: []api.Port{port}}}
	}

	if p.Type == backends.ProcOneshot {
		g.RestartPolicy = &api.RestartPolicy{Attempts: new(2), Interval: new(10 * time.Minute), Delay: new(15 * time.Second), Mode: new("fail")}
		g.ReschedulePolicy = &api.ReschedulePolicy{Attempts: new(0), Unlimited: new(false)}
	} else {
		g.RestartPolicy = &api.RestartPolicy{Attempts: new(3), Interval: new(5 * time.Minute), Delay: new(15 * time.Second), Mode: new("delay")}
		svc := renderService(spec, cfg, p)
		g.Services = []*api.Service{svc}
		health := "task_states"
		if len(svc.Checks) > 0 {
			health = "checks"
		}
		minHealthy, healthy, progress := updateTimes(spec.ProgressDeadline)
		g.Update = &api.UpdateStrategy{
			MaxParallel:      new(updateMaxParallel),
			HealthCheck:      new(health),
			MinHealthyTime:   new(minHealthy),
			HealthyDeadline:  new(healthy),
			ProgressDeadline: new(progress),
			AutoRevert:       new(spec.AutoRevert),
			AutoPromote:      new(false),
			Canary:           new(0),
		}
	}

	task := &api.Task{
		Name:        p.Name,
		Env:         renderEnv(spec, p, docker),
		KillTimeout: new(10 * time.Second),
		KillSignal:  "SIGTERM",
		Resources: &api.Resources{
			CPU:      new(cpuMHz(p.CPU)),
			MemoryMB: new(memoryMB(p.MemoryMB)),
		},
	}
	switch {
	case docker:
		task.Driver = "docker"
		conf := map[string]any{"image": p.Image}
		if listens(p) {
			conf["ports"] = []string{PortLabel}
		}
		if strings.TrimSpace(p.Cmd) != "" {
			conf["command"] = "/bin/sh"
			conf["args"] = []string{"-c", p.Cmd}
		}
		task.Config = conf
	default:
		task.Driver = "exec"
		if cfg.RawExec {
			task.Driver = "raw_exec"
		}
		task.Config = map[string]any{"command": "/bin/sh", "args": []string{"-c", p.Cmd}}
	}
	if len(spec.PrivateEnv) > 0 {
		task.Vault = &api.Vault{
			ChangeMode: new("restart"),
			Env:        new(false),
		}
		if cfg.VaultRole != "" {
			task.Vault.Role = cfg.VaultRole
		}
		if len(cfg.VaultPolicies) > 0 {
			task.Vault.Policies = append([]string(nil), cfg.VaultPolicies...)
		}
		task.Templates = []*api.Template{{
			EmbeddedTmpl: new(secretTemplate(spec.SecretPath)),
			DestPath:     new("secrets/berth-private.env"),
			Envvars:      new(true),
			ChangeMode:   new("restart"),
			Perms:        new("0400"),
		}}
	}
	g.Tasks = []*api.Task{task}
	bookkeeping(g)[MetaReleaseCount] = strconv.Itoa(p.Instances)
	return g, nil
}

func renderService(spec *backends.AppSpec, cfg Config, p backends.ProcSpec) *api.Service {
	svc := &api.Service{
		Name:     spec.App + "-" + p.Name,
		Provider: "consul",
		Tags: []string{
			"berth",
			"berth-app=" + spec.App,
			"berth-proc=" + p.Name,
		},
		Meta: map[string]string{
			"berth_app":          spec.App,
			"berth_proc":         p.Name,
			"berth_meta_version": spec.MetaVersion,
		},
	}
	if cfg.ClusterID != "" {
		svc.Tags = append(svc.Tags, "berth-cluster="+cfg.ClusterID)
		svc.Meta["berth_cluster"] = cfg.ClusterID
	}
	if p.Type == backends.ProcWeb {
		prefix := cfg.ConsulTagsPrefix
		if prefix == "" {
			prefix = "urlprefix-"
		}
		routes := append([]string(nil), spec.Routes...)
		sort.Strings(routes)
		for _, r := range routes {
			svc.Tags = append(svc.Tags, prefix+r+"/")
		}
	}
	if !listens(p) {
		return svc
	}
	svc.PortLabel = PortLabel
	check := api.ServiceCheck{
		Name:     spec.App + "-" + p.Name + "-alive",
		Type:     "tcp",
		Interval: 10 * time.Second,
		Timeout:  2 * time.Second,
	}
	if p.HealthCheck != "" {
		path := p.HealthCheck
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		check = api.ServiceCheck{
			Name:     spec.App + "-" + p.Name + "-http",
			Type:     "http",
			Path:     path,
			Protocol: "http",
			Method:   "GET",
			Interval: 10 * time.Second,
			Timeout:  2 * time.Second,
		}
	}
	svc.Checks = []api.ServiceCheck{check}
	svc.CheckRestart = &api.CheckRestart{Limit: 3, Grace: new(30 * time.Second)}
	return svc
}

// renderEnv is the task's env block: the proc's Env, then the app's Env,
// then PORT and the BERTH_ variables. Keys of PrivateEnv are left out (the
// Vault template supplies them).
func renderEnv(spec *backends.AppSpec, p backends.ProcSpec, docker bool) map[string]string {
	env := map[string]string{}
	for _, src := range []map[string]string{p.Env, spec.Env} {
		for k, v := range src {
			env[k] = v
		}
	}
	for k := range spec.PrivateEnv {
		delete(env, k)
	}
	if listens(p) {
		if docker && p.Port > 0 {
			env["PORT"] = strconv.Itoa(p.Port)
		} else {
			env["PORT"] = "${NOMAD_PORT_" + PortLabel + "}"
		}
	}
	env["BERTH_APP"] = spec.App
	env["BERTH_PROC"] = p.Name
	env["BERTH_INSTANCE"] = "${NOMAD_ALLOC_INDEX}"
	return env
}

// KVv2ReadPath turns "<mount>/<path>" into the KV v2 read path
// "<mount>/data/<path>"; a path already holding "/data/" is kept.
func KVv2ReadPath(p string) string {
	p = strings.Trim(p, "/")
	if strings.Contains(p, "/data/") {
		return p
	}
	mount, rest, ok := strings.Cut(p, "/")
	if !ok {
		return p
	}
	return mount + "/data/" + rest
}

// secretTemplate renders every key of the KV v2 secret as KEY="value" env
// lines (values JSON-quoted, so newlines and quotes survive).
func secretTemplate(secretPath string) string {
	return `{{ with secret ` + strconv.Quote(KVv2ReadPath(secretPath)) + ` }}{{ range $k, $v := .Data.data }}{{ $k }}={{ $v | toJSON }}
{{ end }}{{ end }}`
}

func cpuMHz(cores float64) int {
	mhz := int(math.Round(cores * MHzPerCore))
	if mhz < 100 {
		mhz = 100
	}
	return mhz
}

func memoryMB(mb int) int {
	if mb < 16 {
		return 16
	}
	return mb
}

// bookkeeping is where Berth keeps a group's own bookkeeping meta
// (MetaReleaseCount, MetaGroupHash): the meta of the group's service when it
// has one, because Nomad updates a service's meta in place while a change of
// group, task or job meta replaces every allocation of the group; the
// group's meta otherwise (oneshot batch groups, which rerun on any change).
func bookkeeping(g *api.TaskGroup) map[string]string {
	if len(g.Services) > 0 {
		if g.Services[0].Meta == nil {
			g.Services[0].Meta = map[string]string{}
		}
		return g.Services[0].Meta
	}
	if g.Meta == nil {
		g.Meta = map[string]string{}
	}
	return g.Meta
}

// setGroupHashes puts each group's hash in its bookkeeping meta. The hash
// covers the group and the job's own settings (meta_version, datacenters,
// ...), leaving out counts, release counts and restart marks: two renders
// whose groups have the same hashes differ at most in counts, which Scale
// can change.
func setGroupHashes(job *api.Job) {
	top := *job
	top.TaskGroups = nil
	jb, err := json.Marshal(&top)
	if err != nil {
		panic(err) // api.Job always marshals
	}
	for _, g := range job.TaskGroups {
		bookkeeping(g)[MetaGroupHash] = groupHash(jb, g)
	}
}

func withoutKeys(m map[string]string, keys ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if !slices.Contains(keys, k) {
			out[k] = v
		}
	}
	return out
}

func groupHash(jobJSON []byte, g *api.TaskGroup) string {
	gc := *g
	gc.Count = nil
	gc.Meta = withoutKeys(g.Meta, MetaReleaseCount, MetaRestart, MetaGroupHash)
	gc.Services = nil
	for _, svc := range g.Services {
		sc := *svc
		sc.Meta = withoutKeys(svc.Meta, MetaReleaseCount, MetaGroupHash)
		gc.Services = append(gc.Services, &sc)
	}
	gb, err := json.Marshal(&gc)
	if err != nil {
		panic(err)
	}
	h := sha256.New()
	h.Write(jobJSON)
	h.Write([]byte{0})
	h.Write(gb)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// SpecHash is the hash of a rendered job as a whole: its groups' hashes
// (see setGroupHashes) in order.
func SpecHash(job *api.Job) string {
	h := sha256.New()
	for _, g := range job.TaskGroups {
		h.Write([]byte(deref(g.Name) + "=" + bookkeeping(g)[MetaGroupHash] + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// sameSpec tells whether the running job cur runs what job renders, counts
// aside: the same groups with the same hashes.
func sameSpec(job, cur *api.Job) bool {
	if len(job.TaskGroups) != len(cur.TaskGroups) {
		return false
	}
	have := map[string]string{}
	for _, g := range cur.TaskGroups {
		have[deref(g.Name)] = bookkeeping(g)[MetaGroupHash]
	}
	for _, g := range job.TaskGroups {
		h, ok := have[deref(g.Name)]
		if !ok || h == "" || h != bookkeeping(g)[MetaGroupHash] {
			return false
		}
	}
	return true
}
