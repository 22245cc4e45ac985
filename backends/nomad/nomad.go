// Package nomad is Berth's Scheduler on HashiCorp Nomad: one service job per
// app (job ID = app name), one task group per proc, rendered by Render; one
// batch job per oneshot proc (RenderOneshots).
//
// Submit registers the rendered job with check-and-set on the job's modify
// index (EnforceIndex), retrying a few times when another writer got there
// first; Status reports the resulting deployment.
//
// Reads come from an in-memory view of this cluster's jobs, allocations
// and deployments fed by Nomad's event stream (see view.go): Status, Apps
// and the listing of an app's jobs make no Nomad request once the view has
// synced. Writes go to Nomad; reads wait until the view holds them.
//
// Counts. A group's bookkeeping meta (its service's meta, which Nomad
// updates in place) carries berth_release_count, the count the spec asked
// for when the job was last registered. The rule on Submit: for a group that
// exists in the running job, if the spec's count equals that release count,
// the spec did not ask for a new count and the group keeps the count it runs
// now (which `nomad job scale` or an autoscaler may have changed); otherwise
// the spec's count wins. So a new version keeps scaled counts, and a scale
// through Berth takes effect. A scale through Berth is a registration too,
// never Jobs().Scale, because it must record the new release count: were it
// left at the old one, a later scale back to that count would read as "no
// new count" and be ignored. Counts and service meta change in place, so
// such a registration keeps a service group's running allocations (a
// oneshot's batch group keeps its bookkeeping in group meta: a new count
// runs it again). A submit that changes nothing at all (the same
// berth_group_hash of every group, see Render, and the same counts and
// release counts) registers nothing.
//
// Restart rolls a group by bumping its berth_restart meta, which Nomad
// treats as a destructive update: new allocations, one at a time, under the
// group's update strategy. Stop deregisters the app's jobs with purge.
package nomad

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
)

// Config configures the Nomad scheduler.
type Config struct {
	Address     string // Nomad HTTP API, e.g. "http://127.0.0.1:4646"; "" = NOMAD_ADDR or the default
	Token       string // ACL token (never logged)
	Region      string
	Namespace   string
	Datacenters []string // default ["*"]
	// RawExec runs cmd procs with the raw_exec driver instead of exec.
	RawExec bool
	// VaultRole is the Vault role tasks with private env use ("" = the
	// Nomad cluster's default).
	VaultRole string
	// VaultPolicies are the Vault policies of tasks with private env. Nomad
	// 1.6 and earlier (token-based Vault integration) refuse a vault block
	// without policies; they must grant read on the KV v2 path of the
	// app's private env (AppSpec.SecretPath).
	VaultPolicies []string
	// ConsulTagsPrefix prefixes the routing tag of web services, one per
	// route: <prefix><host>/ (default "urlprefix-", as fabio reads them).
	ConsulTagsPrefix string
	// ClusterID is the id of the Berth cluster this scheduler works for.
	// Every job Berth renders carries it (job meta berth_cluster, and a
	// berth-cluster=<id> tag on its Consul services), and the scheduler
	// only lists, changes, scales, restarts or stops jobs that carry it:
	// a job of another Berth cluster (or one without an id, when ClusterID
	// is set) is left alone, whatever the app name. "" is the id of jobs
	// rendered without one.
	ClusterID string
	// CallTimeout bounds every request to Nomad other than the event
	// stream and log streams (default DefaultCallTimeout): a
	// Nomad that is down or frozen makes a call fail, not hang.
	CallTimeout time.Duration
	// StaleAfter is how long the in-memory view may go without news from
	// Nomad (an event, or an answer to its probe) before Status answers
	// with a backends.StaleStatus (default CallTimeout).
	StaleAfter time.Duration
	Logger     hclog.Logger
}

// DefaultCallTimeout is Config.CallTimeout's default.
const DefaultCallTimeout = 5 * time.Second

// ErrOtherCluster is what Submit returns (wrapped) for an app whose job in
// Nomad belongs to another Berth cluster (or carries no cluster id): Berth
// does not change it.
var ErrOtherCluster = errors.New("the job belongs to another Berth cluster")

