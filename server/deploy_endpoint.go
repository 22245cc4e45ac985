package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// deployedOut is the LAIN view of a deployed app (api.DeployedApp): each
// proc with its desired size and its instances' states from the scheduler.
func deployedOut(d *engine.DeployedApp) *api.DeployedApp {
	a := d.App
	v := &api.DeployedApp{AppName: a.Name, AppType: a.AppType, MetaVersion: a.MetaVersion, Generation: a.Generation, Routes: a.Routes, Procs: []api.Proc{}, Resource: a.Resource, Client: a.Client}
	if v.Routes == nil {
		v.Routes = []string{}
	}
	v.ProgressDeadline, v.AutoRevert = d.ProgressDeadline.String(), d.AutoRevert
	if d.Deploy != nil {
		v.State, v.Message, v.Operation, v.Deploy = string(d.Deploy.State), d.Deploy.Message, d.Deploy.Operation, deployOut(d.Deploy)
	}
	for i := range d.Procs {
		v.Procs = append(v.Procs, procOut(a.Name, &d.Procs[i]))
	}
	if st := d.SchedulerStale; st != nil {
		v.SchedulerStale = &api.SchedulerStale{Since: st.Since, Error: st.Error}
		if !st.AsOf.IsZero() {
			at := st.AsOf
			v.SchedulerStale.AsOf = &at
			v.SchedulerStale.Age = time.Since(at).Round(time.Second).String()
		}
	}
	return v
}

// deployOut is an operation's record as the API shows it (api.Deploy).
func deployOut(d *state.Deploy) *api.Deploy {
	out := &api.Deploy{AppName: d.App, Generation: d.Generation, Operation: d.Operation, MetaVersion: d.MetaVersion, State: string(d.State), Message: d.Message, By: d.By, Updated: d.Updated, Started: d.Started, Deadline: d.Deadline, AutoRevert: d.AutoRevert, LastRunning: d.LastRunning}
	if r := d.Reverted; r != nil {
		out.Reverted = &api.Reverted{Generation: r.Generation, MetaVersion: r.MetaVersion, Message: r.Message}
	}
	return out
}

// procOut is one proc of a deployed app (api.Proc).
func procOut(app string, ps *engine.ProcStatus) api.Proc {
	p := ps.Proc
	pv := api.Proc{ProcName: p.Name, Type: p.Type, NumInstances: ps.Instances, CPU: ps.CPU, Memory: fmt.Sprintf("%dm", ps.MemoryMB), Cmd: p.Cmd, Image: p.Image, Port: p.Port, Deployed: ps.Deployed, Instances: []api.Instance{}}
	for _, in := range ps.Units {
		pv.Instances = append(pv.Instances, api.Instance{Name: fmt.Sprintf("%s.%s.%d", app, in.Proc, in.Index), Index: in.Index, ID: in.ID, State: string(in.State), Address: in.Address, PID: in.PID, Restarts: in.Restarts, Message: in.Message})
	}
	return pv
}

func deployedList(ds []*engine.DeployedApp) []api.DeployedApp {
	out := []api.DeployedApp{}
	for _, d := range ds {
		out = append(out, *deployedOut(d))
	}
	return out
}

// appTarget is the app a request names in its path, which its audit
// record names (when it is a valid name).
func appTarget(c *call, param string) string {
	name := c.param(param)
	if names.App(name) == nil {
		c.target = name
	}
	return name
}

// GET /api/v1/apps/[?apptype=]
func (s *Server) listDeployed(c *call) (any, error) {
	p, err := pageOf(c)
	if err != nil {
		return nil, err
	}
	ds, next, err := s.eng.ListDeployedPage(c.ctx(), c.id, c.r.URL.Query().Get("apptype"), p)
	if err != nil {
		return nil, err
	}
	setNext(c, next)
	return deployedList(ds), nil
}

// GET /api/v1/apps/:app/
func (s *Server) getDeployed(c *call) (any, error) {
	d, err := s.eng.GetDeployed(c.ctx(), c.id, appTarget(c, "app"))
	if err != nil {
		return nil, err
	}
	return deployedOut(d), nil
}

// deploySettings is the optional per-app deploy policy a deploy request
// may set; it is kept on the app for its later operations.
func deploySettings(p api.DeployPolicy) engine.DeploySettings {
	return engine.DeploySettings{ProgressDeadline: p.ProgressDeadline, AutoRevert: p.AutoRevert}
}

