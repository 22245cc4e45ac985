package server

import (
	"fmt"

	"github.com/berthpaas/berth/engine"
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
func deployedOut(d *engine.DeployedApp) *deployedView {
	a := d.App
	v := &deployedView{AppName: a.Name, AppType: a.AppType, MetaVersion: a.MetaVersion, Generation: a.Generation, Routes: a.Routes, Procs: []procView{}, Resource: a.Resource, Client: a.Client}
	if v.Routes == nil {
		v.Routes = []string{}
	}
	v.ProgressDeadline, v.AutoRevert = d.ProgressDeadline.String(), d.AutoRevert
	if d.Deploy != nil {
		v.State, v.Message, v.Operation, v.Deploy = string(d.Deploy.State), d.Deploy.Message, d.Deploy.Operation, d.Deploy
	}
	for i := range d.Procs {
		v.Procs = append(v.Procs, procOut(a.Name, &d.Procs[i]))
	}
	return v
}

func procOut(app string, ps *engine.ProcStatus) procView {
	p := ps.Proc
	pv := procView{ProcName: p.Name, Type: p.Type, NumInstances: ps.Instances, CPU: ps.CPU, Memory: fmt.Sprintf("%dm", ps.MemoryMB), Cmd: p.Cmd, Image: p.Image, Port: p.Port, Deployed: ps.Deployed, Instances: []instanceView{}}
	for _, in := range ps.Units {
		pv.Instances = append(pv.Instances, instanceView{Name: fmt.Sprintf("%s.%s.%d", app, in.Proc, in.Index), Index: in.Index, ID: in.ID, State: string(in.State), Address: in.Address, PID: in.PID, Restarts: in.Restarts, Message: in.Message})
	}
	return pv
}

func deployedList(ds []*engine.DeployedApp) []*deployedView {
	out := []*deployedView{}
	for _, d := range ds {
		out = append(out, deployedOut(d))
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
	ds, err := s.eng.ListDeployed(c.ctx(), c.id, c.r.URL.Query().Get("apptype"))
	if err != nil {
		return nil, err
	}
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

// deployPolicyIn is the optional per-app deploy policy a deploy request
// may set; it is kept on the app for its later operations.
type deployPolicyIn struct {
	ProgressDeadline *string `json:"progress_deadline"`
	AutoRevert       *bool   `json:"auto_revert"`
}

func (p deployPolicyIn) settings() engine.DeploySettings {
	return engine.DeploySettings{ProgressDeadline: p.ProgressDeadline, AutoRevert: p.AutoRevert}
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
	if names.App(in.AppName) == nil {
		c.target = in.AppName
	}
	ch, err := s.eng.DeployLatest(c.ctx(), c.id, in.AppName, in.settings())
	if err != nil {
		return nil, err
	}
	return accepted(ch), nil
}

// PUT /api/v1/apps/:app/ {"meta_version"} — deploy that version (also rollback).
func (s *Server) updateDeployed(c *call) (any, error) {
	app := appTarget(c, "app")
	var in struct {
		MetaVersion string `json:"meta_version"`
		deployPolicyIn
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	ch, err := s.eng.DeployVersion(c.ctx(), c.id, app, in.MetaVersion, in.settings())
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
	return deployedOut(d).Procs, nil
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
	var in struct {
		ProcName string `json:"procname"`
	}
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
	var in struct {
		NumInstances *int     `json:"num_instances"`
		CPU          *float64 `json:"cpu"`
		Memory       any      `json:"memory"`
	}
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

// accepted is the 202 answer of an operation.
func accepted(ch *engine.Change) *reply {
	a, d := ch.App, ch.Deploy
	body := map[string]any{
		"appname": a.Name, "meta_version": a.MetaVersion, "generation": d.Generation,
		"operation": d.Operation, "state": d.State,
		"watch": "/api/v1/apps/" + a.Name + "/", "events": "/api/v1/apps/" + a.Name + "/events/",
	}
	if len(ch.ResourceInstances) > 0 {
		body["resource_instances"] = ch.ResourceInstances
	}
	if ch.Proc != "" {
		body["procname"] = ch.Proc
	}
	if len(ch.Ignored) > 0 {
		body["ignored"] = ch.Ignored
		body["message"] = "num_instances and cpu/memory cannot take effect together: num_instances was applied; send cpu/memory in a separate request"
	}
	return &reply{Status: 202, Body: body}
}