// Scheduler is the Nomad backends.Scheduler.
type Scheduler struct {
	cfg    Config
	client *api.Client // every request has a deadline (CallTimeout)
	stream *api.Client // blocking queries and log streams: no deadline of its own
	log    hclog.Logger

	ctx    context.Context // cancelled by Close: ends the view
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool // set by Close: no log follower or run starts after it

	view *view
	// wrote is the Raft index of this scheduler's latest write: reads
	// come from the view once it holds it.
	wrote atomic.Uint64
}

var _ backends.Scheduler = (*Scheduler)(nil)

// casRetries is how often Submit and Restart retry a registration that lost
// a check-and-set race.
const casRetries = 5

// New connects to Nomad (lazily: no request is made until used).
func New(cfg Config) (*Scheduler, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	ac := api.DefaultConfig()
	if cfg.Address != "" {
		ac.Address = cfg.Address
	}
	if cfg.Token != "" {
		ac.SecretID = cfg.Token
	}
	if cfg.Region != "" {
		ac.Region = cfg.Region
	}
	if cfg.Namespace != "" {
		ac.Namespace = cfg.Namespace
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	sc := *ac
	stream, err := api.NewClient(&sc)
	if err != nil {
		return nil, fmt.Errorf("nomad: %w", err)
	}
	hc := cleanhttp.DefaultPooledClient()
	hc.Timeout = cfg.CallTimeout
	ac.HttpClient = hc
	client, err := api.NewClient(ac)
	if err != nil {
		stream.Close()
		return nil, fmt.Errorf("nomad: %w", err)
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = cfg.CallTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{
		cfg:    cfg,
		client: client,
		stream: stream,
		log:    cfg.Logger.Named("nomad-scheduler"),
		ctx:    ctx,
		cancel: cancel,
	}
	s.view = newView(s, cfg.StaleAfter)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.view.run(ctx)
	}()
	return s, nil
}

// wroteAt records a write of this scheduler at Raft index i.
func (s *Scheduler) wroteAt(i uint64) {
	for {
		cur := s.wrote.Load()
		if i <= cur || s.wrote.CompareAndSwap(cur, i) {
			return
		}
	}
}

// fromView tells whether reads may come from the view (synced, and
// holding this scheduler's writes; waiting for them within ctx).
func (s *Scheduler) fromView(ctx context.Context) bool {
	return s.view.usable(ctx, s.wrote.Load())
}

// Client is the Nomad API client the scheduler uses.
func (s *Scheduler) Client() *api.Client { return s.client }

func (s *Scheduler) q(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{Region: s.cfg.Region, Namespace: s.cfg.Namespace}).WithContext(ctx)
}

func (s *Scheduler) w(ctx context.Context) *api.WriteOptions {
	return (&api.WriteOptions{Region: s.cfg.Region, Namespace: s.cfg.Namespace}).WithContext(ctx)
}

func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	var ure api.UnexpectedResponseError
	if errors.As(err, &ure) {
		return ure.StatusCode() == 404
	}
	var pure *api.UnexpectedResponseError
	if errors.As(err, &pure) {
		return pure.StatusCode() == 404
	}
	return strings.Contains(err.Error(), "404")
}

func isCASConflict(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "modify index")
}

// unavailable is the failure of a call to Nomad (ctx is the call's
// context): a *backends.UnavailableError naming nomad, with a reason fit
// for a caller (the transport's error without the URL, the deadline it
// did not answer within, or Nomad's own status).
func (s *Scheduler) unavailable(ctx context.Context, op string, err error) error {
	var (
		ure  api.UnexpectedResponseError
		pure *api.UnexpectedResponseError
		ne   net.Error
	)
	reason := backends.Reason(err)
	switch {
	case ctx.Err() != nil:
		reason = "no answer in time (" + ctx.Err().Error() + ")"
	case errors.As(err, &ne) && ne.Timeout():
		reason = "no answer within " + s.cfg.CallTimeout.String()
	case errors.As(err, &ure):
		reason = fmt.Sprintf("nomad answered %d %s", ure.StatusCode(), strings.TrimSpace(ure.Body()))
	case errors.As(err, &pure) && pure != nil:
		reason = fmt.Sprintf("nomad answered %d %s", pure.StatusCode(), strings.TrimSpace(pure.Body()))
	}
	return &backends.UnavailableError{Backend: "nomad", Role: "scheduler", Op: op, Reason: reason, Err: err}
}

// errClosed is the failure of a call after Close.
var errClosed = &backends.UnavailableError{Backend: "nomad", Role: "scheduler", Op: "call", Reason: "the scheduler is closed (the server is stopping)",
	Err: errors.New("nomad scheduler: closed")}

