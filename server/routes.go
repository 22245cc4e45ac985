package server

import (
	"net/http"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
)

// route is one endpoint, as data: the table below is the one description
// of the API from which the router, the permission check, the audit log
// and the OpenAPI document (/openapi.json) are all made.
type route struct {
	Method string
	// Path is an httprouter pattern. Every route also answers with a
	// trailing slash, directly (no redirect). Static segments and
	// parameters may share a place (/services/instances beside
	// /services/:name): register resolves that, static segments first.
	Path    string
	Summary string // one line, for the OpenAPI document
	// Action is what the caller does: it is checked (engine.Allowed)
	// before the handler runs — against the app the path names in AppParam
	// when the action's rule is about an app — and it is the action of the
	// audit record of a state change.
	Action engine.Action
	// AppParam is the path parameter naming the app an app action is
	// checked against ("app" when empty).
	AppParam string
	Public   bool // no authentication needed
	// Writes marks a GET that changes state (tsuru's restart and healer
	// runs): audited like the other methods' routes.
	Writes bool
	Tag    string // the group of the route in the OpenAPI document
	// In and Out are zero values of the request body's type and of the
	// answer's type (nil: none); Status is the success status (200 when 0).
	In, Out any
	Status  int
	// InType is the request body's content type when it is not JSON;
	// InTypes are further types it may come in; InOptional: the body may be
	// left out.
	InType     string
	InTypes    []string
	InOptional bool
	// AlsoStatus are further success statuses with the same answer;
	// AlsoOut further statuses with an answer of another type.
	AlsoStatus []int
	AlsoOut    map[int]any
	// Query names the query parameters the handler reads.
	Query []queryParam
	// Text and Stream: the answer is text/plain or a stream
	// (text/event-stream, or StreamType).
	Text, Stream bool
	StreamType   string
	h            handlerFunc
}

// queryParam is a query parameter of a route.
type queryParam struct {
	Name, Type, Doc string
}

// audited reports whether the route's requests are recorded in the audit
// log.
func (rt *route) audited() bool { return rt.Method != http.MethodGet || rt.Writes }

func (rt *route) appParam() string {
	if rt.AppParam != "" {
		return rt.AppParam
	}
	return "app"
}

// routes builds the route table: the operations' routes, the tsuru-style
// surface at the root, the LAIN-style console surface under /api/v1/, and
// the routes of the features both surfaces' users reach there (domains,
// releases, tokens, one-off commands).
func (s *Server) routes() []route {
	table := s.operationRoutes()
	table = append(table, s.tsuruRoutes()...)
	table = append(table, s.lainRoutes()...)
	table = append(table, s.domainRoutes()...)
	table = append(table, s.releaseRoutes()...)
	table = append(table, s.tokenRoutes()...)
	table = append(table, s.runRoutes()...)
	table = append(table, s.adminRoutes()...)
	table = append(table, s.servicePlanRoutes()...)
	return table
}

// operationRoutes are the routes of operators and tools: health, metrics, the OpenAPI document.
func (s *Server) operationRoutes() []route {
	const g = http.MethodGet
	return []route{
		{Method: g, Path: "/healthz", Out: api.Health{}, AlsoOut: map[int]any{http.StatusServiceUnavailable: api.Health{}}, Public: true, Tag: "operations", Summary: "Health of the server and of each backend", h: s.healthz},
		{Method: g, Path: "/metrics", Public: true, Text: true, Tag: "operations", Summary: "Prometheus metrics (a token when metrics.token_required)", h: s.serveMetrics},
		{Method: g, Path: "/openapi.json", Public: true, Tag: "operations", Summary: "This API's OpenAPI 3.1 document", h: s.openapiDoc},
	}
}

