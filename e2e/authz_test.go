package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The authorization matrix: every endpoint of the users/teams/tokens/quotas/
// app-registration surface, called by each kind of caller, must answer 401
// (no identity), 403 (not allowed) or success, and nothing else.

// Columns of the matrix.
const (
	colAnon   = iota // no token
	colOther         // a user with no relation to the app
	colOwner         // the app's owner
	colMAdmin        // a maintainer with role admin
	colDev           // a maintainer with role developer
	colApp           // an app token for the app
	colAdmin         // a site admin
	numCols
)

var colNames = [numCols]string{"anonymous", "other-user", "owner", "maintainer-admin", "developer", "app-token", "site-admin"}

// matrix holds the callers; the app-level fixture is made fresh per cell.
type matrix struct {
	b                         *Berth
	shared                    *cell // the fixture app of rows that do not change it
	other, owner, madmin, dev *User
	loginee                   *User
	// otherRes and ownerRes are resource apps (with a release) of other
	// and of owner, made on first use.
	otherRes, ownerRes string
}

// cell is one request's fixture: the app with its maintainers and an app
// token (fresh for rows that change it), and what setup made.
type cell struct {
	app    string
	appTok *User
	as     *User // the caller of this cell
	col    int
	team   string
	key    string
	url    string
}

type matrixRow struct {
	method string
	path   func(c *cell) string
	body   func(c *cell) any
	// mutates: the request changes the fixture app (owned by owner, with
	// madmin and dev as maintainers, and an app token), so each cell gets a
	// fresh one; other rows share one.
	mutates bool
	// setup runs (as the fixture's owners) before the request.
	setup func(t *testing.T, m *matrix, c *cell)
	// freshToken logs human callers in again so the request may spend the token.
	freshToken bool
	want       [numCols]int
	// check inspects a successful answer.
	check func(t *testing.T, m *matrix, c *cell, r *Resp)
}

func codes(anon, other, owner, madmin, dev, app, admin int) [numCols]int {
	return [numCols]int{anon, other, owner, madmin, dev, app, admin}
}

func all(code int) [numCols]int { return codes(code, code, code, code, code, code, code) }

// usersOnly: anonymous 401, app tokens 403, every person succeeds.
func usersOnly(ok int) [numCols]int { return codes(401, ok, ok, ok, ok, 403, ok) }

// authed: anonymous 401, everyone else succeeds.
func authed(ok int) [numCols]int { return codes(401, ok, ok, ok, ok, ok, ok) }

func static(p string) func(*cell) string { return func(*cell) string { return p } }

func (m *matrix) caller(c *cell, col int) *User {
	switch col {
	case colOther:
		return m.other
	case colOwner:
		return m.owner
	case colMAdmin:
		return m.madmin
	case colDev:
		return m.dev
	case colApp:
		return c.appTok
	case colAdmin:
		return m.b.Admin
	}
	return nil
}

func (m *matrix) newCell(t *testing.T, row *matrixRow, col int) *cell {
	b := m.b
	c := &cell{col: col}
	if row.mutates {
		c.app, c.appTok = m.newApp(t)
	} else {
		if m.shared == nil {
			m.shared = &cell{}
			m.shared.app, m.shared.appTok = m.newApp(t)
		}
		c.app, c.appTok = m.shared.app, m.shared.appTok
	}
	c.as = m.caller(c, col)
	if row.freshToken && c.as != nil && c.as.App == "" {
		fresh := *c.as
		fresh.Token = b.login(t, fresh.Email, fresh.Password)
		c.as = &fresh
	}
	if row.setup != nil {
		row.setup(t, m, c)
	}
	return c
}

// newApp makes an app owned by owner, with madmin (admin) and dev
// (developer) as maintainers, and an app token for it.
func (m *matrix) newApp(t *testing.T) (string, *User) {
	b := m.b
	app := b.unique("mx")
	b.createApp(t, m.owner, app)
	b.addMaintainer(t, m.owner, app, m.madmin.Email, "admin")
	b.addMaintainer(t, m.owner, app, m.dev.Email, "developer")
	return app, b.appToken(t, m.owner, app)
}

// newTeam makes a team owned by the matrix's owner.
func (m *matrix) newTeam(t *testing.T) string {
	name := m.b.unique("mxteam")
	m.b.do(t, "POST", "/teams", m.owner, map[string]any{"name": name}).want(t, http.StatusOK)
	return name
}