// info reads a job; a missing (or stopped) job is (nil, nil).
func (s *Scheduler) info(ctx context.Context, id string) (*api.Job, error) {
	job, _, err := s.client.Jobs().Info(id, s.q(ctx))
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, s.unavailable(ctx, "read job "+id, err)
	}
	return job, nil
}

// owned tells whether a job's meta marks it as this Berth cluster's.
func (s *Scheduler) owned(meta map[string]string) bool {
	return meta[MetaApp] != "" && meta[MetaCluster] == s.cfg.ClusterID
}

// foreign is the error for a job of another cluster.
func (s *Scheduler) foreign(job *api.Job) error {
	other := job.Meta[MetaCluster]
	if other == "" {
		other = "(none)"
	}
	return fmt.Errorf("nomad: job %s (berth_cluster %s, this cluster %q): %w", deref(job.ID), other, s.cfg.ClusterID, ErrOtherCluster)
}

// applyCountRule sets each group of job present in cur to cur's count when
// the spec's count equals cur's release count (see the package doc), and
// carries cur's restart marks over.
func applyCountRule(job, cur *api.Job) {
	if cur == nil {
		return
	}
	groups := map[string]*api.TaskGroup{}
	for _, g := range cur.TaskGroups {
		if g.Name != nil {
			groups[*g.Name] = g
		}
	}
	for _, g := range job.TaskGroups {
		c := groups[*g.Name]
		if c == nil {
			continue
		}
		if r, ok := bookkeeping(c)[MetaReleaseCount]; ok && r == bookkeeping(g)[MetaReleaseCount] && c.Count != nil {
			g.Count = new(*c.Count)
		}
		if r, ok := c.Meta[MetaRestart]; ok {
			g.Meta[MetaRestart] = r
		}
	}
}

// resetCounts undoes applyCountRule on a rendered job (before a retry).
func resetCounts(job *api.Job) {
	for _, g := range job.TaskGroups {
		if n, err := strconv.Atoi(bookkeeping(g)[MetaReleaseCount]); err == nil {
			g.Count = new(n)
		}
		delete(g.Meta, MetaRestart)
	}
}

func countOf(job *api.Job, group string) (int, bool) {
	for _, g := range job.TaskGroups {
		if g.Name != nil && *g.Name == group && g.Count != nil {
			return *g.Count, true
		}
	}
	return 0, false
}

// Submit registers the app's job (and its oneshot jobs) so Nomad runs
// exactly spec, and starts following the deployment.
func (s *Scheduler) Submit(ctx context.Context, spec *backends.AppSpec) error {
	job, err := Render(spec, s.cfg)
	if err != nil {
		return err
	}
	if len(job.TaskGroups) == 0 {
		return fmt.Errorf("nomad: app %s: needs at least one proc that is not a oneshot", spec.App)
	}
	oneshots, err := RenderOneshots(spec, s.cfg)
	if err != nil {
		return err
	}
	if err := s.register(ctx, job); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, oj := range oneshots {
		want[*oj.ID] = true
		if err := s.register(ctx, oj); err != nil {
			return err
		}
	}
	// Oneshot jobs of procs no longer in the spec go away.
	old, err := s.appJobs(ctx, spec.App)
	if err != nil {
		return err
	}
	for _, id := range old {
		if id != spec.App && !want[id] {
			_, wm, err := s.client.Jobs().Deregister(id, true, s.w(ctx))
			if err != nil && !isNotFound(err) {
				return s.unavailable(ctx, "deregister "+id, err)
			}
			if wm != nil {
				s.wroteAt(wm.LastIndex)
			}
		}
	}
	return nil
}

