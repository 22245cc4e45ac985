package nomad

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
)

// The view is the scheduler's in-memory copy of this Berth cluster's jobs
// (those whose berth_cluster meta is Config.ClusterID), their allocations
// and their deployments, kept up to date from Nomad's event stream
// (/v1/event/stream, topics Job, Allocation, Deployment and Evaluation).
// Status, Apps and the scheduler's own job listings read it instead of
// asking Nomad, so that reading N apps costs no Nomad request at all.
//
// Nothing is missed: the view subscribes first (Nomad answers the
// subscription with a heartbeat once it holds it, so every change after
// that comes on the stream) and then lists allocations, deployments and
// jobs (the resync), each list at its own Raft index; an event at or
// below the index of its kind's list is already in the list and is
// skipped, every later one is applied. A stream that breaks (an error, or
// no heartbeat within streamIdle) is subscribed again and followed by a
// new resync. A job stopped with purge has no Job event: its deregistering
// evaluation (an Evaluation event of type JobDeregistered at an index the
// job has no update of) removes it.
//
// The view is current while its stream is up and Nomad answers the probe
// (a cheap request every staleAfter/2); once it has not been current for
// longer than staleAfter, Status answers from it with a
// backends.StaleStatus saying as of when. Before its first resync (or
// while a write of this scheduler is not in it yet) the scheduler asks
// Nomad directly, as it did without a view.

// streamIdle is how long the stream may stay silent (Nomad sends a
// heartbeat every 30 seconds) before it is taken as broken.
var streamIdle = 70 * time.Second

// maxDeploymentsPerJob is how many of a job's latest deployments the view
// keeps (Status reads the latest; revertReason the one before it).
const maxDeploymentsPerJob = 6

// view topics.
const (
	topicJob        = "Job"
	topicAllocation = "Allocation"
	topicDeployment = "Deployment"
	topicEvaluation = "Evaluation"
)

type view struct {
	s          *Scheduler
	staleAfter time.Duration

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change of index or currency
	ready   bool          // a resync has completed
	index   uint64        // the highest Raft index applied
	gaveUp  uint64        // a write index usable waited for in vain
	// lists are the indexes of the kinds' lists of the resync under way
	// or the last one: an event at or below its kind's is in the list.
	lists map[string]uint64
	// live: the stream is up and the probe answers; asOf is when the view
	// was last known current; brokenSince and brokenErr say since when
	// and why it is not (zero and nil while live).
	live        bool
	asOf        time.Time
	brokenSince time.Time
	brokenErr   error

	jobs   map[string]*api.Job                           // job ID -> trimmed job (this cluster's only)
	allocs map[string]map[string]*api.AllocationListStub // job ID -> alloc ID -> trimmed stub
	deps   map[string]map[string]*api.Deployment         // job ID -> deployment ID -> deployment
	byApp  map[string]map[string]bool                    // app -> IDs of its jobs (app, app.<oneshot>, app-run-*)
	events int                                           // events applied (for tests and logs)
}

func newView(s *Scheduler, staleAfter time.Duration) *view {
	return &view{s: s, staleAfter: staleAfter, changed: make(chan struct{}), lists: map[string]uint64{}}
}

// notify wakes the waiters; mu held.
func (v *view) notify() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// run keeps the view up to date until ctx ends.
func (v *view) run(ctx context.Context) {
	retry := time.Second
	for ctx.Err() == nil {
		began := time.Now()
		err := v.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > 30*time.Second {
			retry = time.Second // it was up a while: a new break
		}
		v.broken(err)
		v.s.log.Warn("nomad event stream broken; subscribing again", "error", err, "in", retry)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, 10*time.Second)
	}
}

// broken marks the view not current.
func (v *view) broken(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.brokenSince.IsZero() {
		v.brokenSince = time.Now()
	}
	if err != nil {
		v.brokenErr = err
	}
	if v.live {
		v.live = false
		v.notify()
	}
}

