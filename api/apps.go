package api

import (
	"net/http"
	"net/url"
	"time"
)

// App is the tsuru view of a registered app (GET /apps, GET /apps/:app).
// Field names are tsuru's (capitalised).
type App struct {
	Name     string `json:"Name"`     // the app's name
	Platform string `json:"Platform"` // the platform named at registration
	// Framework repeats Platform (tsuru clients read either).
	Framework string `json:"Framework"`
	// Repository is the app's git URL.
	Repository string `json:"Repository"`
	// Ip is the app's first public route, if any.
	Ip string `json:"Ip"`
	// CName are its custom domains (tsuru's cname), routed beside Ip;
	// never null.
	CName []string `json:"cname"`
	// State is the state of its deploy ("" when never deployed).
	State     string `json:"State"`
	Owner     string `json:"Owner"`     // the email of the user who registered it
	TeamOwner string `json:"TeamOwner"` // the team that owns it
	// Teams are the teams with access, sorted; never null.
	Teams []string `json:"Teams"`
	// Units are its running instances.
	Units []Unit `json:"Units"`
	// AppType is app, service, resource or resource-instance.
	AppType string `json:"AppType"`
	// MetaVersion is the release it is deployed at.
	MetaVersion string    `json:"MetaVersion"`
	Created     time.Time `json:"Created"` // when the app was registered
}

// Unit is one instance of an app in the tsuru view.
type Unit struct {
	// Name is "<app>/<proc>/<index>".
	Name  string `json:"Name"`
	Ip    string `json:"Ip"`    // its address (host:port)
	State string `json:"State"` // its state as the scheduler reports it
}

// AppCreateRequest is the body of POST /apps (tsuru's fields; Plan and Pool
// are accepted and ignored).
type AppCreateRequest struct {
	Name      string `json:"name"`                // the app's name (lowercase letters, digits and dashes)
	Platform  string `json:"platform,omitempty"`  // one of GET /platforms
	TeamOwner string `json:"teamOwner,omitempty"` // the owner team (default: the caller's)
	Plan      string `json:"plan,omitempty"`      // accepted for tsuru clients; ignored
	Pool      string `json:"pool,omitempty"`      // accepted for tsuru clients; ignored
}

// AppCreated is the answer of POST /apps.
type AppCreated struct {
	// Status is "success".
	Status        string `json:"status"`
	RepositoryURL string `json:"repository_url"` // the app's git URL
}

// Apps is the tsuru-style apps resource (/apps).
type Apps struct{ c *Client }

// Apps returns the tsuru-style apps resource.
func (c *Client) Apps() *Apps { return &Apps{c} }

// List returns the apps the caller may see: GET /apps.
func (a *Apps) List(q *QueryOptions) ([]App, *QueryMeta, error) {
	var out []App
	qm, err := a.c.query("/apps", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Get returns one app: GET /apps/:app (app.read).
func (a *Apps) Get(name string, q *QueryOptions) (*App, *QueryMeta, error) {
	var out App
	qm, err := a.c.query("/apps/"+esc(name), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Create registers an app: POST /apps (app.create; counts against the
// caller's quota).
func (a *Apps) Create(req *AppCreateRequest, w *WriteOptions) (*AppCreated, *WriteMeta, error) {
	var out AppCreated
	wm, err := a.c.write(http.MethodPost, "/apps", nil, req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Remove unregisters an app, undeploying it and revoking its app tokens:
// DELETE /apps/:app (app.remove; owners).
func (a *Apps) Remove(name string, w *WriteOptions) (*WriteMeta, error) {
	return a.c.write(http.MethodDelete, "/apps/"+esc(name), nil, nil, nil, w)
}

// SwapResult is the answer of PUT /swap: each app's routes after the swap
// (an app without routes has null).
type SwapResult map[string][]string

// Restart restarts every instance of a deployed app (rolling):
// GET /apps/:app/restart (app.restart). The answer is 200 with the
// operation started.
func (a *Apps) Restart(name string, w *WriteOptions) (*Operation, *WriteMeta, error) {
	r := a.c.newRequest(http.MethodGet, "/apps/"+esc(name)+"/restart")
	r.setWrite(w)
	var out Operation
	resp, rtt, err := a.c.call(r, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, &WriteMeta{RequestID: resp.Header.Get("X-Request-Id"), StatusCode: resp.StatusCode, RequestTime: rtt}, nil
}

// Swap exchanges two apps' public routes (blue-green; swapping again
// restores them): PUT /swap?app1=&app2= (app.swap on both).
func (a *Apps) Swap(app1, app2 string, w *WriteOptions) (SwapResult, *WriteMeta, error) {
	var out SwapResult
	wm, err := a.c.write(http.MethodPut, "/swap", url.Values{"app1": {app1}, "app2": {app2}}, nil, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return out, wm, nil
}
