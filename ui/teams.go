package ui

import (
	"net/http"
	"sort"
	"strconv"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
)

// teamRoutes: the user's teams, a team's members and their roles, its
// tokens; creating a token (its value shown once) and revoking one (with
// a confirmation step).
var teamRoutes = []uiRoute{
	{http.MethodGet, "teams", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, _ map[string]string) {
		c.teamsPage(w, r, s)
	}},
	{http.MethodGet, "teams/:team", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, p map[string]string) {
		c.teamPage(w, r, s, p["team"], nil)
	}},
	{http.MethodPost, "teams/:team/tokens", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, p map[string]string) {
		c.createTeamToken(w, r, s, p["team"])
	}},
	{http.MethodPost, "teams/:team/tokens/:id/revoke", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, p map[string]string) {
		c.revokeTeamToken(w, r, s, p["team"], p["id"])
	}},
}

// GET /ui/teams
func (c *Console) teamsPage(w http.ResponseWriter, r *http.Request, s *session) {
	var teams []api.Team
	if !c.fetch(w, r, s, "/teams", &teams, "team", false) {
		return
	}
	sort.Slice(teams, func(i, j int) bool { return teams[i].Name < teams[j].Name })
	c.render(w, http.StatusOK, "teams", c.withSession(s, page{Title: "Teams", Data: teams}))
}

// memberRow is a member of a team and their roles on the team's apps.
type memberRow struct {
	Email string
	Roles []string // e.g. "owner of web", beside the developer role membership gives
}

// teamData is what the team page shows.
type teamData struct {
	Team     api.Team
	Members  []memberRow
	Apps     []string
	Tokens   []api.TeamToken
	Actions  []string              // what a team token may be given
	NewToken *api.TeamTokenCreated // just created: its value, shown this once
	Done     string
}

// GET /ui/teams/:team (created: a token just made, whose value the page
// shows this once).
func (c *Console) teamPage(w http.ResponseWriter, r *http.Request, s *session, name string, created *api.TeamTokenCreated) {
	d := teamData{Actions: engine.GrantableActions(), NewToken: created, Done: done(r.URL.Query())}
	// A team the user is not in looks like an absent one.
	if !c.fetch(w, r, s, "/teams/"+esc(name), &d.Team, "team", true) ||
		!c.fetch(w, r, s, "/teams/"+esc(name)+"/tokens", &d.Tokens, "team", true) {
		return
	}
	var apps []api.App
	if !c.fetch(w, r, s, "/apps", &apps, "app", false) {
		return
	}
	roles := map[string][]string{}
	for _, a := range apps {
		if a.TeamOwner != name && !contains(a.Teams, name) {
			continue
		}
		d.Apps = append(d.Apps, a.Name)
		var ms []api.Maintainer
		if status, err := c.call(r, s, http.MethodGet, "/api/v1/repos/"+esc(a.Name)+"/maintainers", nil, &ms); err != nil || status != http.StatusOK {
			continue
		}
		for _, m := range ms {
			if contains(d.Team.Users, m.Username) {
				roles[m.Username] = append(roles[m.Username], m.Role+" of "+a.Name)
			}
		}
	}
	sort.Strings(d.Apps)
	for _, u := range d.Team.Users {
		d.Members = append(d.Members, memberRow{Email: u, Roles: roles[u]})
	}
	sort.Slice(d.Tokens, func(i, j int) bool { return d.Tokens[i].Created.After(d.Tokens[j].Created) })
	c.render(w, http.StatusOK, "team", c.withSession(s, page{Title: "Team " + d.Team.Name, Data: d}))
}

// POST /ui/teams/:team/tokens (description, action..., expires_days):
// POST /teams/:team/tokens. The answer is the team page with the value,
// not a redirect: the value is never put in a URL, a cookie or the server,
// so it is on this one page only.
func (c *Console) createTeamToken(w http.ResponseWriter, r *http.Request, s *session, team string) {
	req := api.TeamTokenCreateRequest{Description: formValue(r, "description"), Actions: r.PostForm["action"]}
	if days := formValue(r, "expires_days"); days != "" {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 {
			c.render(w, http.StatusBadRequest, "error", c.withSession(s, page{Title: "Not done", Error: "The lifetime must be a number of days."}))
			return
		}
		req.ExpiresIn = int64(n) * 86400
	}
	if len(req.Actions) == 0 {
		c.render(w, http.StatusBadRequest, "error", c.withSession(s, page{Title: "Not done", Error: "Choose at least one action the token may do."}))
		return
	}
	var out api.TeamTokenCreated
	status, err := c.call(r, s, http.MethodPost, "/teams/"+esc(team)+"/tokens", req, &out)
	if err != nil || status >= 300 {
		c.failed(w, r, s, status, err)
		return
	}
	c.teamPage(w, r, s, team, &out)
}

// POST /ui/teams/:team/tokens/:id/revoke (confirm): DELETE
// /teams/:team/tokens/:id after a confirmation page.
func (c *Console) revokeTeamToken(w http.ResponseWriter, r *http.Request, s *session, team, id string) {
	if !c.confirmed(w, r, s, "Confirm revoke", confirmData{
		Question: "Revoke token " + id + " of team " + team + "? Whatever uses it stops working at once.",
		Action:   "/ui/teams/" + esc(team) + "/tokens/" + esc(id) + "/revoke", Button: "Yes, revoke", Back: "/ui/teams/" + esc(team),
	}) {
		return
	}
	c.act(w, r, s, http.MethodDelete, "/teams/"+esc(team)+"/tokens/"+esc(id), nil, doneURL("/ui/teams/"+esc(team), "revoked", id))
}