// follow subscribes, resyncs and applies the stream's events until the
// stream breaks.
func (v *view) follow(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	v.mu.Lock()
	from := v.index
	v.mu.Unlock()
	q := v.s.q(sctx)
	path := "/v1/event/stream?" + url.Values{
		"topic": {topicJob, topicAllocation, topicDeployment, topicEvaluation},
		"index": {strconv.FormatUint(from+1, 10)},
	}.Encode()
	// The response's headers come with Nomad's first heartbeat, sent
	// once the subscription is held.
	hctx, hcancel := context.WithTimeout(sctx, v.s.cfg.CallTimeout)
	type opened struct {
		body io.ReadCloser
		err  error
	}
	oc := make(chan opened, 1)
	go func() {
		body, err := v.s.stream.Raw().Response(path, q)
		oc <- opened{body, err}
	}()
	var o opened
	select {
	case o = <-oc:
	case <-hctx.Done():
		cancel() // ends the request
		o = <-oc
		if o.err == nil {
			o.body.Close()
			o.err = errors.New("no answer within the call deadline")
		}
	}
	hcancel()
	if o.err != nil {
		return fmt.Errorf("subscribe to the event stream: %s", backends.Reason(o.err))
	}
	defer o.body.Close()

	// Messages are read in a goroutine of their own, so that a silent
	// stream is noticed (streamIdle) and the resync overlaps it.
	msgs := make(chan *api.Events, 64)
	rerr := make(chan error, 1)
	go func() {
		defer close(msgs)
		dec := json.NewDecoder(o.body)
		for {
			var ev api.Events
			if err := dec.Decode(&ev); err != nil {
				rerr <- err
				return
			}
			select {
			case msgs <- &ev:
			case <-sctx.Done():
				rerr <- sctx.Err()
				return
			}
		}
	}()
	if err := v.resync(sctx); err != nil {
		cancel() // ends the body's read: the reader stops
		for range msgs {
		}
		return fmt.Errorf("resync: %s", backends.Reason(err))
	}
	probe := time.NewTicker(max(v.staleAfter/2, 100*time.Millisecond))
	defer probe.Stop()
	idle := time.NewTimer(streamIdle)
	defer idle.Stop()
	probing := make(chan error, 1)
	probeBusy := false
	// A probe under way ends (sctx) before follow returns: a late answer
	// must not mark a broken view current.
	defer func() {
		cancel()
		if probeBusy {
			<-probing
		}
	}()
	for {
		select {
		case ev, ok := <-msgs:
			if !ok {
				err := <-rerr
				if errors.Is(err, io.EOF) {
					err = errors.New("the stream ended")
				}
				return fmt.Errorf("event stream: %s", backends.Reason(err))
			}
			idle.Reset(streamIdle)
			v.apply(ev)
		case <-idle.C:
			cancel() // ends the body's read: the reader stops
			for range msgs {
			}
			return fmt.Errorf("no event nor heartbeat for %v", streamIdle)
		case <-probe.C:
			if probeBusy {
				continue
			}
			probeBusy = true
			at := time.Now()
			go func() {
				pctx, pcancel := context.WithTimeout(sctx, v.s.cfg.CallTimeout)
				defer pcancel()
				var leader string
				_, err := v.s.client.Raw().Query("/v1/status/leader", &leader, v.s.q(pctx))
				if err == nil {
					v.current(at)
				}
				probing <- err
			}()
		case err := <-probing:
			probeBusy = false
			if err != nil && sctx.Err() == nil {
				v.broken(fmt.Errorf("nomad does not answer: %s", backends.Reason(err)))
			}
		case <-sctx.Done():
			// The request ended with sctx: the reader stops. The body
			// is closed (deferred) once it has: a gzip body must not be
			// closed while it is read.
			for range msgs {
			}
			return sctx.Err()
		}
	}
}

// current records that the view was current at t (the stream up and a
// probe sent at t answered).
func (v *view) current(t time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.ready {
		return
	}
	if t.After(v.asOf) {
		v.asOf = t
	}
	if !v.live || !v.brokenSince.IsZero() {
		v.live, v.brokenSince, v.brokenErr = true, time.Time{}, nil
		v.notify()
	}
}

