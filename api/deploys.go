package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Deploy states (DeployedApp.State, Deploy.State, Operation.State).
const (
	DeployPending    = "pending"
	DeployDeploying  = "deploying"
	DeployRunning    = "running"
	DeployFailed     = "failed"
	DeployUndeployed = "undeployed"
)

// DeployedApp is the LAIN view of a deployed app (GET /api/v1/apps/,
// GET /api/v1/apps/:app/, GET /api/v1/resources/:resource/instances/).
type DeployedApp struct {
	AppName     string `json:"appname"`      // the app's name
	AppType     string `json:"apptype"`      // app, service or resource-instance
	MetaVersion string `json:"meta_version"` // the release it is (being) deployed at
	// State is the state of its last operation (see the Deploy* constants).
	State string `json:"state"`
	// Message says why, when State is failed.
	Message   string `json:"message,omitempty"`
	Operation string `json:"operation,omitempty"` // its last operation, e.g. "deploy 1700000000-abc"
	// Generation counts the changes of its desired state.
	Generation int64 `json:"generation"`
	// Routes are its public addresses; never null.
	Routes []string `json:"routes"`
	// Procs are the procs of its release; never null.
	Procs []Proc `json:"procs"`
	// Resource is, for a resource instance, the resource it runs.
	Resource string `json:"resource,omitempty"`
	// Client is, for a resource instance, the app it serves.
	Client string `json:"client,omitempty"`
	// Deploy is its last operation's record.
	Deploy *Deploy `json:"deploy,omitempty"`
	// ProgressDeadline is the deploy deadline in effect (a Go duration).
	ProgressDeadline string `json:"progress_deadline"`
	// AutoRevert says whether a failed deploy goes back to the last
	// running release.
	AutoRevert bool `json:"auto_revert"`
	// SchedulerStale is present only when the scheduler (Nomad) did not
	// answer within the server's scheduler_timeout: the procs' instances
	// shown are the last ones it reported, and it says since when.
	SchedulerStale *SchedulerStale `json:"scheduler_stale,omitempty"`
}

// SchedulerStale says that an answer shows the scheduler's last known
// state because the scheduler did not answer (it is down, frozen or too
// slow).
type SchedulerStale struct {
	// Since is when the scheduler stopped answering about the app.
	Since time.Time `json:"since"`
	// AsOf is when the instances shown were read from the scheduler;
	// absent when this server has none (the instances are then empty).
	AsOf *time.Time `json:"as_of,omitempty"`
	// Age is how old the instances shown are (a Go duration, now - AsOf);
	// absent with AsOf.
	Age string `json:"age,omitempty"`
	// Error says why the scheduler did not answer.
	Error string `json:"error"`
}

// Proc is one proc of a deployed app (GET /api/v1/apps/:app/procs/...).
type Proc struct {
	ProcName string `json:"procname"` // the proc's name
	// Type is web, worker, portal or oneshot.
	Type         string  `json:"proctype"`
	NumInstances int     `json:"num_instances"` // its desired number of instances (0 when undeployed)
	CPU          float64 `json:"cpu"`           // its CPU, in cores
	// Memory is "<MiB>m".
	Memory string `json:"memory"`
	Cmd    string `json:"cmd,omitempty"`   // the command it runs
	Image  string `json:"image,omitempty"` // the Docker image it runs
	Port   int    `json:"port,omitempty"`  // the port it listens on (in $PORT)
	// Deployed is false for a proc undeployed on its own.
	Deployed bool `json:"deployed"`
	// Instances are its instances as the scheduler reports them.
	Instances []Instance `json:"instances"`
}

// Instance is one running (or failed) instance of a proc.
type Instance struct {
	// Name is "<app>.<proc>.<index>".
	Name  string `json:"name"`
	Index int    `json:"index"` // its index within the proc, from 0
	ID    string `json:"id"`    // the scheduler's id of the instance
	State string `json:"state"` // the scheduler's state, e.g. pending, running, failed
	// Address is host:port, for procs with a port.
	Address  string `json:"address,omitempty"`
	PID      int    `json:"pid,omitempty"`     // its process id (local scheduler)
	Restarts int    `json:"restarts"`          // how often it was restarted
	Message  string `json:"message,omitempty"` // the scheduler's word on its state
}

