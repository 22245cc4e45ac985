package ui

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/berthpaas/berth/api"
)

// adminRoutes: the site admins' pages: users and their quotas, the audit
// log page by page, the backends' health. Whether the user may see them is
// the API's answer (GET /users, GET /api/v1/events are for site admins):
// others get its refusal.
var adminRoutes = []uiRoute{
	{http.MethodGet, "admin", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, _ map[string]string) {
		c.adminPage(w, r, s)
	}},
	{http.MethodGet, "admin/events", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, _ map[string]string) {
		c.eventsPage(w, r, s)
	}},
	{http.MethodPost, "admin/users/:user/quota", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, p map[string]string) {
		c.setQuota(w, r, s, p["user"])
	}},
}

// healthRow is one backend of GET /healthz.
type healthRow struct {
	Role string
	api.BackendHealth
}

// GET /ui/admin
func (c *Console) adminPage(w http.ResponseWriter, r *http.Request, s *session) {
	var users []api.UserListItem
	if !c.fetch(w, r, s, "/users", &users, "page", false) {
		return
	}
	var h api.Health
	hd := map[string]any{}
	if _, err := c.callAnswer(r, s, "/healthz", &h); err != nil {
		hd["Error"] = err.Error()
	}
	rows := make([]healthRow, 0, len(h.Backends))
	for role, b := range h.Backends {
		rows = append(rows, healthRow{Role: role, BackendHealth: b})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Role < rows[j].Role })
	hd["Status"], hd["Backends"], hd["Uptime"] = h.Status, rows, h.UptimeSeconds
	c.render(w, http.StatusOK, "admin", c.withSession(s, page{Title: "Admin", Data: map[string]any{
		"Users": users, "Health": hd, "Done": done(r.URL.Query()),
	}}))
}

// GET /ui/admin/events?before=&p=...: a page of the audit log. before is
// the API's cursor; p are the cursors of the pages before this one, so
// that "Newer" can go back (the API pages only towards older events).
func (c *Console) eventsPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	before, trail := q.Get("before"), q["p"]
	path := "/api/v1/events?limit=" + strconv.Itoa(eventsPerPage)
	if before != "" {
		path += "&before=" + url.QueryEscape(before)
	}
	var ev api.EventsPage
	if !c.fetch(w, r, s, path, &ev, "page", false) {
		return
	}
	d := map[string]any{"Events": ev.Events, "Page": len(trail) + 1}
	if ev.Next != "" {
		v := url.Values{"before": {ev.Next}, "p": append(append([]string{}, trail...), before)}
		d["Older"] = "/ui/admin/events?" + v.Encode()
	}
	if before != "" {
		v := url.Values{}
		if n := len(trail); n > 0 {
			if trail[n-1] != "" {
				v.Set("before", trail[n-1])
			}
			if n > 1 {
				v["p"] = trail[:n-1]
			}
		}
		d["Newer"] = "/ui/admin/events"
		if len(v) > 0 {
			d["Newer"] = "/ui/admin/events?" + v.Encode()
		}
	}
	c.render(w, http.StatusOK, "events", c.withSession(s, page{Title: "Audit events", Data: d}))
}

// eventsPerPage is the size of a page of the audit log.
var eventsPerPage = 50

// POST /ui/admin/users/:user/quota (limit): PUT /quota/:user.
func (c *Console) setQuota(w http.ResponseWriter, r *http.Request, s *session, user string) {
	n, err := strconv.Atoi(formValue(r, "limit"))
	if err != nil || n < 0 {
		c.render(w, http.StatusBadRequest, "error", c.withSession(s, page{Title: "Not done", Error: "The quota must be a number of apps, 0 or more."}))
		return
	}
	c.act(w, r, s, http.MethodPut, "/quota/"+esc(user), api.QuotaSetRequest{Limit: n}, doneURL("/ui/admin", "quota", user, strconv.Itoa(n)))
}