// resync replaces the view's content with Nomad's lists: allocations,
// deployments, then jobs (a job is older than its allocations and
// deployments, so none of theirs is dropped for a job not listed yet) and
// the definitions of this cluster's jobs.
func (v *view) resync(ctx context.Context) error {
	start := time.Now()
	q := v.s.q(ctx)
	q.Params = map[string]string{"resources": "true", "task_states": "true"}
	allocs, am, err := v.s.client.Allocations().List(q)
	if err != nil {
		return err
	}
	deps, dm, err := v.s.client.Deployments().List(v.s.q(ctx))
	if err != nil {
		return err
	}
	stubs, jm, err := v.s.client.Jobs().ListOptions(&api.JobListOptions{Fields: &api.JobListFields{Meta: true}}, v.s.q(ctx))
	if err != nil {
		return err
	}
	// A job the view holds at the listed modify index is kept as is; the
	// others' definitions are read (all of them at the first sync).
	jobs := map[string]*api.Job{}
	var mine []string
	v.mu.Lock()
	for _, j := range stubs {
		if !v.s.owned(j.Meta) {
			continue
		}
		if cur := v.jobs[j.ID]; cur != nil && deref(cur.ModifyIndex) == j.ModifyIndex && deref(cur.CreateIndex) == j.CreateIndex {
			jobs[j.ID] = cur
			continue
		}
		mine = append(mine, j.ID)
	}
	v.mu.Unlock()
	// The definitions (counts of groups), a few at a time.
	var (
		wg    sync.WaitGroup
		jmu   sync.Mutex
		first error
		work  = make(chan string)
	)
	for range min(4, len(mine)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				job, err := v.s.info(ctx, id)
				jmu.Lock()
				switch {
				case err != nil && first == nil:
					first = err
				case err == nil && job != nil && v.s.owned(job.Meta):
					jobs[id] = trimJob(job)
				}
				jmu.Unlock()
			}
		}()
	}
	for _, id := range mine {
		work <- id
	}
	close(work)
	wg.Wait()
	if first != nil {
		return first
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.jobs, v.allocs, v.deps, v.byApp = map[string]*api.Job{}, map[string]map[string]*api.AllocationListStub{}, map[string]map[string]*api.Deployment{}, map[string]map[string]bool{}
	for _, j := range jobs {
		v.putJob(j)
	}
	for _, a := range allocs {
		if v.jobs[a.JobID] != nil {
			v.putAlloc(trimAlloc(a))
		}
	}
	for _, d := range deps {
		if v.jobs[d.JobID] != nil {
			v.putDeployment(d)
		}
	}
	v.lists = map[string]uint64{topicAllocation: am.LastIndex, topicDeployment: dm.LastIndex, topicJob: jm.LastIndex, topicEvaluation: jm.LastIndex}
	v.index = max(v.index, am.LastIndex, dm.LastIndex, jm.LastIndex)
	v.ready, v.live, v.asOf, v.brokenSince, v.brokenErr = true, true, start, time.Time{}, nil
	v.notify()
	v.s.log.Info("nomad view synced", "jobs", len(v.jobs), "jobs_read", len(mine), "allocations", len(allocs), "deployments", len(deps), "index", v.index, "took", time.Since(start))
	return nil
}