// Deploy is the record of an app's last operation (DeployedApp.Deploy, and
// each event of GET /api/v1/apps/:app/events/).
type Deploy struct {
	AppName     string    `json:"appname"`           // the app
	Generation  int64     `json:"generation"`        // the app's generation the operation is for
	Operation   string    `json:"operation"`         // what was asked, e.g. "deploy 1700000000-abc", "scale web to 2"
	MetaVersion string    `json:"meta_version"`      // the release being deployed ("" for an undeploy)
	State       string    `json:"state"`             // pending, deploying, running, failed or undeployed
	Message     string    `json:"message,omitempty"` // why, when State is failed
	By          string    `json:"by,omitempty"`      // who started the operation
	Updated     time.Time `json:"updated"`           // when the record last changed
	// Started is when the operation was asked for (absent in older records).
	Started time.Time `json:"started,omitzero"`
	// Deadline is when a deploy that has not converged is failed.
	Deadline *time.Time `json:"deadline,omitempty"`
	// AutoRevert says whether a failure of this deploy reverts the app.
	AutoRevert bool `json:"auto_revert,omitempty"`
	// LastRunning is the last release of the app that reached running.
	LastRunning string `json:"last_running,omitempty"`
	// Reverted, on an automatic revert's record, is the deploy that failed.
	Reverted *Reverted `json:"reverted,omitempty"`
}

// Reverted names the failed deploy an automatic revert undid.
type Reverted struct {
	Generation  int64  `json:"generation"`   // the generation of the deploy that failed
	MetaVersion string `json:"meta_version"` // the release that failed
	Message     string `json:"message"`      // why it failed
}

// Operation is the answer of a change to a deployed app (202; 200 for
// GET /apps/:app/restart): the operation started. Follow it with
// Deploys().Get (Watch) or Deploys().Events (Events).
type Operation struct {
	AppName     string `json:"appname"`      // the app
	MetaVersion string `json:"meta_version"` // the release the app is at
	Generation  int64  `json:"generation"`   // the app's new generation
	Operation   string `json:"operation"`    // what was asked, e.g. "restart"
	State       string `json:"state"`        // the operation's state (pending at first)
	// Watch is the path of the app's view.
	Watch string `json:"watch"`
	// Events is the path of the app's events stream.
	Events string `json:"events"`
	// ResourceInstances are, for a deploy, the resource instances created
	// or moved for the resources the release uses.
	ResourceInstances []string `json:"resource_instances,omitempty"`
	// ProcName is the proc of a proc operation.
	ProcName string `json:"procname,omitempty"`
	// Ignored lists the fields of a PATCH that did not take effect.
	Ignored []string `json:"ignored,omitempty"`
	// Message explains Ignored.
	Message string `json:"message,omitempty"`
}

// DeployPolicy is the optional deploy policy of a deploy request; it is
// kept on the app for its later operations.
type DeployPolicy struct {
	// ProgressDeadline is a Go duration ("90s", "5m") within the server's
	// bounds; "" goes back to the default.
	ProgressDeadline *string `json:"progress_deadline,omitempty"`
	// AutoRevert sets whether a failed deploy reverts.
	AutoRevert *bool `json:"auto_revert,omitempty"`
}

// DeployRequest is the body of POST /api/v1/apps/: deploy the latest
// pushed release.
type DeployRequest struct {
	AppName string `json:"appname"` // the app to deploy
	DeployPolicy
}

// DeployVersionRequest is the body of PUT /api/v1/apps/:app/: deploy that
// release (also a rollback).
type DeployVersionRequest struct {
	MetaVersion string `json:"meta_version"` // the pushed release to deploy
	DeployPolicy
}

// DeployEvent is one event of GET /api/v1/apps/:app/events/.
type DeployEvent struct {
	// Index is the event's id: the modify index of the deploy record.
	Index uint64
	// Type is the event's name: the deploy state, or "error" (the store
	// did not answer; the server retries).
	Type string
	// Deploy is the record (nil for an "error" event).
	Deploy *Deploy
	// Error is the message of an "error" event.
	Error string
}

// Deploys is the LAIN-style deploy engine (/api/v1/apps).
type Deploys struct{ c *Client }

