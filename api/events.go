package api

import (
	"net/url"
	"strconv"
	"time"
)

// AuditEvent is one audit record (GET /api/v1/events/).
type AuditEvent struct {
	// ID orders the events (newest has the greatest).
	ID   string    `json:"id"`
	Time time.Time `json:"time"` // when the request was answered
	// Actor is the user (or "app:<name>", or "anonymous").
	Actor string `json:"actor"`
	// Action is the route's action, e.g. "app.create".
	Action string `json:"action"`
	Target string `json:"target"` // what the action was on, e.g. an app or "app/user"
	// Outcome is the answer's HTTP status, e.g. "201".
	Outcome string `json:"outcome"`
	Detail  string `json:"detail,omitempty"` // more about the outcome, if any
}

// EventsPage is the answer of GET /api/v1/events/: a page of events,
// newest first.
type EventsPage struct {
	Events []AuditEvent `json:"events"` // the events of the page, newest first
	// Next is the cursor of the following page ("" on the last).
	Next string `json:"next"`
}

// Events is the audit log (/api/v1/events).
type Events struct{ c *Client }

// Events returns the audit log resource.
func (c *Client) Events() *Events { return &Events{c} }

// List returns a page of audit events: GET /api/v1/events/?limit=&before=
// (site admins). limit is 1 to 1000 (0: the server's 50); before is the
// Next of the previous page ("": the newest).
func (e *Events) List(limit int, before string, q *QueryOptions) (*EventsPage, *QueryMeta, error) {
	q2 := &QueryOptions{}
	if q != nil {
		c := *q
		q2 = &c
	}
	params := url.Values{}
	for k, v := range q2.Params {
		params[k] = v
	}
	if limit != 0 {
		params.Set("limit", strconv.Itoa(limit))
	}
	if before != "" {
		params.Set("before", before)
	}
	q2.Params = params
	var out EventsPage
	qm, err := e.c.query("/api/v1/events/", &out, q2)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}
