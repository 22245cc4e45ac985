package server

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

type instanceView struct {
	Name     string `json:"name"`
	Index    int    `json:"index"`
	ID       string `json:"id"`
	State    string `json:"state"`
	Address  string `json:"address,omitempty"`
	PID      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts"`
	Message  string `json:"message,omitempty"`
}

type procView struct {
	ProcName     string         `json:"procname"`
	Type         string         `json:"proctype"`
	NumInstances int            `json:"num_instances"`
	CPU          float64        `json:"cpu"`
	Memory       string         `json:"memory"`
	Cmd          string         `json:"cmd,omitempty"`
	Image        string         `json:"image,omitempty"`
	Port         int            `json:"port,omitempty"`
	Deployed     bool           `json:"deployed"`
	Instances    []instanceView `json:"instances"`
}

type deployedView struct {
	AppName     string        `json:"appname"`
	AppType     string        `json:"apptype"`
	MetaVersion string        `json:"meta_version"`
	State       string        `json:"state"`
	Message     string        `json:"message,omitempty"`
	Operation   string        `json:"operation,omitempty"`
	Generation  int64         `json:"generation"`
	Routes      []string      `json:"routes"`
	Procs       []procView    `json:"procs"`
	Resource    string        `json:"resource,omitempty"`
	Client      string        `json:"client,omitempty"`
	Deploy      *state.Deploy `json:"deploy,omitempty"`
	// The app's deploy policy in effect (its own, else the defaults).
	ProgressDeadline string `json:"progress_deadline"`
	AutoRevert       bool   `json:"auto_revert"`
}

// deployedOut is the LAIN view of a deployed app: each proc with its
// desired size and its instances' states from the scheduler.
func (s *Server) deployedOut(c *call, a *state.App) (*deployedView, error) {
	v := &deployedView{AppName: a.Name, AppType: a.AppType, MetaVersion: a.MetaVersion, Generation: a.Generation, Routes: a.Routes, Procs: []procView{}, Resource: a.Resource, Client: a.Client}
	if v.Routes == nil {
		v.Routes = []string{}
	}
	deadline, revert := s.eng.DeployPolicy(a)
	v.ProgressDeadline, v.AutoRevert = deadline.String(), revert
	d, err := s.eng.GetDeploy(c.ctx(), a.Name)
	if err != nil {
		return nil, err
	}
	if d != nil {
		v.State, v.Message, v.Operation, v.Deploy = string(d.State), d.Message, d.Operation, d
	}
	rel, _, err := state.Get[state.Release](c.ctx(), s.store, state.ReleaseKey(a.Name, a.MetaVersion))
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	var st *backends.AppStatus
	if s.sched != nil {
		st, err = s.sched.Status(c.ctx(), a.Name)
		if err != nil && !errors.Is(err, backends.ErrNotFound) {
			return nil, err
		}
	}
	if rel == nil {
		return v, nil
	}
	spec, err := s.eng.RenderSpec(c.ctx(), a, rel)
	if err != nil {
		return nil, err
	}
	for _, p := range rel.Spec.Procs {
		pv := procView{ProcName: p.Name, Type: p.Type, NumInstances: 0, CPU: p.CPU, Memory: fmt.Sprintf("%dm", p.MemoryMB), Cmd: p.Cmd, Image: p.Image, Port: p.Port, Instances: []instanceView{}}
		for _, sp := range spec.Procs {
			if sp.Name == p.Name {
				pv.Deployed = true
				pv.NumInstances, pv.CPU, pv.Memory = sp.Instances, sp.CPU, fmt.Sprintf("%dm", sp.MemoryMB)
			}
		}
		if st != nil {
			for _, in := range st.Instances {
				if in.Proc == p.Name {
					pv.Instances = append(pv.Instances, instanceView{Name: fmt.Sprintf("%s.%s.%d", a.Name, in.Proc, in.Index), Index: in.Index, ID: in.ID, State: string(in.State), Address: in.Address, PID: in.PID, Restarts: in.Restarts, Message: in.Message})
				}
			}
		}
		v.Procs = append(v.Procs, pv)
	}
	return v, nil
}

