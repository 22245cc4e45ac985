package api

import (
	"net/http"
	"time"
)

// NotifyImagePush is the one notify type: called when a release is pushed.
const NotifyImagePush = "imagepush"

// Notifier is a URL called for a kind of event (GET /api/v1/notify/:type/).
type Notifier struct {
	// Type is the event kind ("imagepush").
	Type string `json:"notify_type"`
	// URL is called with a JSON body; for callers other than site admins
	// it is masked to its scheme and host ("https://host/…").
	URL string `json:"notify_url"`
	// By is who registered it.
	By      string    `json:"registered_by"`
	Created time.Time `json:"created"` // when it was registered
	// Deliveries says what became of the calls made to it (in lists).
	Deliveries *NotifierDeliveries `json:"deliveries,omitempty"`
}

// NotifierDeliveries is the outcome of a notifier's deliveries. Deliveries
// wait in the Store (a restart loses none); each is tried up to
// notify.max_attempts times with a doubling backoff, then given up.
type NotifierDeliveries struct {
	// Pending is how many deliveries wait for an attempt.
	Pending int `json:"pending"`
	// Delivered and GaveUp count the finished deliveries.
	Delivered int `json:"delivered"`
	GaveUp    int `json:"gave_up"`
	// LastOutcome ("delivered" or "gave up") is that of the last finished
	// delivery, of the event LastEvent, after LastAttempts attempts, at
	// LastAt; LastError is why its last attempt failed.
	LastEvent    string     `json:"last_event,omitempty"`
	LastOutcome  string     `json:"last_outcome,omitempty"`
	LastAttempts int        `json:"last_attempts,omitempty"`
	LastAt       *time.Time `json:"last_at,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
}

// NotifierRequest is the body of POST and DELETE /api/v1/notify/:type/.
type NotifierRequest struct {
	// NotifyURL is an absolute http(s) URL without credentials.
	NotifyURL string `json:"notify_url"`
}

// Notify is the notifiers resource (/api/v1/notify).
type Notify struct{ c *Client }

// Notify returns the notifiers resource.
func (c *Client) Notify() *Notify { return &Notify{c} }

// List returns the notifiers of a type: GET /api/v1/notify/:type/ (any token).
func (n *Notify) List(typ string, q *QueryOptions) ([]Notifier, *QueryMeta, error) {
	var out []Notifier
	qm, err := n.c.query("/api/v1/notify/"+esc(typ)+"/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Add registers a notifier: POST /api/v1/notify/:type/ (notify.add; site
// admins; 201). A URL registered already is a 409.
func (n *Notify) Add(typ, notifyURL string, w *WriteOptions) (*Notifier, *WriteMeta, error) {
	var out Notifier
	wm, err := n.c.write(http.MethodPost, "/api/v1/notify/"+esc(typ)+"/", nil, &NotifierRequest{NotifyURL: notifyURL}, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Remove unregisters a notifier: DELETE /api/v1/notify/:type/
// (notify.remove; site admins).
func (n *Notify) Remove(typ, notifyURL string, w *WriteOptions) (*WriteMeta, error) {
	return n.c.write(http.MethodDelete, "/api/v1/notify/"+esc(typ)+"/", nil, &NotifierRequest{NotifyURL: notifyURL}, nil, w)
}
