package ui

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/berthpaas/berth/api"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CookieName is the session cookie: the user's API token.
const CookieName = "berth_session"

// Console serves the web console. Mount it at /ui/ (and /ui).
type Console struct {
	api    http.Handler // the server's own API handler
	key    []byte       // the CSRF key, drawn per server
	pages  map[string]*template.Template
	static http.Handler
	routes []uiRoute
}

// New builds the console over the server's API handler, which it calls in
// process for every page (see the package comment).
func New(apiHandler http.Handler) (*Console, error) {
	c := &Console{api: apiHandler, key: make([]byte, 32), pages: map[string]*template.Template{}, routes: allRoutes()}
	if _, err := rand.Read(c.key); err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, f := range names {
		p := strings.TrimSuffix(strings.TrimPrefix(f, "templates/"), ".html")
		if p == "layout" {
			continue
		}
		t, err := template.New(p).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", f)
		if err != nil {
			return nil, err
		}
		c.pages[p] = t
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c.static = http.StripPrefix("/ui/static/", http.FileServer(http.FS(sub)))
	return c, nil
}

// page is what every template gets.
type page struct {
	Title, Email, CSRF, Error string
	Admin                     bool // the user is a site admin (the Admin link)
	Data                      any
}

// ServeHTTP serves /ui and everything under /ui/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	path := strings.TrimSuffix(r.URL.Path, "/")
	if strings.HasPrefix(r.URL.Path, "/ui/static/") {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		c.static.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost && !sameOrigin(r) {
		c.render(w, http.StatusForbidden, "error", page{Title: "Refused", Error: "This form was not sent from this site."})
		return
	}
	switch {
	case r.Method == http.MethodPost && path == "/ui/login":
		c.login(w, r)
		return
	case r.Method == http.MethodPost && path == "/ui/logout":
		c.logout(w, r)
		return
	case r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	case r.Method != http.MethodPost && path == "/ui/login":
		c.render(w, http.StatusOK, "login", page{Title: "Log in"})
		return
	}
	s, ok := c.session(r)
	if !ok {
		if r.Method == http.MethodPost {
			c.render(w, http.StatusUnauthorized, "error", page{Title: "Logged out", Error: "Your session has ended; log in again."})
			return
		}
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	if path == "/ui" {
		http.Redirect(w, r, "/ui/apps", http.StatusSeeOther)
		return
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	parts := strings.Split(strings.TrimPrefix(path, "/ui/"), "/")
	for _, rt := range c.routes {
		params, ok := rt.match(method, parts)
		if !ok {
			continue
		}
		if method == http.MethodPost && !c.checkCSRF(r, s) {
			c.render(w, http.StatusForbidden, "error", c.withSession(s, page{Title: "Refused", Error: "The form's security token is missing or wrong; reload the page and try again."}))
			return
		}
		rt.h(c, w, r, s, params)
		return
	}
	c.render(w, http.StatusNotFound, "error", c.withSession(s, page{Title: "Not found", Error: "No such page."}))
}

// session is a logged-in user's cookie and who they are.
type session struct {
	token, email string
	admin        bool
}

// session reads the cookie and asks the API who its token is; a token
// the API refuses is no session.
func (c *Console) session(r *http.Request) (*session, bool) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return nil, false
	}
	s := &session{token: ck.Value}
	var who api.UserInfo
	if status, err := c.call(r, s, http.MethodGet, "/users/info", nil, &who); err != nil || status != http.StatusOK {
		return nil, false
	}
	s.email, s.admin = who.Email, who.IsAdmin
	return s, true
}

func (c *Console) withSession(s *session, p page) page {
	p.Email, p.CSRF, p.Admin = s.email, c.csrf(s.token), s.admin
	return p
}

// csrf is the session's CSRF token: an HMAC of its API token.
func (c *Console) csrf(token string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("berth-ui-csrf\x00" + token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF reports whether the form's csrf field is the session's.
func (c *Console) checkCSRF(r *http.Request, s *session) bool {
	got := r.PostFormValue("csrf")
	return got != "" && hmac.Equal([]byte(got), []byte(c.csrf(s.token)))
}

// sameOrigin reports whether a POST came from a page of this host: its
// Origin, or when a browser sends none its Referer, names this host.
// Neither is refused.
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" || src == "null" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return false
	}
	u, err := url.Parse(src)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: value, Path: "/ui", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

// POST /ui/login: the API's login (POST /users/:email/tokens, with its
// rate limits and audit record); the token goes into the cookie.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	email := strings.TrimSpace(r.PostFormValue("email"))
	pw := r.PostFormValue("password")
	if email == "" || pw == "" {
		c.render(w, http.StatusBadRequest, "login", page{Title: "Log in", Error: "Enter your email and password.", Data: email})
		return
	}
	var l api.Login
	status, err := c.call(r, nil, http.MethodPost, "/users/"+url.PathEscape(email)+"/tokens", map[string]string{"password": pw}, &l)
	if err != nil || status != http.StatusOK || l.Token == "" {
		msg := "Wrong email or password."
		if status == http.StatusTooManyRequests {
			msg = "Too many failed logins; wait a while and try again."
		}
		code := status
		if code < 400 {
			code = http.StatusInternalServerError
		}
		c.render(w, code, "login", page{Title: "Log in", Error: msg, Data: email})
		return
	}
	c.setCookie(w, r, l.Token, 0)
	http.Redirect(w, r, "/ui/apps", http.StatusSeeOther)
}

// POST /ui/logout: revokes the token (DELETE /users/tokens) and clears
// the cookie.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	s, ok := c.session(r)
	if !ok {
		c.setCookie(w, r, "", -1)
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	if !c.checkCSRF(r, s) {
		c.render(w, http.StatusForbidden, "error", c.withSession(s, page{Title: "Refused", Error: "The form's security token is missing or wrong; reload the page and try again."}))
		return
	}
	if status, err := c.call(r, s, http.MethodDelete, "/users/tokens", nil, nil); err != nil || status >= 300 {
		c.render(w, http.StatusBadGateway, "error", c.withSession(s, page{Title: "Not logged out", Error: "The server did not revoke the session; try again."}))
		return
	}
	c.setCookie(w, r, "", -1)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// appRow is one line of the apps list.
type appRow struct {
	Name, Team, State, Version string
	Teams                      []string
	Running, Desired           int
}

// GET /ui/apps?team=&state=
func (c *Console) appsPage(w http.ResponseWriter, r *http.Request, s *session) {
	var apps []api.App
	if !c.get(w, r, s, "/apps", &apps) {
		return
	}
	var deployed []api.DeployedApp
	if !c.get(w, r, s, "/api/v1/apps", &deployed) {
		return
	}
	byName := map[string]api.DeployedApp{}
	for _, d := range deployed {
		byName[d.AppName] = d
	}
	team, st := r.URL.Query().Get("team"), r.URL.Query().Get("state")
	teams, states := map[string]bool{}, map[string]bool{}
	var rows []appRow
	for _, a := range apps {
		row := appRow{Name: a.Name, Team: a.TeamOwner, Teams: a.Teams, State: a.State, Version: a.MetaVersion}
		if d, ok := byName[a.Name]; ok {
			for _, p := range d.Procs {
				row.Desired += p.NumInstances
				for _, in := range p.Instances {
					if in.State == "running" {
						row.Running++
					}
				}
			}
		}
		teams[a.TeamOwner] = true
		for _, t := range a.Teams {
			teams[t] = true
		}
		if a.State != "" {
			states[a.State] = true
		}
		if team != "" && a.TeamOwner != team && !slices.Contains(a.Teams, team) {
			continue
		}
		if st != "" && a.State != st {
			continue
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	c.render(w, http.StatusOK, "apps", c.withSession(s, page{Title: "Apps", Data: map[string]any{
		"Apps": rows, "Team": team, "State": st, "Teams": keys(teams), "States": keys(states),
	}}))
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// appData is what the app page shows.
type appData struct {
	App      api.App
	Deployed *api.DeployedApp
	Env      []api.EnvVar
	Bound    []string
	Bindable []string // instances the user may see not bound to the app ("service/instance")
	Domains  api.Domains
	Releases []api.Release
	History  []api.HistoryEntry
	Done     string // the result of the action just done (see actions.go)
}

// GET /ui/apps/:app
func (c *Console) appPage(w http.ResponseWriter, r *http.Request, s *session, name string) {
	esc := "/" + url.PathEscape(name)
	var d appData
	if !c.get(w, r, s, "/apps"+esc, &d.App) {
		return
	}
	var dep api.DeployedApp
	if status, err := c.call(r, s, http.MethodGet, "/api/v1/apps"+esc, nil, &dep); err == nil && status == http.StatusOK {
		d.Deployed = &dep
	}
	if !c.get(w, r, s, "/apps"+esc+"/env", &d.Env) ||
		!c.get(w, r, s, "/apps"+esc+"/cname", &d.Domains) ||
		!c.get(w, r, s, "/api/v1/repos"+esc+"/releases", &d.Releases) ||
		!c.get(w, r, s, "/api/v1/apps"+esc+"/history", &d.History) {
		return
	}
	// Bound services: the instances the user may see that name this app
	// (a token that may not list services sees none).
	var svcs []api.ServiceListItem
	if status, err := c.call(r, s, http.MethodGet, "/services", nil, &svcs); err == nil && status == http.StatusOK {
		for _, sv := range svcs {
			var insts []api.ServiceInstanceSummary
			if status, err := c.call(r, s, http.MethodGet, "/services/"+url.PathEscape(sv.Service), nil, &insts); err != nil || status != http.StatusOK {
				continue
			}
			for _, in := range insts {
				if slices.Contains(in.Apps, name) {
					d.Bound = append(d.Bound, sv.Service+"/"+in.Name)
				} else {
					d.Bindable = append(d.Bindable, sv.Service+"/"+in.Name)
				}
			}
		}
	}
	d.Done = doneMessage(r.URL.Query().Get("done"))
	c.render(w, http.StatusOK, "app", c.withSession(s, page{Title: d.App.Name, Data: d}))
}

// GET /ui/apps/:app/logs and /events: the API's streams, asked with the
// session's token. Only these two GET streams are proxied, so the cookie
// never authenticates anything that changes state without the CSRF check.
func (c *Console) proxyStream(w http.ResponseWriter, r *http.Request, s *session, app, which string) {
	target := "/api/v1/apps/" + url.PathEscape(app) + "/" + which
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, target, nil)
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	req.Header.Set("Authorization", "bearer "+s.token)
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		req.Header.Set("Last-Event-ID", v)
	}
	c.api.ServeHTTP(w, req)
}

// get calls the API and decodes a 200 answer into out; any other answer
// is rendered as the page (a 401 sends the user to log in) and false.
func (c *Console) get(w http.ResponseWriter, r *http.Request, s *session, path string, out any) bool {
	status, err := c.call(r, s, http.MethodGet, path, nil, out)
	if err == nil && status == http.StatusOK {
		return true
	}
	switch {
	case status == http.StatusUnauthorized:
		c.setCookie(w, r, "", -1)
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
	case status == http.StatusNotFound || status == http.StatusForbidden:
		// A forbidden app looks like an absent one, as in the API.
		c.render(w, http.StatusNotFound, "error", c.withSession(s, page{Title: "Not found", Error: "No such app, or you may not see it."}))
	default:
		if status < 400 {
			status = http.StatusInternalServerError
		}
		msg := "The server could not answer."
		if err != nil {
			msg += " " + err.Error()
		}
		c.render(w, status, "error", c.withSession(s, page{Title: "Error", Error: msg}))
	}
	return false
}

// call asks the server's API in process, as the session (nil: no token),
// from the same client address, and decodes a 2xx JSON answer into out.
func (c *Console) call(r *http.Request, s *session, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, body)
	if err != nil {
		return 0, err
	}
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if s != nil {
		req.Header.Set("Authorization", "bearer "+s.token)
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	c.api.ServeHTTP(rec, req)
	if rec.status < 200 || rec.status >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(rec.body.Bytes(), &e)
		if e.Error == "" {
			e.Error = http.StatusText(rec.status)
		}
		return rec.status, errors.New(e.Error)
	}
	if out != nil && rec.body.Len() > 0 {
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return rec.status, fmt.Errorf("decoding %s: %w", path, err)
		}
	}
	return rec.status, nil
}

// recorder is the ResponseWriter of an in-process API call.
type recorder struct {
	header http.Header
	body   bytes.Buffer
	status int
	wrote  bool
}

func (w *recorder) Header() http.Header { return w.header }
func (w *recorder) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
}
func (w *recorder) Write(b []byte) (int, error) {
	w.wrote = true
	return w.body.Write(b)
}

func (c *Console) render(w http.ResponseWriter, status int, name string, p page) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, name+".html", p); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// funcs are the helpers every template may use.
var funcs = template.FuncMap{
	"join": strings.Join,
}
