package api

import (
	"net/http"
	"net/url"
	"time"
)

// Repo is the LAIN view of a registered app (GET /api/v1/repos/,
// GET /api/v1/repos/:app/, POST /api/v1/repos/).
type Repo struct {
	AppName string `json:"appname"` // the app's name
	// AppType is app, service, resource or resource-instance.
	AppType string `json:"apptype"`
	GitURL  string `json:"giturl"` // the app's git URL
	Owner   string `json:"owner"`  // the email of the user who registered it
	// Teams are the teams with access, sorted; never null.
	Teams []string `json:"teams"`
	// MetaVersion is the release it is deployed at ("" if none).
	MetaVersion string    `json:"meta_version"`
	Created     time.Time `json:"created"` // when the app was registered
}

// RepoCreateRequest is the body of POST /api/v1/repos/.
type RepoCreateRequest struct {
	AppName string `json:"appname"` // the app's name
	// AppType is app (default), service or resource.
	AppType string `json:"apptype,omitempty"`
	// Team is the owner team (default: the caller's).
	Team string `json:"team,omitempty"`
}

// RepoDetails is the answer of GET /api/v1/repos/:app/details/.
type RepoDetails struct {
	AppName     string `json:"appname"`      // the app's name
	GitURL      string `json:"giturl"`       // the app's git URL
	MetaVersion string `json:"meta_version"` // the release it is deployed at
	Deployed    bool   `json:"deployed"`     // whether the app is deployed
	// LatestMetaVersion is the newest pushed release ("" if none).
	LatestMetaVersion string `json:"latest_meta_version"`
}

// Role is a user's role on an app (GET /api/v1/repos/:app/roles/...).
type Role struct {
	AppName  string `json:"appname"`  // the app
	Username string `json:"username"` // the user (or app token) asked about
	// Role is owner, admin or developer; for GET .../roles/ also
	// "site-admin" or "" (no role).
	Role string `json:"role"`
}

// PushRequest is the JSON body of POST /api/v1/repos/:app/push/: a
// meta_version and the release spec, as Spec (lain.yaml as an object) or
// as LainYAML (lain.yaml's text). Give one of the two.
type PushRequest struct {
	// MetaVersion names the release: "<unix time>-<git sha>". A body
	// without it takes the query's ?meta_version= (as PushYAML sends it).
	MetaVersion string `json:"meta_version,omitempty"`
	// Spec is lain.yaml as an object (appname, web:, worker.x:, ...).
	Spec map[string]any `json:"spec,omitempty"`
	// LainYAML is lain.yaml as text.
	LainYAML string `json:"lain_yaml,omitempty"`
}

// ReleaseProc is one proc of a release as the server understood it.
type ReleaseProc struct {
	Name string `json:"name"` // the proc's name
	// Type is web, worker, portal or oneshot.
	Type         string            `json:"type"`
	Cmd          string            `json:"cmd,omitempty"`         // the command it runs
	Image        string            `json:"image,omitempty"`       // the Docker image it runs
	Port         int               `json:"port,omitempty"`        // the port it listens on
	NumInstances int               `json:"num_instances"`         // its number of instances
	CPU          float64           `json:"cpu"`                   // its CPU, in cores
	MemoryMB     int               `json:"memory_mb"`             // its memory, in MiB
	Env          map[string]string `json:"env,omitempty"`         // its own variables
	HealthCheck  string            `json:"healthcheck,omitempty"` // the HTTP path of its health check
}

// PushResult is the answer of POST /api/v1/repos/:app/push/ (201 "pushed";
// 200 "unchanged" when the same release was pushed before).
type PushResult struct {
	AppName     string `json:"appname"`      // the app
	MetaVersion string `json:"meta_version"` // the release recorded
	// Status is "pushed" or "unchanged".
	Status string        `json:"status"`
	Procs  []ReleaseProc `json:"procs"` // the release's procs as the server understood them
}

// Repos is the LAIN-style registration resource (/api/v1/repos).
type Repos struct{ c *Client }

// Repos returns the repos resource.
func (c *Client) Repos() *Repos { return &Repos{c} }

// List returns the apps the caller may see: GET /api/v1/repos/.
func (r *Repos) List(q *QueryOptions) ([]Repo, *QueryMeta, error) {
	var out []Repo
	qm, err := r.c.query("/api/v1/repos/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Get returns one app: GET /api/v1/repos/:app/ (app.read).
func (r *Repos) Get(app string, q *QueryOptions) (*Repo, *QueryMeta, error) {
	var out Repo
	qm, err := r.c.query("/api/v1/repos/"+esc(app)+"/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Create registers an app: POST /api/v1/repos/ (repo.create; 201).
func (r *Repos) Create(req *RepoCreateRequest, w *WriteOptions) (*Repo, *WriteMeta, error) {
	var out Repo
	wm, err := r.c.write(http.MethodPost, "/api/v1/repos/", nil, req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Details returns the app's deployed and latest releases:
// GET /api/v1/repos/:app/details/ (app.read).
func (r *Repos) Details(app string, q *QueryOptions) (*RepoDetails, *QueryMeta, error) {
	var out RepoDetails
	qm, err := r.c.query("/api/v1/repos/"+esc(app)+"/details/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// MyRole returns the caller's role on the app: GET /api/v1/repos/:app/roles/.
func (r *Repos) MyRole(app string, q *QueryOptions) (*Role, *QueryMeta, error) {
	var out Role
	qm, err := r.c.query("/api/v1/repos/"+esc(app)+"/roles/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// UserRole returns a user's role on the app (404 if none):
// GET /api/v1/repos/:app/roles/:username/ (app maintainers' read).
func (r *Repos) UserRole(app, email string, q *QueryOptions) (*Role, *QueryMeta, error) {
	var out Role
	qm, err := r.c.query("/api/v1/repos/"+esc(app)+"/roles/"+esc(email)+"/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Push records a release given as JSON: POST /api/v1/repos/:app/push/
// (repo.push). Pushing a meta_version again with another spec is a 409.
func (r *Repos) Push(app string, req *PushRequest, w *WriteOptions) (*PushResult, *WriteMeta, error) {
	var out PushResult
	wm, err := r.c.write(http.MethodPost, "/api/v1/repos/"+esc(app)+"/push/", nil, req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// PushYAML records a release from lain.yaml's text (YAML, or the same as
// JSON), with metaVersion in the query (a meta_version in the file wins):
// POST /api/v1/repos/:app/push/?meta_version= (repo.push).
func (r *Repos) PushYAML(app, metaVersion string, lainYAML []byte, w *WriteOptions) (*PushResult, *WriteMeta, error) {
	var params url.Values
	if metaVersion != "" {
		params = url.Values{"meta_version": {metaVersion}}
	}
	var out PushResult
	wm, err := r.c.write(http.MethodPost, "/api/v1/repos/"+esc(app)+"/push/", params, &rawBody{data: lainYAML, ctype: "application/yaml"}, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}