// register writes job with check-and-set, retrying lost races.
//
// The job as Nomad has it (to check-and-set on, and to compare with) comes
// from the view when it may answer at once: no Nomad request before the
// registration. A view behind Nomad (another writer's change not in it
// yet, a job of another cluster, which the view does not hold) makes
// Nomad refuse the check-and-set, and the next attempt reads the job from
// Nomad; a view that finds nothing to change is confirmed there too.
func (s *Scheduler) register(ctx context.Context, job *api.Job) error {
	id := *job.ID
	direct := false
	for attempt := 0; ; attempt++ {
		var cur *api.Job
		viewed := false
		if !direct {
			cur, viewed = s.view.jobNow(id, s.wrote.Load())
		}
		if !viewed {
			var err error
			if cur, err = s.info(ctx, id); err != nil {
				return err
			}
		}
		direct = true // a retry reads Nomad
		var modifyIndex uint64
		if cur != nil {
			modifyIndex = deref(cur.JobModifyIndex)
			if !s.owned(cur.Meta) {
				return s.foreign(cur)
			}
		}
		if cur != nil && deref(cur.Stop) {
			cur = nil // a stopped, not yet purged job: register it afresh
		}
		resetCounts(job)
		applyCountRule(job, cur)
		if cur != nil && sameSpec(job, cur) && sameCounts(job, cur) {
			if viewed {
				attempt--
				continue // confirmed by Nomad
			}
			return nil // nothing to change
		}
		start := time.Now()
		resp, _, err := s.client.Jobs().RegisterOpts(job, &api.RegisterOptions{
			EnforceIndex: true,
			ModifyIndex:  modifyIndex,
		}, s.w(ctx))
		if isCASConflict(err) && viewed {
			attempt--
			continue // the view was behind Nomad: read the job there
		}
		if isCASConflict(err) && attempt < casRetries {
			s.log.Info("job changed while registering, retrying", "job", id, "attempt", attempt+1)
			continue
		}
		if isCASConflict(err) {
			return fmt.Errorf("nomad: register %s: %w: %v", id, backends.ErrCASConflict, err)
		}
		if err != nil {
			return s.unavailable(ctx, "register "+id, err)
		}
		s.log.Info("job registered", "job", id, "meta_version", job.Meta[MetaVersion], "eval", resp.EvalID,
			"job_modify_index", resp.JobModifyIndex, "took", time.Since(start))
		s.wroteAt(resp.JobModifyIndex)
		return nil
	}
}

// sameCounts tells whether job asks for the counts cur runs and records
// the same release counts: then registering job would change nothing.
func sameCounts(job, cur *api.Job) bool {
	for _, g := range job.TaskGroups {
		have, ok := countOf(cur, *g.Name)
		if !ok || have != deref(g.Count) {
			return false
		}
		for _, c := range cur.TaskGroups {
			if deref(c.Name) == *g.Name && bookkeeping(c)[MetaReleaseCount] != bookkeeping(g)[MetaReleaseCount] {
				return false
			}
		}
	}
	return true
}

// jobProgressDeadline is the longest progress deadline of the job's groups.
func jobProgressDeadline(job *api.Job) time.Duration {
	d := time.Duration(0)
	for _, g := range job.TaskGroups {
		if g.Update != nil && g.Update.ProgressDeadline != nil && *g.Update.ProgressDeadline > d {
			d = *g.Update.ProgressDeadline
		}
	}
	if d == 0 {
		d = DefaultProgressDeadline
	}
	return d
}