// deployedApp loads an app for a deploy-engine call and checks it is deployed.
func (s *Server) deployedApp(c *call, act engine.Action) (*state.App, error) {
	a, err := s.appParam(c, "app", act)
	if err != nil {
		return nil, err
	}
	if !a.Deployed {
		return nil, notFound("app %q is registered but not deployed", a.Name)
	}
	return a, nil
}

// GET /api/v1/apps/[?apptype=]
func (s *Server) listDeployed(c *call) (any, error) {
	typ := c.r.URL.Query().Get("apptype")
	switch typ {
	case "", state.AppTypeApp, state.AppTypeService, state.AppTypeResource, state.AppTypeResourceInstance:
	default:
		return nil, badRequest("apptype must be one of app, service, resource, resource-instance, not %q", typ)
	}
	apps, err := s.eng.VisibleApps(c.ctx(), c.id)
	if err != nil {
		return nil, err
	}
	out := []*deployedView{}
	for _, a := range apps {
		if !a.Deployed || (typ != "" && a.AppType != typ) {
			continue
		}
		v, err := s.deployedOut(c, a)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// GET /api/v1/apps/:app/
func (s *Server) getDeployed(c *call) (any, error) {
	a, err := s.deployedApp(c, engine.ActAppRead)
	if err != nil {
		return nil, err
	}
	return s.deployedOut(c, a)
}

// POST /api/v1/apps/ {"appname"} — deploy the latest pushed release.
func (s *Server) deployApp(c *call) (any, error) {
	var in struct {
		AppName string `json:"appname"`
		deployPolicyIn
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if err := names.App(in.AppName); err != nil {
		return nil, err
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	c.target = in.AppName
	a, err := s.eng.LoadApp(c.ctx(), c.id, in.AppName, engine.ActAppDeploy)
	if err != nil {
		return nil, err
	}
	rel, err := s.eng.LatestRelease(c.ctx(), a.Name)
	if err != nil {
		return nil, err
	}
	if rel == nil {
		return nil, badRequest("app %q has no pushed release: push one first (POST /api/v1/repos/%s/push/)", a.Name, a.Name)
	}
	return s.deployVersion(c, a, rel, in.deployPolicyIn)
}

// deployPolicyIn is the optional per-app deploy policy a deploy request
// may set; it is kept on the app for its later operations.
type deployPolicyIn struct {
	ProgressDeadline *string `json:"progress_deadline"`
	AutoRevert       *bool   `json:"auto_revert"`
}

func (p deployPolicyIn) check() error {
	if p.ProgressDeadline == nil || *p.ProgressDeadline == "" {
		return nil
	}
	d, err := time.ParseDuration(*p.ProgressDeadline)
	if err != nil || d < config.MinProgressDeadline || d > config.MaxProgressDeadline {
		return badRequest("progress_deadline must be a duration between %v and %v (e.g. \"90s\", \"5m\")", config.MinProgressDeadline, config.MaxProgressDeadline)
	}
	return nil
}

func (p deployPolicyIn) apply(x *state.App) {
	if p.ProgressDeadline != nil {
		x.ProgressDeadline = *p.ProgressDeadline // "" goes back to the default
	}
	if p.AutoRevert != nil {
		x.AutoRevert = p.AutoRevert
	}
}

// deployVersion makes rel the app's desired version, creating the
// resource instances it uses.
func (s *Server) deployVersion(c *call, a *state.App, rel *state.Release, policy deployPolicyIn) (any, error) {
	if a.AppType == state.AppTypeResource {
		// A resource is deployed per client, as resource instances.
		return nil, badRequest("app %q is a resource: it is deployed as resource instances of the apps that use it", a.Name)
	}
	if s.sched == nil {
		return nil, errStatus(503, "no scheduler is configured")
	}
	instances, err := s.eng.EnsureResourceInstances(c.ctx(), c.id, a, rel)
	if err != nil {
		return nil, err
	}
	op := "deploy " + rel.MetaVersion
	na, d, err := s.eng.ChangeApp(c.ctx(), c.id, a.Name, op, func(x *state.App) error {
		x.Deployed = true
		x.MetaVersion = rel.MetaVersion
		policy.apply(x)
		return nil
	})
	if err != nil {
		return nil, err
	}
	extra := map[string]any{}
	if len(instances) > 0 {
		extra["resource_instances"] = instances
	}
	return accepted(na, d, extra), nil
}

// PUT /api/v1/apps/:app/ {"meta_version"} — deploy that version (also rollback).
func (s *Server) updateDeployed(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppDeploy)
	if err != nil {
		return nil, err
	}
	var in struct {
		MetaVersion string `json:"meta_version"`
		deployPolicyIn
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if err := names.MetaVersion(in.MetaVersion); err != nil {
		return nil, err
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	rel, _, err := state.Get[state.Release](c.ctx(), s.store, state.ReleaseKey(a.Name, in.MetaVersion))
	if errors.Is(err, state.ErrNotFound) {
		return nil, badRequest("app %q has no release %s: push it first", a.Name, in.MetaVersion)
	}
	if err != nil {
		return nil, err
	}
	return s.deployVersion(c, a, rel, in.deployPolicyIn)
}

// DELETE /api/v1/apps/:app/ — undeploy, keeping the registration.
func (s *Server) undeployApp(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppUndeploy)
	if err != nil {
		return nil, err
	}
	if a.AppType == state.AppTypeResource {
		return nil, forbidden("app %q is a resource: resources cannot be undeployed (undeploy the apps that use it)", a.Name)
	}
	if !a.Deployed {
		return nil, notFound("app %q is not deployed", a.Name)
	}
	na, d, err := s.eng.ChangeApp(c.ctx(), c.id, a.Name, "undeploy", func(x *state.App) error {
		x.Deployed = false
		return nil
	})
	if err != nil {
		return nil, err
	}
	return accepted(na, d, nil), nil
}

// currentRelease is the release the app is deployed at.
func (s *Server) currentRelease(c *call, a *state.App) (*state.Release, error) {
	rel, _, err := state.Get[state.Release](c.ctx(), s.store, state.ReleaseKey(a.Name, a.MetaVersion))
	if errors.Is(err, state.ErrNotFound) {
		return nil, errStatus(409, "release %s of app %q is missing", a.MetaVersion, a.Name)
	}
	return rel, err
}

// GET /api/v1/apps/:app/procs/
func (s *Server) listProcs(c *call) (any, error) {
	a, err := s.deployedApp(c, engine.ActAppRead)
	if err != nil {
		return nil, err
	}
	v, err := s.deployedOut(c, a)
	if err != nil {
		return nil, err
	}
	return v.Procs, nil
}

// procParam validates :proc and finds it in the app's current release.
func (s *Server) procParam(c *call, a *state.App, name string) (*release.Proc, error) {
	if err := names.Proc(name); err != nil {
		return nil, err
	}
	rel, err := s.currentRelease(c, a)
	if err != nil {
		return nil, err
	}
	p := rel.Spec.Proc(name)
	if p == nil {
		return nil, notFound("app %q has no proc %q in release %s", a.Name, name, a.MetaVersion)
	}
	return p, nil
}

// GET /api/v1/apps/:app/procs/:proc/
func (s *Server) getProc(c *call) (any, error) {
	a, err := s.deployedApp(c, engine.ActAppRead)
	if err != nil {
		return nil, err
	}
	if _, err := s.procParam(c, a, c.param("proc")); err != nil {
		return nil, err
	}
	v, err := s.deployedOut(c, a)
	if err != nil {
		return nil, err
	}
	for _, p := range v.Procs {
		if p.ProcName == c.param("proc") {
			return p, nil
		}
	}
	return nil, notFound("proc %q not found", c.param("proc"))
}

// POST /api/v1/apps/:app/procs/ {"procname"} — deploy a proc that was
// undeployed (or failed) again.
func (s *Server) deployProc(c *call) (any, error) {
	a, err := s.deployedApp(c, engine.ActAppDeploy)
	if err != nil {
		return nil, err
	}
	var in struct {
		ProcName string `json:"procname"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if _, err := s.procParam(c, a, in.ProcName); err != nil {
		return nil, err
	}
	c.target = a.Name + "/" + in.ProcName
	na, d, err := s.eng.ChangeApp(c.ctx(), c.id, a.Name, "deploy proc "+in.ProcName, func(x *state.App) error {
		o := x.Procs[in.ProcName]
		o.Undeployed = false
		setOverride(x, in.ProcName, o)
		x.RestartGen++
		return nil
	})
	if err != nil {
		return nil, err
	}
	return accepted(na, d, map[string]any{"procname": in.ProcName}), nil
}

func setOverride(a *state.App, proc string, o state.ProcOverride) {
	if a.Procs == nil {
		a.Procs = map[string]state.ProcOverride{}
	}
	a.Procs[proc] = o
}

// PATCH /api/v1/apps/:app/procs/:proc/ {"num_instances"} or {"cpu","memory"}.
// The two kinds cannot take effect together: with both, num_instances is
// applied and cpu/memory are not, and the answer says so.
func (s *Server) patchProc(c *call) (any, error) {
	a, err := s.deployedApp(c, engine.ActAppScale)
	if err != nil {
		return nil, err
	}
	proc := c.param("proc")
	if _, err := s.procParam(c, a, proc); err != nil {
		return nil, err
	}
	var in struct {
		NumInstances *int     `json:"num_instances"`
		CPU          *float64 `json:"cpu"`
		Memory       any      `json:"memory"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if in.NumInstances == nil && in.CPU == nil && in.Memory == nil {
		return nil, badRequest("send num_instances, or cpu and/or memory")
	}
	c.target = a.Name + "/" + proc
	ignored := []string{}
	var op string
	var apply func(o *state.ProcOverride)
	if in.NumInstances != nil {
		if err := release.CheckInstances(*in.NumInstances); err != nil {
			return nil, err
		}
		n := *in.NumInstances
		op = fmt.Sprintf("scale %s to %d", proc, n)
		apply = func(o *state.ProcOverride) { o.NumInstances = &n }
		if in.CPU != nil {
			ignored = append(ignored, "cpu")
		}
		if in.Memory != nil {
			ignored = append(ignored, "memory")
		}
	} else {
		var cpu *float64
		var mem *int
		if in.CPU != nil {
			if err := release.CheckCPU(*in.CPU); err != nil {
				return nil, err
			}
			cpu = in.CPU
		}
		if in.Memory != nil {
			m, err := release.MemoryValue(in.Memory)
			if err != nil {
				return nil, err
			}
			mem = &m
		}
		op = "resize " + proc
		apply = func(o *state.ProcOverride) {
			if cpu != nil {
				o.CPU = cpu
			}
			if mem != nil {
				o.MemoryMB = mem
			}
		}
	}
	na, d, err := s.eng.ChangeApp(c.ctx(), c.id, a.Name, op, func(x *state.App) error {
		o := x.Procs[proc]
		apply(&o)
		setOverride(x, proc, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	extra := map[string]any{"procname": proc}
	if len(ignored) > 0 {
		sort.Strings(ignored)
		extra["ignored"] = ignored
		extra["message"] = "num_instances and cpu/memory cannot take effect together: num_instances was applied; send cpu/memory in a separate request"
	}
	return accepted(na, d, extra), nil
}

// DELETE /api/v1/apps/:app/procs/:proc/ — undeploy one proc.
func (s *Server) undeployProc(c *call) (any, error) {
	a, err := s.deployedApp(c, engine.ActAppUndeploy)
	if err != nil {
		return nil, err
	}
	proc := c.param("proc")
	if _, err := s.procParam(c, a, proc); err != nil {
		return nil, err
	}
	c.target = a.Name + "/" + proc
	na, d, err := s.eng.ChangeApp(c.ctx(), c.id, a.Name, "undeploy proc "+proc, func(x *state.App) error {
		o := x.Procs[proc]
		if o.Undeployed {
			return notFound("proc %q of app %q is not deployed", proc, x.Name)
		}
		o.Undeployed = true
		setOverride(x, proc, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return accepted(na, d, map[string]any{"procname": proc}), nil
}

// accepted is the 202 answer of an operation.
func accepted(a *state.App, d *state.Deploy, extra map[string]any) *reply {
	body := map[string]any{
		"appname": a.Name, "meta_version": a.MetaVersion, "generation": d.Generation,
		"operation": d.Operation, "state": d.State,
		"watch": "/api/v1/apps/" + a.Name + "/", "events": "/api/v1/apps/" + a.Name + "/events/",
	}
	for k, v := range extra {
		body[k] = v
	}
	return &reply{Status: 202, Body: body}
}
