package api

import (
	"net/http"
	"time"
)

// Release is one pushed release of an app (GET /api/v1/repos/:app/releases/).
type Release struct {
	AppName     string `json:"appname"`      // the app
	MetaVersion string `json:"meta_version"` // the release's version, "<unix time>-<git sha>"
	// PushedBy is who pushed it (a user's email or an app token's name).
	PushedBy string    `json:"pushed_by"`
	Pushed   time.Time `json:"pushed"` // when it was pushed
	// Image is the release's image, when its procs share one.
	Image string `json:"image,omitempty"`
	// Procs are its procs as pushed (before any scale); never null.
	Procs []ReleaseProc `json:"procs"`
	// Resources are the resources it uses.
	Resources []string `json:"use_resources,omitempty"`
	// Current says the app is deployed at this release.
	Current bool `json:"current"`
}

// Deploy history results (HistoryEntry.Result): the final states of an
// operation, and "reverted" for a failed deploy the server reverted.
const (
	ResultRunning    = "running"
	ResultFailed     = "failed"
	ResultReverted   = "reverted"
	ResultUndeployed = "undeployed"
)

// HistoryEntry is one operation of an app's deploy history
// (GET /api/v1/apps/:app/history/), newest first: the operation under way,
// if any, then each finished one (the last 100 are kept).
type HistoryEntry struct {
	Generation int64 `json:"generation"` // the app's generation the operation made
	// Operation is what was asked: "deploy <version>", "rollback to
	// <version>", "auto-revert to <version>", "scale web to 3", "restart",
	// "undeploy", ...
	Operation   string `json:"operation"`
	MetaVersion string `json:"meta_version,omitempty"` // the release it deployed ("" for an undeploy)
	// Result is running, failed, reverted (failed, and the app went back
	// to RevertedTo) or undeployed; for the operation under way, its state
	// (pending or deploying).
	Result     string `json:"result"`
	RevertedTo string `json:"reverted_to,omitempty"`
	Message    string `json:"message,omitempty"` // why, when it failed
	By         string `json:"by,omitempty"`      // who asked for it
	// Started is when it was asked for (absent in records older than the
	// history), Finished when it reached its result (absent while under way).
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	// DurationMS is how long it took, in milliseconds (0 when unknown).
	DurationMS int64 `json:"duration_ms"`
}

// Duration is how long the operation took (0 when unknown).
func (h *HistoryEntry) Duration() time.Duration {
	return time.Duration(h.DurationMS) * time.Millisecond
}

// RollbackRequest is the optional body of POST /api/v1/apps/:app/rollback/.
type RollbackRequest struct {
	// MetaVersion is the release to go back to; empty: the release that
	// ran before the current one.
	MetaVersion string `json:"meta_version,omitempty"`
}

// Releases returns the app's pushed releases, newest first:
// GET /api/v1/repos/:app/releases/ (app.read).
func (r *Repos) Releases(app string, q *QueryOptions) ([]Release, *QueryMeta, error) {
	var out []Release
	qm, err := r.c.query("/api/v1/repos/"+esc(app)+"/releases/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// History returns the app's deploy history, newest first:
// GET /api/v1/apps/:app/history/ (app.read).
func (d *Deploys) History(app string, q *QueryOptions) ([]HistoryEntry, *QueryMeta, error) {
	var out []HistoryEntry
	qm, err := d.c.query("/api/v1/apps/"+esc(app)+"/history/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Rollback moves the deployed app back to the release version, or, when
// version is "", to the release that ran before the current one:
// POST /api/v1/apps/:app/rollback/ (app.rollback; 202). Follow it as a
// deploy (Deploys().Events, Wait).
func (d *Deploys) Rollback(app, version string, w *WriteOptions) (*Operation, *WriteMeta, error) {
	var out Operation
	wm, err := d.c.write(http.MethodPost, "/api/v1/apps/"+esc(app)+"/rollback/", nil, &RollbackRequest{MetaVersion: version}, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}