// appJobs lists the IDs of the jobs that carry berth_app = app.
func (s *Scheduler) appJobs(ctx context.Context, app string) ([]string, error) {
	if s.fromView(ctx) {
		if _, stale := s.view.apps(); stale == nil {
			return s.view.appJobs(app, func(id string, j *api.Job) bool { return id == app || strings.HasPrefix(id, app+".") }), nil
		}
	}
	stubs, _, err := s.client.Jobs().ListOptions(&api.JobListOptions{Fields: &api.JobListFields{Meta: true}}, s.q(ctx))
	if err != nil {
		return nil, s.unavailable(ctx, "list jobs", err)
	}
	var ids []string
	for _, j := range stubs {
		if j.Meta[MetaApp] == app && s.owned(j.Meta) && (j.ID == app || strings.HasPrefix(j.ID, app+".")) {
			ids = append(ids, j.ID)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// appRunJobs lists the jobs of the app's one-off commands (berth run).
func (s *Scheduler) appRunJobs(ctx context.Context, app string) ([]string, error) {
	if s.fromView(ctx) {
		if _, stale := s.view.apps(); stale == nil {
			return s.view.appJobs(app, func(id string, j *api.Job) bool {
				return j.Meta[MetaRun] != "" && strings.HasPrefix(id, app+"-run-")
			}), nil
		}
	}
	stubs, _, err := s.client.Jobs().ListOptions(&api.JobListOptions{Fields: &api.JobListFields{Meta: true}}, s.q(ctx))
	if err != nil {
		return nil, s.unavailable(ctx, "list jobs", err)
	}
	var ids []string
	for _, j := range stubs {
		if j.Meta[MetaApp] == app && s.owned(j.Meta) && j.Meta[MetaRun] != "" && strings.HasPrefix(j.ID, app+"-run-") {
			ids = append(ids, j.ID)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Status reports the app: version and deployment of its job, and its
// allocations as instances. It reads the view (no Nomad request) once the
// view has synced; a view that has not been current for longer than
// Config.StaleAfter answers with a *backends.StaleStatus.
func (s *Scheduler) Status(ctx context.Context, app string) (*backends.AppStatus, error) {
	if s.fromView(ctx) {
		return s.view.status(app)
	}
	return s.statusDirect(ctx, app)
}

// statusDirect is Status read from Nomad (before the view has synced).
func (s *Scheduler) statusDirect(ctx context.Context, app string) (*backends.AppStatus, error) {
	job, err := s.info(ctx, app)
	if err != nil {
		return nil, err
	}
	if job == nil || deref(job.Stop) {
		return nil, fmt.Errorf("nomad: app %q: %w", app, backends.ErrNotFound)
	}
	if !s.owned(job.Meta) {
		return nil, fmt.Errorf("nomad: app %q: %w (%w)", app, backends.ErrNotFound, s.foreign(job))
	}
	st := &backends.AppStatus{App: app, MetaVersion: job.Meta[MetaVersion]}
	version, create := deref(job.Version), deref(job.CreateIndex)

	ids, err := s.appJobs(ctx, app)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(ids, app) {
		ids = append(ids, app)
	}
	var allocs []*api.AllocationListStub
	for _, id := range ids {
		more, err := s.allocations(ctx, id)
		if err != nil {
			return nil, err
		}
		allocs = append(allocs, more...)
	}
	st.Instances = instancesOf(allocs)

	// Deployment: Nomad's deployment of this version, else (none was
	// made, e.g. for a scale down) what the allocations say.
	var res deployResult
	{
		d, _, err := s.client.Jobs().LatestDeployment(app, s.q(ctx))
		if err != nil {
			return nil, s.unavailable(ctx, "deployment of "+app, err)
		}
		// A deployment of this job, not of an earlier job of the same ID
		// (stopped with purge and registered again: versions start over).
		if d != nil && d.JobVersion == version && d.JobCreateIndex == create {
			res = mapDeployment(d)
			if !res.Terminal {
				st.ProgressBy = progressBy(d)
			}
		} else {
			res = deploymentFromAllocs(job, allocs)
		}
	}
	st.Deployment, st.Message = res.State, res.Message
	if version > 0 {
		// Is this version Nomad's own rollback of a failed deployment?
		deps, _, err := s.client.Jobs().Deployments(app, false, s.q(ctx))
		if err != nil {
			return nil, s.unavailable(ctx, "deployments of "+app, err)
		}
		st.Reverted = revertReason(deps, create, version)
	}
	return st, nil
}

// progressBy is when Nomad fails the running deployment d unless an
// allocation becomes healthy first: the latest of its groups' deadlines
// (zero when none is set yet).
func progressBy(d *api.Deployment) time.Time {
	var by time.Time
	for _, g := range d.TaskGroups {
		if g != nil && g.RequireProgressBy.After(by) {
			by = g.RequireProgressBy
		}
	}
	return by
}

// revertReason tells whether job version is Nomad's rollback (auto_revert)
// of the failed deployment of the version just before it, and if so why
// that deployment failed ("" otherwise).
func revertReason(deps []*api.Deployment, create, version uint64) string {
	for _, d := range deps {
		if d != nil && d.JobCreateIndex == create && d.JobVersion+1 == version && d.Status == api.DeploymentStatusFailed &&
			strings.Contains(d.StatusDescription, "rolling back to job version") {
			return fmt.Sprintf("the deployment of job version %d failed: %s", d.JobVersion, d.StatusDescription)
		}
	}
	return ""
}

// allocations lists the allocations of job id with their allocated
// resources (for the instances' addresses).
func (s *Scheduler) allocations(ctx context.Context, id string) ([]*api.AllocationListStub, error) {
	q := s.q(ctx)
	q.Filter = "JobID == " + strconv.Quote(id)
	q.Params = map[string]string{"resources": "true", "task_states": "true"}
	allocs, _, err := s.client.Allocations().List(q)
	if err != nil {
		return nil, s.unavailable(ctx, "allocations of "+id, err)
	}
	return allocs, nil
}

// deploymentFromAllocs judges a job version without a deployment: running
// when every group runs its count of healthy allocations of this version.
func deploymentFromAllocs(job *api.Job, allocs []*api.AllocationListStub) deployResult {
	version := deref(job.Version)
	running := map[string]int{}
	for _, a := range allocs {
		if a.JobID == deref(job.ID) && a.JobVersion == version && a.CreateIndex >= deref(job.CreateIndex) && a.DesiredStatus == api.AllocDesiredStatusRun && a.ClientStatus == api.AllocClientStatusRunning {
			running[a.TaskGroup]++
		}
	}
	for _, g := range job.TaskGroups {
		if running[deref(g.Name)] < deref(g.Count) {
			return deployResult{State: backends.DeployDeploying, Message: fmt.Sprintf("%s: %d of %d running", deref(g.Name), running[deref(g.Name)], deref(g.Count))}
		}
	}
	return deployResult{State: backends.DeployRunning}
}

// instancesOf maps allocations that should run (and finished oneshot
// ones) to instances, sorted by proc and index (and age). Nomad's client
// statuses map to Berth's instance states: pending is starting, running is
// running once healthy (starting before, failed if unhealthy), complete is
// complete for a batch job and stopped otherwise, failed and lost are
// failed, and anything else (unknown) is pending.
func instancesOf(allocs []*api.AllocationListStub) []backends.Instance {
	var out []backends.Instance
	created := map[string]uint64{}
	for _, a := range allocs {
		if a.DesiredStatus != api.AllocDesiredStatusRun && !(a.JobType == api.JobTypeBatch && a.ClientStatus == api.AllocClientStatusComplete) {
			continue
		}
		in := backends.Instance{
			Proc:  a.TaskGroup,
			Index: allocIndex(a.Name),
			ID:    a.ID,
			Since: time.Unix(0, a.ModifyTime),
		}
		switch a.ClientStatus {
		case api.AllocClientStatusPending:
			in.State = backends.StateStarting
		case api.AllocClientStatusRunning:
			in.State = backends.StateRunning
			// Under a deployment, an allocation is running once healthy.
			if ds := a.DeploymentStatus; ds != nil && ds.Healthy == nil {
				in.State = backends.StateStarting
			} else if ds != nil && !*ds.Healthy {
				in.State = backends.StateFailed
			}
		case api.AllocClientStatusComplete:
			in.State = backends.StateComplete
			if a.JobType != api.JobTypeBatch {
				in.State = backends.StateStopped
			}
		case api.AllocClientStatusFailed, api.AllocClientStatusLost:
			in.State = backends.StateFailed
		default:
			in.State = backends.StatePending
		}
		in.Message = a.ClientDescription
		for _, ts := range a.TaskStates {
			in.Restarts += int(ts.Restarts)
			if n := len(ts.Events); n > 0 && ts.Events[n-1].DisplayMessage != "" {
				in.Message = ts.Events[n-1].DisplayMessage
			}
		}
		if ar := a.AllocatedResources; ar != nil {
			for _, p := range ar.Shared.Ports {
				if p.Label == PortLabel {
					in.Address = net.JoinHostPort(p.HostIP, strconv.Itoa(p.Value))
				}
			}
			if in.Address == "" {
				for _, n := range ar.Shared.Networks {
					for _, p := range n.DynamicPorts {
						if p.Label == PortLabel {
							in.Address = net.JoinHostPort(n.IP, strconv.Itoa(p.Value))
						}
					}
				}
			}
		}
		created[a.ID] = a.CreateIndex
		out = append(out, in)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Proc != out[j].Proc {
			return out[i].Proc < out[j].Proc
		}
		if out[i].Index != out[j].Index {
			return out[i].Index < out[j].Index
		}
		return created[out[i].ID] < created[out[j].ID]
	})
	return out
}

// allocIndex reads the index from an allocation name "job.group[3]".
func allocIndex(name string) int {
	i := strings.LastIndexByte(name, '[')
	if i < 0 || !strings.HasSuffix(name, "]") {
		return 0
	}
	n, err := strconv.Atoi(name[i+1 : len(name)-1])
	if err != nil {
		return 0
	}
	return n
}

// Restart rolls every group of the app ("" proc) or one group: it bumps the
// groups' berth_restart meta and registers the job with check-and-set, so
// Nomad replaces the allocations under the update strategy.
func (s *Scheduler) Restart(ctx context.Context, app, proc string) error {
	for attempt := 0; ; attempt++ {
		job, err := s.info(ctx, app)
		if err != nil {
			return err
		}
		if job == nil || deref(job.Stop) {
			return fmt.Errorf("nomad: app %q: %w", app, backends.ErrNotFound)
		}
		if !s.owned(job.Meta) {
			return fmt.Errorf("nomad: app %q: %w (%w)", app, backends.ErrNotFound, s.foreign(job))
		}
		mark := time.Now().UTC().Format(time.RFC3339Nano)
		found := false
		for _, g := range job.TaskGroups {
			if proc != "" && deref(g.Name) != proc {
				continue
			}
			found = true
			if g.Meta == nil {
				g.Meta = map[string]string{}
			}
			g.Meta[MetaRestart] = mark
		}
		if !found {
			return fmt.Errorf("nomad: app %q proc %q: %w", app, proc, backends.ErrNotFound)
		}
		resp, _, err := s.client.Jobs().RegisterOpts(job, &api.RegisterOptions{
			EnforceIndex: true,
			ModifyIndex:  deref(job.JobModifyIndex),
		}, s.w(ctx))
		if isCASConflict(err) && attempt < casRetries {
			continue
		}
		if err != nil {
			return s.unavailable(ctx, "restart "+app, err)
		}
		s.log.Info("restarting", "app", app, "proc", proc)
		s.wroteAt(resp.JobModifyIndex)
		return nil
	}
}

// Stop deregisters and purges the app's job and its oneshot jobs. An
// unknown app succeeds.
func (s *Scheduler) Stop(ctx context.Context, app string) error {
	ids, err := s.appJobs(ctx, app)
	if err != nil {
		return err
	}
	if len(ids) == 0 || ids[0] != app {
		// A job of the app's name that is not listed (stopped, or not
		// this cluster's): deregistered only when it is this cluster's.
		job, err := s.info(ctx, app)
		if err != nil {
			return err
		}
		if job != nil && s.owned(job.Meta) {
			ids = append([]string{app}, ids...)
		}
	}
	// The app's one-off commands end with it.
	runs, err := s.appRunJobs(ctx, app)
	if err != nil {
		return err
	}
	ids = append(ids, runs...)
	for _, id := range ids {
		_, wm, err := s.client.Jobs().DeregisterOpts(id, &api.DeregisterOptions{Purge: true}, s.w(ctx))
		if err != nil && !isNotFound(err) {
			return s.unavailable(ctx, "deregister "+id, err)
		}
		if wm != nil {
			s.wroteAt(wm.LastIndex)
		}
	}
	s.log.Info("app stopped", "app", app, "jobs", len(ids))
	return nil
}

// Apps lists the apps whose jobs carry berth_app, sorted.
func (s *Scheduler) Apps(ctx context.Context) ([]string, error) {
	if s.fromView(ctx) {
		apps, stale := s.view.apps()
		if stale != nil {
			return nil, stale
		}
		return apps, nil
	}
	stubs, _, err := s.client.Jobs().ListOptions(&api.JobListOptions{Fields: &api.JobListFields{Meta: true}}, s.q(ctx))
	if err != nil {
		return nil, s.unavailable(ctx, "list jobs", err)
	}
	seen := map[string]bool{}
	var out []string
	for _, j := range stubs {
		app := j.Meta[MetaApp]
		if app == "" || j.ID != app || j.Stop || seen[app] || !s.owned(j.Meta) {
			continue
		}
		seen[app] = true
		out = append(out, app)
	}
	sort.Strings(out)
	return out, nil
}

// Health checks that the Nomad cluster has a leader.
func (s *Scheduler) Health(ctx context.Context) error {
	var leader string
	if _, err := s.client.Raw().Query("/v1/status/leader", &leader, s.q(ctx)); err != nil {
		return s.unavailable(ctx, "leader", err)
	}
	if leader == "" {
		return &backends.UnavailableError{Backend: "nomad", Role: "scheduler", Op: "leader", Reason: "no cluster leader", Err: errors.New("no cluster leader")}
	}
	return nil
}

// Close stops the view's stream and returns once it has ended; it then
// closes the client's idle connections.
func (s *Scheduler) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.client.Close()
	s.stream.Close()
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