// Deploys returns the deploys resource.
func (c *Client) Deploys() *Deploys { return &Deploys{c} }

// List returns the deployed apps the caller may see: GET /api/v1/apps/
// (q.Params "apptype" filters: app, service, resource, resource-instance).
func (d *Deploys) List(q *QueryOptions) ([]DeployedApp, *QueryMeta, error) {
	var out []DeployedApp
	qm, err := d.c.query("/api/v1/apps/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Get returns a deployed app with its procs and instances:
// GET /api/v1/apps/:app/ (app.read). An app that is not deployed is a 404.
func (d *Deploys) Get(app string, q *QueryOptions) (*DeployedApp, *QueryMeta, error) {
	var out DeployedApp
	qm, err := d.c.query("/api/v1/apps/"+esc(app)+"/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Deploy deploys the app's latest pushed release: POST /api/v1/apps/
// (app.deploy). A busy app is a 409 naming the lease holder
// (Error.LockHolder).
func (d *Deploys) Deploy(req *DeployRequest, w *WriteOptions) (*Operation, *WriteMeta, error) {
	var out Operation
	wm, err := d.c.write(http.MethodPost, "/api/v1/apps/", nil, req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// DeployVersion deploys a pushed release (or rolls back to it):
// PUT /api/v1/apps/:app/ (app.update).
func (d *Deploys) DeployVersion(app string, req *DeployVersionRequest, w *WriteOptions) (*Operation, *WriteMeta, error) {
	var out Operation
	wm, err := d.c.write(http.MethodPut, "/api/v1/apps/"+esc(app)+"/", nil, req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Undeploy stops the app, keeping its registration:
// DELETE /api/v1/apps/:app/ (app.undeploy).
func (d *Deploys) Undeploy(app string, w *WriteOptions) (*Operation, *WriteMeta, error) {
	var out Operation
	wm, err := d.c.write(http.MethodDelete, "/api/v1/apps/"+esc(app)+"/", nil, nil, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Events follows GET /api/v1/apps/:app/events/ (app.read), a Server-Sent
// Events stream of the app's operation progress, calling fn for each event
// until ctx ends, fn returns an error (returned as is), or, with
// untilFinal, the operation reaches running, failed or undeployed (nil).
// The client's HTTPClient must not have a Timeout shorter than the stream.
func (d *Deploys) Events(ctx context.Context, app string, untilFinal bool, fn func(DeployEvent) error) error {
	r := d.c.newRequest(http.MethodGet, "/api/v1/apps/"+esc(app)+"/events/")
	r.ctx = ctx
	if untilFinal {
		r.params = url.Values{"until": {"final"}}
	}
	resp, _, err := d.c.do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ev DeployEvent
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Type == "" && data.Len() == 0 {
				continue
			}
			if ev.Type == "error" {
				_ = json.Unmarshal([]byte(data.String()), &ev.Error)
			} else {
				var dep Deploy
				if err := json.Unmarshal([]byte(data.String()), &dep); err == nil {
					ev.Deploy = &dep
				}
			}
			if err := fn(ev); err != nil {
				return err
			}
			ev, data = DeployEvent{}, strings.Builder{}
		case strings.HasPrefix(line, ":"):
			// a comment: the stream's greeting or a keepalive
		case strings.HasPrefix(line, "id: "):
			ev.Index, _ = strconv.ParseUint(strings.TrimPrefix(line, "id: "), 10, 64)
		case strings.HasPrefix(line, "event: "):
			ev.Type = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data.WriteString(strings.TrimPrefix(line, "data: "))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return sc.Err()
}

// Wait polls the app (GET /api/v1/apps/:app/) every interval until its
// operation settles (running, failed or undeployed, or the app is no
// longer deployed: a 404, answered as nil), calling fn (if not nil) with
// each state seen. It returns the last view.
func (d *Deploys) Wait(ctx context.Context, app string, interval time.Duration, fn func(*DeployedApp)) (*DeployedApp, error) {
	q := (&QueryOptions{}).WithContext(ctx)
	for {
		v, _, err := d.Get(app, q)
		if IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if fn != nil {
			fn(v)
		}
		switch v.State {
		case DeployRunning, DeployFailed, DeployUndeployed:
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(interval):
		}
	}
}
