package api

import "net/http"

// ProcDeployRequest is the body of POST /api/v1/apps/:app/procs/.
type ProcDeployRequest struct {
	ProcName string `json:"procname"` // the proc to deploy again
}

// ProcPatchRequest is the body of PATCH /api/v1/apps/:app/procs/:proc/:
// NumInstances, or CPU and/or Memory. With both kinds, NumInstances is
// applied and the others are not (Operation.Ignored says so).
type ProcPatchRequest struct {
	NumInstances *int     `json:"num_instances,omitempty"` // the new number of instances
	CPU          *float64 `json:"cpu,omitempty"`           // the new CPU, in cores
	// Memory is a size: a string with a k, m or g suffix ("256m"), or a
	// number of bytes.
	Memory any `json:"memory,omitempty"`
}

// Procs is a deployed app's procs (/api/v1/apps/:app/procs).
type Procs struct{ c *Client }

// Procs returns the procs resource.
func (c *Client) Procs() *Procs { return &Procs{c} }

// List returns the app's procs: GET /api/v1/apps/:app/procs/ (app.read).
func (p *Procs) List(app string, q *QueryOptions) ([]Proc, *QueryMeta, error) {
	var out []Proc
	qm, err := p.c.query("/api/v1/apps/"+esc(app)+"/procs/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Get returns one proc: GET /api/v1/apps/:app/procs/:proc/ (app.read).
func (p *Procs) Get(app, proc string, q *QueryOptions) (*Proc, *QueryMeta, error) {
	var out Proc
	qm, err := p.c.query("/api/v1/apps/"+esc(app)+"/procs/"+esc(proc)+"/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Deploy deploys again a proc that was undeployed (or failed):
// POST /api/v1/apps/:app/procs/ (proc.deploy).
func (p *Procs) Deploy(app, proc string, w *WriteOptions) (*Operation, *WriteMeta, error) {
	var out Operation
	wm, err := p.c.write(http.MethodPost, "/api/v1/apps/"+esc(app)+"/procs/", nil, &ProcDeployRequest{ProcName: proc}, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Patch scales or resizes a proc: PATCH /api/v1/apps/:app/procs/:proc/
// (proc.patch).
func (p *Procs) Patch(app, proc string, req *ProcPatchRequest, w *WriteOptions) (*Operation, *WriteMeta, error) {
	var out Operation
	wm, err := p.c.write(http.MethodPatch, "/api/v1/apps/"+esc(app)+"/procs/"+esc(proc)+"/", nil, req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Scale sets a proc's number of instances (Patch with NumInstances).
func (p *Procs) Scale(app, proc string, n int, w *WriteOptions) (*Operation, *WriteMeta, error) {
	return p.Patch(app, proc, &ProcPatchRequest{NumInstances: &n}, w)
}

// Undeploy stops one proc: DELETE /api/v1/apps/:app/procs/:proc/
// (proc.undeploy).
func (p *Procs) Undeploy(app, proc string, w *WriteOptions) (*Operation, *WriteMeta, error) {
	var out Operation
	wm, err := p.c.write(http.MethodDelete, "/api/v1/apps/"+esc(app)+"/procs/"+esc(proc)+"/", nil, nil, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}
