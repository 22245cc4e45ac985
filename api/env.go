package api

import (
	"net/http"
	"net/url"
)

// EnvVar is one of an app's variables (GET /apps/:app/env). A private
// value is shown as "*** (private)".
type EnvVar struct {
	Name   string `json:"name"`   // the variable's name
	Value  string `json:"value"`  // its value, or "*** (private)"
	Public bool   `json:"public"` // false for a private variable (kept in Secrets)
}

// EnvSetVar is one variable of EnvSetRequest.
type EnvSetVar struct {
	Name  string `json:"name"`  // the variable's name
	Value string `json:"value"` // its value
	// Public overrides EnvSetRequest.Private for this variable.
	Public *bool `json:"public,omitempty"`
}

// EnvSetRequest is the body of POST /apps/:app/env. (The endpoint also
// takes a flat object {"KEY": "value", ...} of public variables: SetFlat.)
type EnvSetRequest struct {
	Envs []EnvSetVar `json:"envs"` // the variables to set
	// Private makes the variables private (kept in Secrets, masked when read).
	Private bool `json:"private,omitempty"`
	// NoRestart changes the variables without redeploying the app.
	NoRestart bool `json:"norestart,omitempty"`
}

// EnvUnsetRequest is the body of DELETE /apps/:app/env.
type EnvUnsetRequest struct {
	Names     []string `json:"names"`               // the variables to remove
	NoRestart bool     `json:"norestart,omitempty"` // removes them without redeploying the app
}

// Env is an app's environment variables (/apps/:app/env).
type Env struct{ c *Client }

// Env returns the environment variables resource.
func (c *Client) Env() *Env { return &Env{c} }

// List returns the app's variables, private values masked:
// GET /apps/:app/env (app.env.read).
func (e *Env) List(app string, q *QueryOptions) ([]EnvVar, *QueryMeta, error) {
	var out []EnvVar
	qm, err := e.c.query("/apps/"+esc(app)+"/env", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// envWrite answers the operation a write started (202), or nil when the
// change was made at once (200: the app is not deployed, or NoRestart).
func (e *Env) envWrite(method, app string, params url.Values, body any, w *WriteOptions) (*Operation, *WriteMeta, error) {
	var out Operation
	wm, err := e.c.write(method, "/apps/"+esc(app)+"/env", params, body, &out, w)
	if err != nil {
		return nil, nil, err
	}
	if wm.StatusCode != http.StatusAccepted {
		return nil, wm, nil
	}
	return &out, wm, nil
}

// Set sets variables: POST /apps/:app/env (app.env.set). A deployed app
// is redeployed (unless NoRestart): the Operation started is returned;
// otherwise it is nil.
func (e *Env) Set(app string, req *EnvSetRequest, w *WriteOptions) (*Operation, *WriteMeta, error) {
	return e.envWrite(http.MethodPost, app, nil, req, w)
}

// SetFlat sets public variables given as a flat object: POST /apps/:app/env.
func (e *Env) SetFlat(app string, vars map[string]string, w *WriteOptions) (*Operation, *WriteMeta, error) {
	return e.envWrite(http.MethodPost, app, nil, vars, w)
}

// Unset removes variables: DELETE /apps/:app/env (app.env.unset), with the
// names in the body. Like Set, it redeploys a deployed app.
func (e *Env) Unset(app string, req *EnvUnsetRequest, w *WriteOptions) (*Operation, *WriteMeta, error) {
	return e.envWrite(http.MethodDelete, app, nil, req, w)
}