// POST /api/v1/apps/ {"appname"} — deploy the latest pushed release.
func (s *Server) deployApp(c *call) (any, error) {
	var in api.DeployRequest
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if names.App(in.AppName) == nil {
		c.target = in.AppName
	}
	ch, err := s.eng.DeployLatest(c.ctx(), c.id, in.AppName, deploySettings(in.DeployPolicy))
	if err != nil {
		return nil, err
	}
	return accepted(ch), nil
}

// PUT /api/v1/apps/:app/ {"meta_version"} — deploy that version (also rollback).
func (s *Server) updateDeployed(c *call) (any, error) {
	app := appTarget(c, "app")
	var in api.DeployVersionRequest
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	ch, err := s.eng.DeployVersion(c.ctx(), c.id, app, in.MetaVersion, deploySettings(in.DeployPolicy))
	if err != nil {
		return nil, err
	}
	return accepted(ch), nil
}

// DELETE /api/v1/apps/:app/ — undeploy, keeping the registration.
func (s *Server) undeployApp(c *call) (any, error) {
	ch, err := s.eng.Undeploy(c.ctx(), c.id, appTarget(c, "app"))
	if err != nil {
		return nil, err
	}
	return accepted(ch), nil
}

// GET /api/v1/apps/:app/procs/
func (s *Server) listProcs(c *call) (any, error) {
	d, err := s.eng.GetDeployed(c.ctx(), c.id, appTarget(c, "app"))
	if err != nil {
		return nil, err
	}
	return pageSlice(c, deployedOut(d).Procs, func(p api.Proc) string { return p.ProcName })
}

// GET /api/v1/apps/:app/procs/:proc/
func (s *Server) getProc(c *call) (any, error) {
	app := appTarget(c, "app")
	ps, err := s.eng.GetProc(c.ctx(), c.id, app, c.param("proc"))
	if err != nil {
		return nil, err
	}
	return procOut(app, ps), nil
}

// POST /api/v1/apps/:app/procs/ {"procname"} — deploy a proc that was
// undeployed (or failed) again.
func (s *Server) deployProc(c *call) (any, error) {
	app := appTarget(c, "app")
	var in api.ProcDeployRequest
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if c.target != "" {
		c.target = app + "/" + in.ProcName
	}
	ch, err := s.eng.DeployProc(c.ctx(), c.id, app, in.ProcName)
	if err != nil {
		return nil, err
	}
	return accepted(ch), nil
}

// PATCH /api/v1/apps/:app/procs/:proc/ {"num_instances"} or {"cpu","memory"}.
// The two kinds cannot take effect together: with both, num_instances is
// applied and cpu/memory are not, and the answer says so.
func (s *Server) patchProc(c *call) (any, error) {
	app, proc := appTarget(c, "app"), c.param("proc")
	var in api.ProcPatchRequest
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if c.target != "" {
		c.target = app + "/" + proc
	}
	ch, err := s.eng.ResizeProc(c.ctx(), c.id, app, proc, engine.ProcSize{NumInstances: in.NumInstances, CPU: in.CPU, Memory: in.Memory})
	if err != nil {
		return nil, err
	}
	return accepted(ch), nil
}

// DELETE /api/v1/apps/:app/procs/:proc/ — undeploy one proc.
func (s *Server) undeployProc(c *call) (any, error) {
	app, proc := appTarget(c, "app"), c.param("proc")
	if c.target != "" {
		c.target = app + "/" + proc
	}
	ch, err := s.eng.UndeployProc(c.ctx(), c.id, app, proc)
	if err != nil {
		return nil, err
	}
	return accepted(ch), nil
}

// ignoredMessage explains Operation.Ignored.
const ignoredMessage = "num_instances and cpu/memory cannot take effect together: num_instances was applied; send cpu/memory in a separate request"

// operationOut is the answer of an operation (api.Operation).
func operationOut(ch *engine.Change) *api.Operation {
	a, d := ch.App, ch.Deploy
	out := &api.Operation{
		AppName: a.Name, MetaVersion: a.MetaVersion, Generation: d.Generation,
		Operation: d.Operation, State: string(d.State),
		Watch: "/api/v1/apps/" + a.Name + "/", Events: "/api/v1/apps/" + a.Name + "/events/",
		ResourceInstances: ch.ResourceInstances, ProcName: ch.Proc, Ignored: ch.Ignored,
	}
	if len(ch.Ignored) > 0 {
		out.Message = ignoredMessage
	}
	return out
}

// accepted is the 202 answer of an operation.
func accepted(ch *engine.Change) *reply {
	return &reply{Status: http.StatusAccepted, Body: operationOut(ch)}
}
