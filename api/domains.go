package api

import (
	"net/http"
	"net/url"
)

// DomainsRequest is the body of POST /apps/:app/cname (tsuru's cname) and,
// optionally, of DELETE /apps/:app/cname (which also takes ?cname=HOST).
type DomainsRequest struct {
	// CName are host names (DNS names, e.g. www.example.com); a host name
	// belongs to one app only, and names under the apps domain are the
	// apps' own.
	CName []string `json:"cname"`
}

// Domains is an app's routes (GET /apps/:app/cname).
type Domains struct {
	AppName string `json:"appname"` // the app's name
	// Routes are all the host names the router sends to the app's web
	// proc: its own first, then its custom domains; never null.
	Routes []string `json:"routes"`
	// CName are its custom domains; never null.
	CName []string `json:"cname"`
}

// AppDomains is an app's custom domains (tsuru's cname).
type AppDomains struct{ c *Client }

// Domains returns the custom domains resource.
func (c *Client) Domains() *AppDomains { return &AppDomains{c} }

// List returns the app's routes and custom domains: GET /apps/:app/cname
// (app.read).
func (d *AppDomains) List(app string, q *QueryOptions) (*Domains, *QueryMeta, error) {
	var out Domains
	qm, err := d.c.query("/apps/"+esc(app)+"/cname", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

func (d *AppDomains) write(method, app string, params url.Values, body any, w *WriteOptions) (*DomainsChange, *WriteMeta, error) {
	var out DomainsChange
	wm, err := d.c.write(method, "/apps/"+esc(app)+"/cname", params, body, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Add gives the app host names: POST /apps/:app/cname (app.domain.add).
// A host name another app has is a 409 naming that app. The answer's
// Operation is the redeploy of a deployed app's routes.
func (d *AppDomains) Add(app string, hosts []string, w *WriteOptions) (*DomainsChange, *WriteMeta, error) {
	return d.write(http.MethodPost, app, nil, &DomainsRequest{CName: hosts}, w)
}

// Remove takes custom host names from the app: DELETE
// /apps/:app/cname?cname=HOST (app.domain.remove).
func (d *AppDomains) Remove(app string, hosts []string, w *WriteOptions) (*DomainsChange, *WriteMeta, error) {
	return d.write(http.MethodDelete, app, url.Values{"cname": hosts}, nil, w)
}

// DomainsChange is the answer of POST and DELETE /apps/:app/cname: the
// app's routes after the change and, when the app is deployed, the
// redeploy of its routes that the change started (202; 200 without it).
type DomainsChange struct {
	AppName string   `json:"appname"` // the app's name
	Routes  []string `json:"routes"`  // all its host names, its own first; never null
	CName   []string `json:"cname"`   // its custom domains; never null
	// Operation is the redeploy started; absent when the app is not deployed.
	Operation *Operation `json:"operation,omitempty"`
}