// apply applies one batch of events.
func (v *view) apply(evs *api.Events) {
	if evs.Err != nil || evs.IsHeartbeat() {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range evs.Events {
		e := &evs.Events[i]
		if e.Index <= v.lists[string(e.Topic)] {
			continue // in the resync's list already
		}
		v.events++
		switch string(e.Topic) {
		case topicJob:
			job, err := e.Job()
			if err != nil || job == nil || job.ID == nil {
				continue
			}
			if !v.s.owned(job.Meta) {
				v.dropJob(*job.ID) // no longer (or never) this cluster's
				continue
			}
			if cur := v.jobs[*job.ID]; cur != nil && deref(cur.ModifyIndex) > deref(job.ModifyIndex) {
				continue
			}
			if cur := v.jobs[*job.ID]; cur != nil && deref(cur.CreateIndex) != deref(job.CreateIndex) {
				// Purged and registered again: the old job's
				// deployments are not the new one's.
				delete(v.deps, *job.ID)
			}
			v.putJob(trimJob(job))
		case topicAllocation:
			a, err := e.Allocation()
			if err != nil || a == nil {
				continue
			}
			job := v.jobs[a.JobID]
			if job == nil {
				continue
			}
			if cur := v.allocs[a.JobID][a.ID]; cur != nil && cur.ModifyIndex > a.ModifyIndex {
				continue
			}
			st := allocStub(a)
			st.JobType = deref(job.Type)
			// An event's allocation comes without its job: its job
			// version is its deployment's, else the one it had, else
			// the job's (placed or updated in place after the job's
			// last change).
			switch d, prev := v.deps[a.JobID][a.DeploymentID], v.allocs[a.JobID][a.ID]; {
			case a.Job != nil:
			case d != nil:
				st.JobVersion = d.JobVersion
			case prev != nil && a.AllocModifyIndex < deref(job.JobModifyIndex):
				st.JobVersion = prev.JobVersion
			default:
				st.JobVersion = deref(job.Version)
			}
			v.putAlloc(trimAlloc(st))
		case topicDeployment:
			d, err := e.Deployment()
			if err != nil || d == nil || v.jobs[d.JobID] == nil {
				continue
			}
			if cur := v.deps[d.JobID][d.ID]; cur != nil && cur.ModifyIndex > d.ModifyIndex {
				continue
			}
			v.putDeployment(d)
		case topicEvaluation:
			if e.Type != "JobDeregistered" && e.Type != "JobBatchDeregistered" {
				continue
			}
			ev, err := e.Evaluation()
			if err != nil || ev == nil {
				continue
			}
			// A deregistering without purge updated the job at this
			// index (its Job event came first); else it was purged.
			if job := v.jobs[ev.JobID]; job != nil && deref(job.ModifyIndex) < e.Index {
				v.dropJob(ev.JobID)
			}
		}
	}
	if evs.Index > v.index {
		v.index = evs.Index
	}
	v.asOf = time.Now()
	v.notify()
}

// putJob stores a (trimmed) job; mu held.
func (v *view) putJob(job *api.Job) {
	id := *job.ID
	v.jobs[id] = job
	if app := job.Meta[MetaApp]; app != "" && (id == app || strings.HasPrefix(id, app+".") || strings.HasPrefix(id, app+"-run-")) {
		if v.byApp[app] == nil {
			v.byApp[app] = map[string]bool{}
		}
		v.byApp[app][id] = true
	}
}

// dropJob forgets a job and what the view holds of it; mu held.
func (v *view) dropJob(id string) {
	job := v.jobs[id]
	if job == nil {
		return
	}
	delete(v.jobs, id)
	delete(v.allocs, id)
	delete(v.deps, id)
	if app := job.Meta[MetaApp]; v.byApp[app] != nil {
		delete(v.byApp[app], id)
		if len(v.byApp[app]) == 0 {
			delete(v.byApp, app)
		}
	}
}

// putAlloc stores an allocation, forgetting the job's allocations that are
// over (stopped and terminal: no instance, nothing a deployment counts);
// mu held.
func (v *view) putAlloc(a *api.AllocationListStub) {
	m := v.allocs[a.JobID]
	if m == nil {
		m = map[string]*api.AllocationListStub{}
		v.allocs[a.JobID] = m
	}
	m[a.ID] = a
	for id, o := range m {
		if o.DesiredStatus != api.AllocDesiredStatusRun && o.JobType != api.JobTypeBatch &&
			(o.ClientStatus == api.AllocClientStatusComplete || o.ClientStatus == api.AllocClientStatusFailed || o.ClientStatus == api.AllocClientStatusLost) {
			delete(m, id)
		}
	}
}

// putDeployment stores a deployment, keeping the job's latest few; mu
// held.
func (v *view) putDeployment(d *api.Deployment) {
	m := v.deps[d.JobID]
	if m == nil {
		m = map[string]*api.Deployment{}
		v.deps[d.JobID] = m
	}
	m[d.ID] = d
	if len(m) > maxDeploymentsPerJob {
		all := make([]*api.Deployment, 0, len(m))
		for _, x := range m {
			all = append(all, x)
		}
		sort.Slice(all, func(i, j int) bool { return all[i].CreateIndex > all[j].CreateIndex })
		for _, x := range all[maxDeploymentsPerJob:] {
			delete(m, x.ID)
		}
	}
}

// deployments lists a job's deployments, latest first; mu held.
func (v *view) deployments(id string) []*api.Deployment {
	out := make([]*api.Deployment, 0, len(v.deps[id]))
	for _, d := range v.deps[id] {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex > out[j].CreateIndex })
	return out
}

