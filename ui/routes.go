package ui

import (
	"net/http"
	"strings"
)

// uiRoute is one page or form target of the console, below /ui/. A
// pattern is a path of segments; ":name" matches any one segment and is
// handed to the handler in params. Every POST route runs only with a
// session and a valid CSRF token (checked by ServeHTTP before h).
type uiRoute struct {
	method  string // http.MethodGet (HEAD too) or http.MethodPost
	pattern string // e.g. "apps/:app/scale"
	h       func(c *Console, w http.ResponseWriter, r *http.Request, s *session, params map[string]string)
}

// allRoutes is every route of the console: each part of the console
// keeps its own table in its own file.
func allRoutes() []uiRoute {
	var all []uiRoute
	for _, t := range [][]uiRoute{
		appRoutes,
		serviceRoutes,
		teamRoutes,
		adminRoutes,
		actionRoutes,
	} {
		all = append(all, t...)
	}
	return all
}

// appRoutes: the apps list, the app page and its live streams.
var appRoutes = []uiRoute{
	{http.MethodGet, "apps", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, _ map[string]string) {
		c.appsPage(w, r, s)
	}},
	{http.MethodGet, "apps/:app", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, p map[string]string) {
		c.appPage(w, r, s, p["app"])
	}},
	{http.MethodGet, "apps/:app/logs", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, p map[string]string) {
		c.proxyStream(w, r, s, p["app"], "logs")
	}},
	{http.MethodGet, "apps/:app/events", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, p map[string]string) {
		c.proxyStream(w, r, s, p["app"], "events")
	}},
}

// match reports whether the route serves method and path segments, and
// the values of its parameters.
func (rt uiRoute) match(method string, parts []string) (map[string]string, bool) {
	if rt.method != method {
		return nil, false
	}
	pat := strings.Split(rt.pattern, "/")
	if len(pat) != len(parts) {
		return nil, false
	}
	var params map[string]string
	for i, seg := range pat {
		if strings.HasPrefix(seg, ":") {
			if parts[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[seg[1:]] = parts[i]
			continue
		}
		if seg != parts[i] {
			return nil, false
		}
	}
	return params, true
}