// resource returns a resource app of u with a pushed release, made once.
func (m *matrix) resource(t *testing.T, u *User, name *string) string {
	if *name == "" {
		*name = m.b.unique("mxres")
		m.b.do(t, "POST", "/api/v1/repos/", u, map[string]any{"appname": *name, "apptype": "resource"}).want(t, http.StatusCreated)
		m.b.push(t, u, *name, pushBody(metaVersion(), 1))
	}
	return *name
}

// listHas reports whether a list answer holds an item with field == value.
func listHas(r *Resp, field, value string) bool {
	for _, it := range r.List() {
		if m, _ := it.(map[string]any); m != nil && m[field] == value {
			return true
		}
	}
	return false
}

// visibility checks a list of apps: the fixture app is listed to those with
// a role on it (and to admins), never to others; an app token sees only its app.
func visibility(field string) func(t *testing.T, m *matrix, c *cell, r *Resp) {
	return func(t *testing.T, m *matrix, c *cell, r *Resp) {
		has := listHas(r, field, c.app)
		switch c.col {
		case colOther:
			if has {
				t.Errorf("%s lists app %s to a user with no role on it", r.Path, c.app)
			}
		case colApp:
			if !has || len(r.List()) != 1 {
				t.Errorf("%s for an app token of %s: %s", r.Path, c.app, r)
			}
		default:
			if !has {
				t.Errorf("%s does not list app %s to the %s", r.Path, c.app, colNames[c.col])
			}
		}
	}
}