// usable tells whether reads may come from the view: it has synced, and
// holds every write of this scheduler up to index (waiting for it while
// ctx allows, at most the call deadline, once per index), or it is stale
// (its reads then say how old they are).
func (v *view) usable(ctx context.Context, index uint64) bool {
	deadline := time.NewTimer(v.s.cfg.CallTimeout)
	defer deadline.Stop()
	for {
		v.mu.Lock()
		ok, caught, ch := v.ready, v.index >= index, v.changed
		if ok && !caught && index <= v.gaveUp {
			stale := v.staleness() != nil
			v.mu.Unlock()
			return stale
		}
		v.mu.Unlock()
		if !ok {
			return false
		}
		if caught {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		case <-deadline.C:
			v.mu.Lock()
			v.gaveUp = max(v.gaveUp, index)
			v.mu.Unlock()
		}
	}
}

// staleness is nil while the view is current (or was, within
// staleAfter); mu held.
func (v *view) staleness() *backends.StaleStatus {
	if time.Since(v.asOf) <= v.staleAfter {
		return nil
	}
	since := v.brokenSince
	if since.IsZero() {
		since = v.asOf
	}
	err := v.brokenErr
	if err == nil {
		err = fmt.Errorf("no event nor answer from nomad since %s", v.asOf.UTC().Format(time.RFC3339))
	}
	return &backends.StaleStatus{AsOf: v.asOf.UTC(), Since: since.UTC(), Err: err}
}

// status is Status read from the view.
func (v *view) status(app string) (*backends.AppStatus, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	stale := v.staleness()
	st, err := v.statusLocked(app)
	if stale != nil {
		if errors.Is(err, backends.ErrNotFound) {
			st = nil
		}
		stale.Status = st
		return nil, stale
	}
	return st, err
}

func (v *view) statusLocked(app string) (*backends.AppStatus, error) {
	job := v.jobs[app]
	if job == nil || deref(job.Stop) || job.Meta[MetaApp] != app {
		return nil, fmt.Errorf("nomad: app %q: %w", app, backends.ErrNotFound)
	}
	st := &backends.AppStatus{App: app, MetaVersion: job.Meta[MetaVersion]}
	version, create := deref(job.Version), deref(job.CreateIndex)
	var allocs []*api.AllocationListStub
	for id := range v.byApp[app] {
		if id == app || strings.HasPrefix(id, app+".") {
			for _, a := range v.allocs[id] {
				allocs = append(allocs, a)
			}
		}
	}
	st.Instances = instancesOf(allocs)
	deps := v.deployments(app)
	var res deployResult
	if len(deps) > 0 && deps[0].JobVersion == version && deps[0].JobCreateIndex == create {
		res = mapDeployment(deps[0])
		if !res.Terminal {
			st.ProgressBy = progressBy(deps[0])
		}
	} else {
		res = deploymentFromAllocs(job, allocs)
	}
	st.Deployment, st.Message = res.State, res.Message
	if version > 0 {
		st.Reverted = revertReason(deps, create, version)
	}
	return st, nil
}

// apps lists the apps (jobs named as their app, not stopped), sorted.
func (v *view) apps() ([]string, *backends.StaleStatus) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]string, 0, len(v.byApp))
	for app, ids := range v.byApp {
		if j := v.jobs[app]; ids[app] && j != nil && !deref(j.Stop) {
			out = append(out, app)
		}
	}
	sort.Strings(out)
	return out, v.staleness()
}

