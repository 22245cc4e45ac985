package server

import (
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"
)

var (
	public = routeOpts{public: true}
	authed = routeOpts{}
)

func act(name string) routeOpts       { return routeOpts{action: name} }
func publicAct(name string) routeOpts { return routeOpts{public: true, action: name} }

// sub is one handler behind a switch on a path parameter.
type sub struct {
	opts routeOpts
	h    handlerFunc
}

// handleSwitch registers a route whose handler is chosen by the value of
// one path parameter. httprouter cannot hold a static segment and a
// parameter at the same place (/services/instances beside
// /services/:name), so those routes share the parameter and dispatch here;
// "" in cases is the fallback for any other value.
func (s *Server) handleSwitch(method, pattern, param string, cases map[string]sub) {
	route := strings.TrimSuffix(pattern, "/")
	wrapped := map[string]httprouter.Handle{}
	for v, sb := range cases {
		name := route
		if v != "" {
			name = strings.Replace(route, ":"+param, v, 1)
		}
		wrapped[v] = s.wrap(method, name, sb.opts, sb.h)
	}
	notFound := jsonStatusHandler(http.StatusNotFound, "no such endpoint")
	h := func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if hh, ok := wrapped[ps.ByName(param)]; ok {
			hh(w, r, ps)
			return
		}
		if hh, ok := wrapped[""]; ok {
			hh(w, r, ps)
			return
		}
		notFound.ServeHTTP(w, r)
	}
	s.router.Handle(method, route, h)
	s.router.Handle(method, route+"/", h)
}

// routes registers every endpoint of both API surfaces.
func (s *Server) routes() {
	g, p, u, d := http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete

	// Operations.
	s.handle(g, "/healthz", public, s.healthz)
	s.router.Handler(g, "/metrics", s.metricsHandler())
	s.router.Handler(g, "/metrics/", s.metricsHandler())

	// tsuru-style surface: users (1.7).
	s.handle(p, "/users", publicAct("user.create"), s.createUser)
	s.handle(d, "/users", act("user.remove"), s.removeUser)
	s.handle(g, "/users/info", authed, s.whoami)
	s.handle(g, "/users/keys", authed, s.listKeys)
	s.handle(d, "/users/keys", act("user.key.remove"), s.removeKey)
	s.handle(d, "/users/tokens", act("user.logout"), s.logout)
	s.handle(u, "/users/password", act("user.password.change"), s.changePassword)
	s.handleSwitch(p, "/users/:email", "email", map[string]sub{
		"keys": {act("user.key.add"), s.addKey},
	})
	s.handle(p, "/users/:email/tokens", publicAct("user.login"), s.login)
	s.handle(p, "/users/:email/password", publicAct("user.password.reset"), s.resetPassword)

	// Teams (1.8).
	s.handle(g, "/teams", authed, s.listTeams)
	s.handle(p, "/teams", act("team.create"), s.createTeam)
	s.handle(g, "/teams/:team", authed, s.getTeam)
	s.handle(d, "/teams/:team", act("team.remove"), s.removeTeam)
	s.handle(u, "/teams/:team/:user", act("team.user.add"), s.addTeamUser)
	s.handle(d, "/teams/:team/:user", act("team.user.remove"), s.removeTeamUser)

	// Quotas (1.4) and app tokens (1.9).
	s.handle(g, "/quota/:user", authed, s.getQuota)
	s.handle(u, "/quota/:user", act("quota.set"), s.setQuota)
	s.handle(p, "/tokens", act("app.token.create"), s.createAppToken)

	// Apps (1.1) and platforms (1.6).
	s.handle(g, "/apps", authed, s.listApps)
	s.handle(p, "/apps", act("app.create"), s.createAppTsuru)
	s.handle(g, "/apps/:app", authed, s.getApp)
	s.handle(d, "/apps/:app", act("app.remove"), s.removeApp)
	s.handle(g, "/platforms", authed, s.listPlatforms)

	// LAIN-style console surface: repos (registration), maintainers, push.
	s.handle(g, "/api/v1/repos", authed, s.listRepos)
	s.handle(p, "/api/v1/repos", act("repo.create"), s.createRepo)
	s.handle(g, "/api/v1/repos/:app", authed, s.getRepo)
	s.handle(g, "/api/v1/repos/:app/details", authed, s.repoDetails)
	s.handle(g, "/api/v1/repos/:app/roles", authed, s.myRole)
	s.handle(g, "/api/v1/repos/:app/roles/:username", authed, s.userRole)
	s.handle(g, "/api/v1/repos/:app/maintainers", authed, s.listMaintainers)
	s.handle(p, "/api/v1/repos/:app/maintainers", act("repo.maintainer.add"), s.addMaintainer)
	s.handle(g, "/api/v1/repos/:app/maintainers/:username", authed, s.getMaintainer)
	s.handle(d, "/api/v1/repos/:app/maintainers/:username", act("repo.maintainer.remove"), s.removeMaintainer)
	s.handle(p, "/api/v1/repos/:app/push", act("repo.push"), s.push)

	// Notifiers and audit events.
	s.handle(g, "/api/v1/notify/:type", authed, s.listNotifiers)
	s.handle(p, "/api/v1/notify/:type", act("notify.add"), s.addNotifier)
	s.handle(d, "/api/v1/notify/:type", act("notify.remove"), s.removeNotifier)
	s.handle(g, "/api/v1/events", authed, s.listEvents)

	s.deployRoutes()
	s.serviceRoutes()
}

// renameParam returns ps with the parameter from renamed to to.
func renameParam(ps httprouter.Params, from, to string) httprouter.Params {
	out := make(httprouter.Params, len(ps))
	for i, p := range ps {
		if p.Key == from {
			p.Key = to
		}
		out[i] = p
	}
	return out
}