// tsuruRoutes is the tsuru-style surface at the root: users, teams, quotas, tokens, apps, env, platforms, healers, services and their instances.
func (s *Server) tsuruRoutes() []route {
	const g, p, u, d = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	return []route{
		{Method: p, Path: "/users", In: api.UserCreateRequest{}, Out: api.User{}, Action: engine.ActUserCreate, Public: true, Tag: "users", Summary: "Create a user", h: s.createUser},
		{Method: d, Path: "/users", Out: api.Status{}, Action: engine.ActUserRemove, Tag: "users", Summary: "Remove the calling user (or, for an admin, ?user=email)", h: s.removeUser},
		{Method: g, Path: "/users/info", Out: api.UserInfo{}, Action: engine.ActUserRead, Tag: "users", Summary: "Who the caller is", h: s.whoami},
		{Method: g, Path: "/users/keys", Query: pageQuery, Out: []api.SSHKey{}, Action: engine.ActUserRead, Tag: "users", Summary: "List the caller's SSH keys", h: s.listKeys},
		{Method: p, Path: "/users/keys", In: api.KeyRequest{}, Out: api.KeyAdded{}, Action: engine.ActUserKeyAdd, Tag: "users", Summary: "Add an SSH key", h: s.addKey},
		{Method: d, Path: "/users/keys", In: api.KeyRequest{}, Out: api.Status{}, Action: engine.ActUserKeyRemove, Tag: "users", Summary: "Remove an SSH key", h: s.removeKey},
		{Method: d, Path: "/users/tokens", Out: api.Status{}, Action: engine.ActUserLogout, Tag: "users", Summary: "Log out: revoke the token in use", h: s.logout},
		{Method: u, Path: "/users/password", In: api.PasswordChangeRequest{}, Out: api.Status{}, Action: engine.ActUserPasswordSet, Tag: "users", Summary: "Change the caller's password", h: s.changePassword},
		{Method: p, Path: "/users/:email/tokens", In: api.LoginRequest{}, Out: api.Login{}, Action: engine.ActUserLogin, Public: true, Tag: "users", Summary: "Log in: a token for email and password", h: s.login},
		{Method: p, Path: "/users/:email/password", Out: api.Status{}, Action: engine.ActUserPasswordReset, Public: true, Tag: "users", Summary: "Reset a password (a token is mailed first, then the new password)", h: s.resetPassword},
		{Method: g, Path: "/teams", Query: pageQuery, Out: []api.Team{}, Action: engine.ActTeamRead, Tag: "teams", Summary: "List the caller's teams", h: s.listTeams},
		{Method: p, Path: "/teams", In: api.TeamCreateRequest{}, Out: api.Team{}, Action: engine.ActTeamCreate, Tag: "teams", Summary: "Create a team", h: s.createTeam},
		{Method: g, Path: "/teams/:team", Out: api.Team{}, Action: engine.ActTeamRead, Tag: "teams", Summary: "A team and its members", h: s.getTeam},
		{Method: d, Path: "/teams/:team", Out: api.Status{}, Action: engine.ActTeamRemove, Tag: "teams", Summary: "Remove a team that owns nothing", h: s.removeTeam},
		{Method: u, Path: "/teams/:team/:user", Out: api.Status{}, Action: engine.ActTeamUserAdd, Tag: "teams", Summary: "Add a user to a team", h: s.addTeamUser},
		{Method: d, Path: "/teams/:team/:user", Out: api.Status{}, Action: engine.ActTeamUserRemove, Tag: "teams", Summary: "Remove a user from a team", h: s.removeTeamUser},
		{Method: g, Path: "/quota/:user", Out: api.Quota{}, Action: engine.ActQuotaRead, Tag: "quotas", Summary: "A user's app quota", h: s.getQuota},
		{Method: u, Path: "/quota/:user", In: api.QuotaSetRequest{}, Out: api.Status{}, Action: engine.ActQuotaSet, Tag: "quotas", Summary: "Set a user's app quota (admins)", h: s.setQuota},
		{Method: p, Path: "/tokens", In: api.AppTokenRequest{}, Out: api.AppToken{}, Action: engine.ActAppToken, Tag: "tokens", Summary: "Create a token acting on one app", h: s.createAppToken},
		{Method: g, Path: "/apps", Query: pageQuery, Out: []api.App{}, Action: engine.ActAppList, Tag: "apps", Summary: "List the apps the caller may see", h: s.listApps},
		{Method: p, Path: "/apps", In: api.AppCreateRequest{}, Out: api.AppCreated{}, Action: engine.ActAppCreate, Tag: "apps", Summary: "Create an app", h: s.createAppTsuru},
		{Method: g, Path: "/apps/:app", Out: api.App{}, Action: engine.ActAppRead, Tag: "apps", Summary: "An app, its units and state", h: s.getApp},
		{Method: d, Path: "/apps/:app", Out: api.Status{}, Action: engine.ActAppRemove, Tag: "apps", Summary: "Remove an app: undeploy, unbind, delete", h: s.removeApp},
		{Method: g, Path: "/apps/:app/restart", Out: api.Operation{}, Action: engine.ActAppRestart, Writes: true, Tag: "apps", Summary: "Restart an app's instances", h: s.restartApp},
		{Method: g, Path: "/apps/:app/env", Query: pageQuery, Out: []api.EnvVar{}, Action: engine.ActAppEnvRead, Tag: "env", Summary: "An app's environment (private values hidden)", h: s.getEnv},
		{Method: p, Path: "/apps/:app/env", In: api.EnvSetRequest{}, Out: api.Operation{}, Action: engine.ActAppEnvSet, Tag: "env", Status: 202, AlsoOut: map[int]any{200: api.Status{}}, Summary: "Set environment variables and redeploy", h: s.setEnv},
		{Method: d, Path: "/apps/:app/env", In: api.EnvUnsetRequest{}, InOptional: true, Query: []queryParam{{Name: "env", Doc: "a variable to unset (repeatable), instead of the body"}}, Out: api.Operation{}, Action: engine.ActAppEnvUnset, Tag: "env", Status: 202, AlsoOut: map[int]any{200: api.Status{}}, Summary: "Unset environment variables and redeploy", h: s.unsetEnv},
		{Method: u, Path: "/swap", Out: api.SwapResult{}, Action: engine.ActAppSwap, Tag: "apps", Summary: "Swap the routes of two apps", h: s.swap},
		{Method: g, Path: "/platforms", Query: pageQuery, Out: []api.Platform{}, Action: engine.ActPlatformRead, Tag: "apps", Summary: "List the platforms apps may use", h: s.listPlatforms},
		{Method: g, Path: "/healers", Query: pageQuery, Out: []api.Healer{}, Action: engine.ActHealerRead, Tag: "healers", Summary: "List the healers", h: s.listHealers},
		{Method: g, Path: "/healers/:healer", Out: api.HealerResult{}, Action: engine.ActHealerRun, Writes: true, Tag: "healers", Summary: "Run a healer (admins)", h: s.runHealer},
		{Method: g, Path: "/services", Query: pageQuery, Out: []api.ServiceListItem{}, Action: engine.ActServiceRead, Tag: "services", Summary: "List the services the caller may use, with their instances", h: s.listServices},
		{Method: p, Path: "/services", Out: api.Service{}, Action: engine.ActServiceCreate, InType: "application/x-yaml", Tag: "services", Summary: "Create a service from its YAML definition", h: s.createService},
		{Method: u, Path: "/services", Out: api.Status{}, Action: engine.ActServiceUpdate, InType: "application/x-yaml", Tag: "services", Summary: "Update a service from its YAML definition", h: s.updateService},
		{Method: g, Path: "/services/instances", Query: pageQuery, Out: []api.ServiceListItem{}, Action: engine.ActServiceRead, Tag: "services", Summary: "List the services the caller may use, with their instances", h: s.listServices},
		{Method: p, Path: "/services/instances", In: api.InstanceCreateRequest{}, Out: api.ServiceInstance{}, Action: engine.ActInstanceCreate, Tag: "instances", Summary: "Create a service instance (provisioned by the service's broker)", h: s.createInstance},
		{Method: g, Path: "/services/instances/:instance", Out: api.ServiceInstance{}, Action: engine.ActInstanceRead, Tag: "instances", Summary: "A service instance", h: func(c *call) (any, error) { return s.getInstance(c, c.param("instance")) }},
		{Method: d, Path: "/services/instances/:instance", Out: api.Status{}, Action: engine.ActInstanceRemove, Tag: "instances", Summary: "Remove a service instance (deprovisioned by its broker)", h: func(c *call) (any, error) { return s.removeInstance(c, c.param("instance")) }},
		{Method: g, Path: "/services/instances/:instance/status", Out: api.InstanceStatus{}, Action: engine.ActInstanceRead, Tag: "instances", Summary: "A service instance's status", h: func(c *call) (any, error) { return s.instanceStatus(c, c.param("instance")) }},
		{Method: u, Path: "/services/instances/:instance/:app", Out: map[string]string{}, Action: engine.ActServiceBind, Tag: "instances", Summary: "Bind an instance to an app: credentials into its env, redeployed", h: func(c *call) (any, error) {
			return s.bindInstance(c, c.param("instance"), c.param("app"))
		}},
		{Method: d, Path: "/services/instances/:instance/:app", Out: api.Status{}, Action: engine.ActServiceUnbind, Tag: "instances", Summary: "Unbind an instance from an app and redeploy it", h: func(c *call) (any, error) {
			return s.unbindInstance(c, c.param("instance"), c.param("app"))
		}},
		{Method: g, Path: "/services/:name", Query: pageQuery, Out: []api.ServiceInstanceSummary{}, Action: engine.ActServiceRead, Tag: "services", Summary: "A service", h: s.getService},
		{Method: d, Path: "/services/:name", Action: engine.ActServiceRemove, Tag: "services", Status: 204, Summary: "Remove a service without instances", h: s.removeService},
		{Method: g, Path: "/services/:name/doc", Action: engine.ActServiceRead, Tag: "services", Text: true, Summary: "A service's documentation", h: s.getServiceDoc},
		{Method: u, Path: "/services/:name/doc", Out: api.Status{}, Action: engine.ActServiceDocSet, InType: "text/plain", Tag: "services", Summary: "Set a service's documentation", h: s.putServiceDoc},
		{Method: u, Path: "/services/:name/:team", Out: api.Status{}, Action: engine.ActServiceGrant, Tag: "services", Summary: "Grant a service to a team", h: s.grantService},
		{Method: d, Path: "/services/:name/:team", Out: api.Status{}, Action: engine.ActServiceRevoke, Tag: "services", Summary: "Revoke a service from a team", h: s.revokeService},
	}
}