// appJobs lists the IDs of app's jobs whose ID passes keep, sorted.
func (v *view) appJobs(app string, keep func(id string, j *api.Job) bool) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var ids []string
	for id := range v.byApp[app] {
		if keep(id, v.jobs[id]) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// trimJob keeps what the view reads of a job: its identity, indexes,
// Berth's meta, and each group's count and Berth's meta of the group and
// of its first service (its bookkeeping: what register compares a
// rendered job with, see jobNow).
func trimJob(j *api.Job) *api.Job {
	t := &api.Job{
		ID: j.ID, Name: j.Name, Type: j.Type, Version: j.Version, Stop: j.Stop,
		CreateIndex: j.CreateIndex, ModifyIndex: j.ModifyIndex, JobModifyIndex: j.JobModifyIndex,
		Meta: berthMeta(j.Meta),
	}
	for _, g := range j.TaskGroups {
		tg := &api.TaskGroup{Name: g.Name, Count: g.Count, Meta: berthMeta(g.Meta)}
		if len(g.Services) > 0 && g.Services[0] != nil {
			tg.Services = []*api.Service{{Name: g.Services[0].Name, Meta: berthMeta(g.Services[0].Meta)}}
		}
		t.TaskGroups = append(t.TaskGroups, tg)
	}
	return t
}

// berthMeta is the berth_ keys of meta (never nil).
func berthMeta(meta map[string]string) map[string]string {
	out := map[string]string{}
	for k, val := range meta {
		if strings.HasPrefix(k, "berth_") {
			out[k] = val
		}
	}
	return out
}

// copyJob is a deep copy of a trimmed job (its maps and groups), which
// its reader may change.
func copyJob(j *api.Job) *api.Job {
	c := *j
	c.Meta = maps.Clone(j.Meta)
	c.TaskGroups = make([]*api.TaskGroup, 0, len(j.TaskGroups))
	for _, g := range j.TaskGroups {
		cg := *g
		cg.Meta = maps.Clone(g.Meta)
		cg.Services = nil
		for _, svc := range g.Services {
			cs := *svc
			cs.Meta = maps.Clone(svc.Meta)
			cg.Services = append(cg.Services, &cs)
		}
		c.TaskGroups = append(c.TaskGroups, &cg)
	}
	return &c
}

// jobNow is, without waiting, the view's copy of job id as register
// checks-and-sets on it: ok is false unless the view may answer now
// (synced, live and current, and holding this scheduler's writes up to
// index); job is nil when the view holds no job id of this cluster (none,
// or another cluster's: Nomad's check-and-set then refuses the
// registration and register reads the job from Nomad).
func (v *view) jobNow(id string, index uint64) (job *api.Job, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.ready || !v.live || v.index < index || v.staleness() != nil {
		return nil, false
	}
	if j := v.jobs[id]; j != nil {
		return copyJob(j), true
	}
	return nil, true
}

// trimAlloc keeps what instancesOf and deploymentFromAllocs read of an
// allocation: each task's restarts and last event, and the http port.
func trimAlloc(a *api.AllocationListStub) *api.AllocationListStub {
	t := *a
	t.TaskStates = nil
	if len(a.TaskStates) > 0 {
		t.TaskStates = make(map[string]*api.TaskState, len(a.TaskStates))
		for name, ts := range a.TaskStates {
			if ts == nil {
				continue
			}
			c := &api.TaskState{State: ts.State, Failed: ts.Failed, Restarts: ts.Restarts}
			if n := len(ts.Events); n > 0 && ts.Events[n-1] != nil {
				c.Events = []*api.TaskEvent{{Type: ts.Events[n-1].Type, DisplayMessage: ts.Events[n-1].DisplayMessage}}
			}
			t.TaskStates[name] = c
		}
	}
	t.AllocatedResources = nil
	if ar := a.AllocatedResources; ar != nil {
		sh := api.AllocatedSharedResources{}
		for _, p := range ar.Shared.Ports {
			if p.Label == PortLabel {
				sh.Ports = append(sh.Ports, p)
			}
		}
		for _, n := range ar.Shared.Networks {
			for _, p := range n.DynamicPorts {
				if p.Label == PortLabel {
					sh.Networks = append(sh.Networks, &api.NetworkResource{IP: n.IP, DynamicPorts: []api.Port{p}})
				}
			}
		}
		t.AllocatedResources = &api.AllocatedResources{Shared: sh}
	}
	t.FollowupEvalID, t.RescheduleTracker = "", nil
	return &t
}

// allocStub is the list stub of an allocation (as an event carries it,
// without its job).
func allocStub(a *api.Allocation) *api.AllocationListStub {
	st := &api.AllocationListStub{
		ID: a.ID, EvalID: a.EvalID, Name: a.Name, Namespace: a.Namespace, NodeID: a.NodeID, NodeName: a.NodeName,
		JobID: a.JobID, TaskGroup: a.TaskGroup, DesiredStatus: a.DesiredStatus, DesiredDescription: a.DesiredDescription,
		ClientStatus: a.ClientStatus, ClientDescription: a.ClientDescription, TaskStates: maps.Clone(a.TaskStates),
		DeploymentStatus: a.DeploymentStatus, AllocatedResources: a.AllocatedResources,
		CreateIndex: a.CreateIndex, ModifyIndex: a.ModifyIndex, CreateTime: a.CreateTime, ModifyTime: a.ModifyTime,
	}
	if a.Job != nil {
		st.JobType, st.JobVersion = deref(a.Job.Type), deref(a.Job.Version)
	}
	return st
}