func matrixRows() []matrixRow {
	appPath := func(suffix string) func(*cell) string {
		return func(c *cell) string { return "/api/v1/repos/" + c.app + suffix }
	}
	return []matrixRow{
		// Operations.
		{method: "GET", path: static("/healthz"), want: all(200)},
		{method: "GET", path: static("/metrics"), want: all(200)},

		// Users (public endpoints answer everyone).
		{method: "POST", path: static("/users"), body: func(c *cell) any {
			return map[string]any{"email": fmt.Sprintf("mxnew-%s@e2e.test", randHex(4)), "password": "pw-" + randHex(8)}
		}, want: all(200)},
		{method: "POST", path: func(*cell) string { return "" }, want: all(200)}, // login: filled in testAuthzMatrix
		{method: "POST", path: func(*cell) string { return "" }, want: all(200)}, // reset (mail a token): filled in
		{method: "GET", path: static("/users/info"), want: authed(200), check: func(t *testing.T, m *matrix, c *cell, r *Resp) {
			if c.col == colApp && (r.Obj()["app_token"] != true || r.Str("app") != c.app) {
				t.Errorf("/users/info for an app token: %s", r)
			}
			if c.col != colApp && r.Str("email") != c.as.Email {
				t.Errorf("/users/info as %s: %s", c.as.Email, r)
			}
		}},
		{method: "DELETE", path: static("/users/tokens"), freshToken: true, want: usersOnly(200), check: func(t *testing.T, m *matrix, c *cell, r *Resp) {
			m.b.do(t, "GET", "/users/info", c.as, nil).check(t, http.StatusUnauthorized)
		}},
		{method: "PUT", path: static("/users/password"), body: func(c *cell) any {
			pw := "pw-unchanged"
			if c.as != nil && c.as.Password != "" {
				pw = c.as.Password
			}
			return map[string]any{"old": pw, "new": pw}
		}, want: usersOnly(200)},
		{method: "GET", path: static("/users/keys"), want: usersOnly(200)},
		{method: "POST", path: static("/users/keys"), setup: func(t *testing.T, m *matrix, c *cell) {
			c.key, _ = newSSHKey(t, "")
		}, body: func(c *cell) any { return map[string]any{"key": c.key} }, want: usersOnly(200)},
		{method: "DELETE", path: static("/users/keys"), setup: func(t *testing.T, m *matrix, c *cell) {
			c.key, _ = newSSHKey(t, "")
			if c.as != nil && c.as.App == "" {
				m.b.do(t, "POST", "/users/keys", c.as, map[string]any{"key": c.key}).want(t, http.StatusOK)
			}
		}, body: func(c *cell) any { return map[string]any{"key": c.key} }, want: usersOnly(200)},

		// Teams: members (and site admins) manage a team.
		{method: "GET", path: static("/teams"), want: usersOnly(200)},
		{method: "POST", path: static("/teams"), body: func(c *cell) any {
			return map[string]any{"name": "mxt-" + randHex(4)}
		}, want: usersOnly(200)},
		{method: "GET", path: func(c *cell) string { return "/teams/" + c.team }, setup: func(t *testing.T, m *matrix, c *cell) {
			c.team = m.newTeam(t)
		}, want: codes(401, 403, 200, 403, 403, 403, 200)},
		{method: "DELETE", path: func(c *cell) string { return "/teams/" + c.team }, setup: func(t *testing.T, m *matrix, c *cell) {
			c.team = m.newTeam(t)
		}, want: codes(401, 403, 200, 403, 403, 403, 200)},
		{method: "PUT", path: func(c *cell) string { return "/teams/" + c.team + "/" + c.url }, setup: func(t *testing.T, m *matrix, c *cell) {
			c.team, c.url = m.newTeam(t), m.other.Email
		}, want: codes(401, 403, 200, 403, 403, 403, 200)},
		{method: "DELETE", path: func(c *cell) string { return "/teams/" + c.team + "/" + c.url }, setup: func(t *testing.T, m *matrix, c *cell) {
			c.team, c.url = m.newTeam(t), m.other.Email
			m.b.do(t, "PUT", "/teams/"+c.team+"/"+m.other.Email, m.owner, nil).want(t, http.StatusOK)
		}, want: codes(401, 200, 200, 403, 403, 403, 200)}, // the member may leave

		// Quotas: one's own, or anyone's for site admins.
		{method: "GET", path: func(c *cell) string { return "/quota/" + c.url }, setup: func(t *testing.T, m *matrix, c *cell) {
			c.url = m.owner.Email
		}, want: codes(401, 403, 200, 403, 403, 403, 200)},
		{method: "PUT", path: func(c *cell) string { return "/quota/" + c.url }, setup: func(t *testing.T, m *matrix, c *cell) {
			c.url = m.other.Email
		}, body: func(*cell) any { return map[string]any{"limit": 10} }, want: codes(401, 403, 403, 403, 403, 403, 200)},

		// App tokens: app admins and owners.
		{method: "POST", path: static("/tokens"), body: func(c *cell) any {
			return map[string]any{"appname": c.app}
		}, want: codes(401, 403, 200, 200, 403, 403, 200), check: func(t *testing.T, m *matrix, c *cell, r *Resp) {
			if r.Str("AppName") != c.app || r.Str("Token") == "" {
				t.Errorf("app token: %s", r)
			}
		}},

		// Apps, tsuru surface.
		{method: "GET", path: static("/apps"), want: authed(200), check: visibility("Name")},
		{method: "POST", path: static("/apps"), body: func(c *cell) any {
			return map[string]any{"name": "mxa-" + randHex(4)}
		}, want: usersOnly(200)},
		{method: "GET", path: func(c *cell) string { return "/apps/" + c.app }, want: codes(401, 403, 200, 200, 200, 200, 200)},
		{method: "DELETE", path: func(c *cell) string { return "/apps/" + c.app }, mutates: true, want: codes(401, 403, 200, 403, 403, 403, 200),
			check: func(t *testing.T, m *matrix, c *cell, r *Resp) {
				m.b.do(t, "GET", "/apps/"+c.app, m.b.Admin, nil).check(t, http.StatusNotFound)
			}},
		{method: "GET", path: static("/platforms"), want: authed(200)},

		// Apps, LAIN surface.
		{method: "GET", path: static("/api/v1/repos/"), want: authed(200), check: visibility("appname")},
		{method: "POST", path: static("/api/v1/repos/"), body: func(c *cell) any {
			return map[string]any{"appname": "mxr-" + randHex(4)}
		}, want: usersOnly(201)},
		{method: "GET", path: appPath("/"), want: codes(401, 403, 200, 200, 200, 200, 200)},
		{method: "GET", path: appPath("/details/"), want: codes(401, 403, 200, 200, 200, 200, 200)},
		{method: "GET", path: appPath("/roles/"), want: codes(401, 403, 200, 200, 200, 200, 200),
			check: func(t *testing.T, m *matrix, c *cell, r *Resp) {
				want := map[int]string{colOwner: "owner", colMAdmin: "admin", colDev: "developer", colApp: "developer", colAdmin: "site-admin"}[c.col]
				if r.Str("role") != want {
					t.Errorf("role of the %s: %s", colNames[c.col], r)
				}
			}},
		{method: "GET", path: func(c *cell) string { return "/api/v1/repos/" + c.app + "/roles/" + c.url + "/" },
			setup: func(t *testing.T, m *matrix, c *cell) { c.url = m.dev.Email }, want: codes(401, 403, 200, 200, 200, 403, 200)},
		{method: "GET", path: appPath("/maintainers/"), want: codes(401, 403, 200, 200, 200, 403, 200)},
		{method: "POST", path: appPath("/maintainers/"), mutates: true, body: func(c *cell) any {
			return map[string]any{"username": c.url, "role": "developer"}
		}, setup: func(t *testing.T, m *matrix, c *cell) { c.url = m.other.Email }, want: codes(401, 403, 201, 201, 403, 403, 201)},
		{method: "GET", path: func(c *cell) string { return "/api/v1/repos/" + c.app + "/maintainers/" + c.url + "/" },
			setup: func(t *testing.T, m *matrix, c *cell) { c.url = m.dev.Email }, want: codes(401, 403, 200, 200, 200, 403, 200)},
		{method: "DELETE", path: func(c *cell) string { return "/api/v1/repos/" + c.app + "/maintainers/" + c.url + "/" }, mutates: true,
			setup: func(t *testing.T, m *matrix, c *cell) { c.url = m.dev.Email }, want: codes(401, 403, 200, 200, 403, 403, 200)},
		{method: "POST", path: appPath("/push/"), body: func(c *cell) any { return pushBody(metaVersion(), 1) },
			want: codes(401, 403, 201, 201, 201, 201, 201)},

		// use_resources: only resources the pusher may use (a role on the
		// resource; an app token acts for its creator). The fixture's
		// maintainers have no role on either resource.
		{method: "POST", path: appPath("/push/"), setup: func(t *testing.T, m *matrix, c *cell) {
			c.url = m.resource(t, m.other, &m.otherRes)
		}, body: func(c *cell) any {
			rel := pushBody(metaVersion(), 1)
			rel["use_resources"] = []string{c.url}
			return rel
		}, want: codes(401, 403, 403, 403, 403, 403, 201)},
		{method: "POST", path: appPath("/push/"), setup: func(t *testing.T, m *matrix, c *cell) {
			c.url = m.resource(t, m.owner, &m.ownerRes)
		}, body: func(c *cell) any {
			rel := pushBody(metaVersion(), 1)
			rel["use_resources"] = []string{c.url}
			return rel
		}, want: codes(401, 403, 201, 403, 403, 201, 201)},

		// Services: broker settings are the site admins'; others name an
		// operator's broker target (for a team of theirs).
		{method: "POST", path: static("/services"), setup: func(t *testing.T, m *matrix, c *cell) {
			c.team = m.newTeam(t)
		}, body: func(c *cell) any {
			return yamlBody(fmt.Sprintf("id: mxsvc-%s\nbroker: redis\nteam: %s\nsettings: {addr: \"127.0.0.1:1\"}\n", randHex(4), c.team))
		}, want: codes(401, 403, 403, 403, 403, 403, 200)},
		{method: "POST", path: static("/services"), setup: func(t *testing.T, m *matrix, c *cell) {
			c.team = m.newTeam(t)
		}, body: func(c *cell) any {
			return yamlBody(fmt.Sprintf("id: mxsvc-%s\nbroker: redis\nteam: %s\ntarget: e2e-redis\n", randHex(4), c.team))
		}, want: codes(401, 403, 200, 403, 403, 403, 200)},
		// A team that holds a service is not deleted (409) until it hands
		// the service over.
		{method: "DELETE", path: func(c *cell) string { return "/teams/" + c.team }, setup: func(t *testing.T, m *matrix, c *cell) {
			c.team = m.newTeam(t)
			m.b.do(t, "POST", "/services", m.owner, yamlBody(fmt.Sprintf("id: %s\nbroker: redis\nteam: %s\ntarget: e2e-redis\n", m.b.unique("mxsvc"), c.team))).want(t, http.StatusOK)
		}, want: codes(401, 403, 409, 403, 403, 403, 409)},

		// Notifiers: anyone signed in lists; site admins change.
		{method: "GET", path: static("/api/v1/notify/imagepush/"), want: authed(200)},
		{method: "POST", path: static("/api/v1/notify/imagepush/"), body: func(c *cell) any {
			return map[string]any{"notify_url": "http://127.0.0.1:9/mx-" + randHex(4)}
		}, want: codes(401, 403, 403, 403, 403, 403, 201)},
		{method: "DELETE", path: static("/api/v1/notify/imagepush/"), setup: func(t *testing.T, m *matrix, c *cell) {
			c.url = "http://127.0.0.1:9/mx-" + randHex(4)
			m.b.do(t, "POST", "/api/v1/notify/imagepush/", m.b.Admin, map[string]any{"notify_url": c.url}).want(t, http.StatusCreated)
		}, body: func(c *cell) any { return map[string]any{"notify_url": c.url} }, want: codes(401, 403, 403, 403, 403, 403, 200)},

		// Audit events: site admins.
		{method: "GET", path: static("/api/v1/events/"), want: codes(401, 403, 403, 403, 403, 403, 200)},
	}
}