// lainRoutes is the LAIN-style console surface under /api/v1/: repos (registration), maintainers, push, notifiers, the audit log, deploys, procs, logs and resource instances.
func (s *Server) lainRoutes() []route {
	const g, p, u, d, pa = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch
	return []route{
		{Method: g, Path: "/api/v1/repos", Query: pageQuery, Out: []api.Repo{}, Action: engine.ActAppList, Tag: "repos", Summary: "List the registered apps the caller may see", h: s.listRepos},
		{Method: p, Path: "/api/v1/repos", In: api.RepoCreateRequest{}, Out: api.Repo{}, Action: engine.ActRepoCreate, Tag: "repos", Status: 201, Summary: "Register an app", h: s.createRepo},
		{Method: g, Path: "/api/v1/repos/:app", Out: api.Repo{}, Action: engine.ActAppRead, Tag: "repos", Summary: "A registered app", h: s.getRepo},
		{Method: g, Path: "/api/v1/repos/:app/details", Out: api.RepoDetails{}, Action: engine.ActAppRead, Tag: "repos", Summary: "A registered app with its releases", h: s.repoDetails},
		{Method: g, Path: "/api/v1/repos/:app/roles", Out: api.Role{}, Action: engine.ActAppRead, Tag: "repos", Summary: "The caller's role on an app", h: s.myRole},
		{Method: g, Path: "/api/v1/repos/:app/roles/:username", Out: api.Role{}, Action: engine.ActAppMaintRead, Tag: "repos", Summary: "A user's role on an app", h: s.userRole},
		{Method: g, Path: "/api/v1/repos/:app/maintainers", Query: pageQuery, Out: []api.Maintainer{}, Action: engine.ActAppMaintRead, Tag: "repos", Summary: "List an app's maintainers", h: s.listMaintainers},
		{Method: p, Path: "/api/v1/repos/:app/maintainers", In: api.MaintainerAddRequest{}, Out: api.Maintainer{}, Action: engine.ActRepoMaintAdd, Tag: "repos", Status: 201, Summary: "Add a maintainer", h: s.addMaintainer},
		{Method: g, Path: "/api/v1/repos/:app/maintainers/:username", Out: api.Maintainer{}, Action: engine.ActAppMaintRead, Tag: "repos", Summary: "A maintainer of an app", h: s.getMaintainer},
		{Method: d, Path: "/api/v1/repos/:app/maintainers/:username", Out: api.Status{}, Action: engine.ActRepoMaintRemove, Tag: "repos", Summary: "Remove a maintainer", h: s.removeMaintainer},
		{Method: p, Path: "/api/v1/repos/:app/push", In: api.PushRequest{}, InTypes: []string{"application/yaml", "application/x-yaml", "text/yaml"}, Out: api.PushResult{}, Action: engine.ActRepoPush, Tag: "repos", Status: 201, AlsoStatus: []int{200}, Summary: "Record a release (lain.yaml as YAML or JSON)", h: s.push},
		{Method: g, Path: "/api/v1/notify/:type", Query: pageQuery, Out: []api.Notifier{}, Action: engine.ActNotifyRead, Tag: "notify", Summary: "List the notifiers of an event type", h: s.listNotifiers},
		{Method: p, Path: "/api/v1/notify/:type", In: api.NotifierRequest{}, Out: api.Notifier{}, Action: engine.ActNotifyAdd, Tag: "notify", Status: 201, Summary: "Register a notifier (admins)", h: s.addNotifier},
		{Method: d, Path: "/api/v1/notify/:type", In: api.NotifierRequest{}, Out: api.Status{}, Action: engine.ActNotifyRemove, Tag: "notify", Summary: "Remove a notifier (admins)", h: s.removeNotifier},
		{Method: g, Path: "/api/v1/events", Out: api.EventsPage{}, Action: engine.ActEventsRead, Tag: "events", Summary: "The audit log, newest first, page by page (admins)", h: s.listEvents},
		{Method: g, Path: "/api/v1/apps", Query: deployedQuery, Out: []api.DeployedApp{}, Action: engine.ActAppList, Tag: "deploys", Summary: "List deployed apps", h: s.listDeployed},
		{Method: p, Path: "/api/v1/apps", In: api.DeployRequest{}, Out: api.Operation{}, Action: engine.ActAppDeploy, Tag: "deploys", Status: 202, Summary: "Deploy an app's release", h: s.deployApp},
		{Method: g, Path: "/api/v1/apps/:app", Out: api.DeployedApp{}, Action: engine.ActAppRead, Tag: "deploys", Summary: "A deployed app: desired and actual state, progress", h: s.getDeployed},
		{Method: u, Path: "/api/v1/apps/:app", In: api.DeployVersionRequest{}, Out: api.Operation{}, Action: engine.ActAppUpdate, Tag: "deploys", Status: 202, Summary: "Move a deployed app to another release, or change its deploy policy", h: s.updateDeployed},
		{Method: d, Path: "/api/v1/apps/:app", Out: api.Operation{}, Action: engine.ActAppUndeploy, Tag: "deploys", Status: 202, Summary: "Undeploy an app", h: s.undeployApp},
		{Method: g, Path: "/api/v1/apps/:app/events", Action: engine.ActAppRead, Tag: "deploys", Stream: true, Summary: "Progress of an app's deploys (server-sent events)", h: s.streamEvents},
		s.logsRoute(),
		{Method: g, Path: "/api/v1/apps/:app/procs", Query: pageQuery, Out: []api.Proc{}, Action: engine.ActAppRead, Tag: "deploys", Summary: "List an app's procs", h: s.listProcs},
		{Method: p, Path: "/api/v1/apps/:app/procs", In: api.ProcDeployRequest{}, Out: api.Operation{}, Action: engine.ActProcDeploy, Tag: "deploys", Status: 202, Summary: "Deploy an undeployed proc", h: s.deployProc},
		{Method: g, Path: "/api/v1/apps/:app/procs/:proc", Out: api.Proc{}, Action: engine.ActAppRead, Tag: "deploys", Summary: "A proc and its instances", h: s.getProc},
		{Method: pa, Path: "/api/v1/apps/:app/procs/:proc", In: api.ProcPatchRequest{}, Out: api.Operation{}, Action: engine.ActProcPatch, Tag: "deploys", Status: 202, Summary: "Scale a proc, or change its cpu or memory", h: s.patchProc},
		{Method: d, Path: "/api/v1/apps/:app/procs/:proc", Out: api.Operation{}, Action: engine.ActProcUndeploy, Tag: "deploys", Status: 202, Summary: "Undeploy a proc", h: s.undeployProc},
		{Method: g, Path: "/api/v1/resources/:resource/instances", Query: pageQuery, Out: []api.DeployedApp{}, Action: engine.ActAppRead, AppParam: "resource", Tag: "deploys", Summary: "List a resource's instances", h: s.listResourceInstances},
	}
}