func testAuthzMatrix(t *testing.T, b *Berth) {
	m := &matrix{b: b}
	m.owner = b.newUser(t, "mxowner")
	m.madmin = b.newUser(t, "mxmadmin")
	m.madmin.AccessTokenHeader = true // both token headers are exercised
	m.dev = b.newUser(t, "mxdev")
	m.dev.AccessTokenHeader = true
	m.other = b.newUser(t, "mxother")
	m.loginee = b.register(t, b.unique("loginee")+"@e2e.test")
	b.setQuota(t, m.owner.Email, 10000)

	rows := matrixRows()
	// The two public endpoints about a third user.
	rows[3].path = static("/users/" + m.loginee.Email + "/tokens")
	rows[3].body = func(*cell) any { return map[string]any{"password": m.loginee.Password} }
	rows[4].path = static("/users/" + m.loginee.Email + "/password")

	var table strings.Builder
	fmt.Fprintf(&table, "%-52s", "endpoint")
	for _, n := range colNames {
		fmt.Fprintf(&table, " %-16s", n)
	}
	table.WriteString("\n")
	for i := range rows {
		row := &rows[i]
		name := row.method + " " + row.path(&cell{app: ":app", team: ":team", url: ":x"})
		fmt.Fprintf(&table, "%-52s", name)
		for col := 0; col < numCols; col++ {
			c := m.newCell(t, row, col)
			var body any
			if row.body != nil {
				body = row.body(c)
			}
			r := b.do(t, row.method, row.path(c), c.as, body)
			want := row.want[col]
			fmt.Fprintf(&table, " %-16d", r.Code)
			if r.Code != want {
				t.Errorf("AUTHZ %s as %s: want %d, got %s", name, colNames[col], want, r)
				continue
			}
			if want >= 400 {
				checkErrorBody(t, r)
			} else if row.check != nil {
				row.check(t, m, c, r)
			}
		}
		table.WriteString("\n")
	}
	t.Logf("authorization matrix (status codes):\n%s", table.String())
	testAuthzRemoveUser(t, b, m)
}

// testAuthzRemoveUser is the DELETE /users row: it removes the caller's own
// account, so each person is a fresh user in the same relation.
func testAuthzRemoveUser(t *testing.T, b *Berth, m *matrix) {
	b.do(t, "DELETE", "/users", nil, nil).check(t, http.StatusUnauthorized)
	app := b.unique("mxdel")
	b.createApp(t, m.owner, app)
	b.do(t, "DELETE", "/users", b.appToken(t, m.owner, app), nil).check(t, http.StatusForbidden)
	// An owner of apps may not leave them orphaned.
	b.do(t, "DELETE", "/users", m.owner, nil).check(t, http.StatusForbidden)
	b.do(t, "GET", "/users/info", m.owner, nil).check(t, http.StatusOK)
	// A maintainer (admin or developer) and a user with no apps may go.
	for _, role := range []string{"", "admin", "developer"} {
		u := b.newUser(t, "mxleaver")
		if role != "" {
			b.addMaintainer(t, m.owner, app, u.Email, role)
		}
		b.do(t, "DELETE", "/users", u, nil).check(t, http.StatusOK)
		b.do(t, "GET", "/users/info", u, nil).check(t, http.StatusUnauthorized)
	}
}
