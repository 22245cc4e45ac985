package engine

import "github.com/berthpaas/berth/engine/state"

// The actions of the API's routes. Each route names one; the HTTP layer
// checks it with Allowed before the handler runs and records it in the
// audit log for state changes, so the permission and the audit record
// cannot disagree. Actions on an app (a rule with MinRole) are checked
// against the app the route's path names.
const (
	ActUserCreate        Action = "user.create"
	ActUserRemove        Action = "user.remove"
	ActUserRead          Action = "user.read"
	ActUserKeyAdd        Action = "user.key.add"
	ActUserKeyRemove     Action = "user.key.remove"
	ActUserLogin         Action = "user.login"
	ActUserLogout        Action = "user.logout"
	ActUserPasswordSet   Action = "user.password.change"
	ActUserPasswordReset Action = "user.password.reset"
	ActTeamRead          Action = "team.read"
	ActTeamCreate        Action = "team.create"
	ActTeamRemove        Action = "team.remove"
	ActTeamUserAdd       Action = "team.user.add"
	ActTeamUserRemove    Action = "team.user.remove"
	ActQuotaRead         Action = "quota.read"
	ActQuotaSet          Action = "quota.set"
	ActAppList           Action = "app.list"
	ActAppCreate         Action = "app.create"
	ActAppRemove         Action = "app.remove"
	ActPlatformRead      Action = "platform.read"
	ActRepoCreate        Action = "repo.create"
	ActRepoMaintAdd      Action = "repo.maintainer.add"
	ActRepoMaintRemove   Action = "repo.maintainer.remove"
	ActRepoPush          Action = "repo.push"
	ActNotifyRead        Action = "notify.read"
	ActNotifyAdd         Action = "notify.add"
	ActNotifyRemove      Action = "notify.remove"
	ActAppUpdate         Action = "app.update"
	ActProcDeploy        Action = "proc.deploy"
	ActProcPatch         Action = "proc.patch"
	ActProcUndeploy      Action = "proc.undeploy"
	ActAppEnvSet         Action = "app.env.set"
	ActAppEnvUnset       Action = "app.env.unset"
	ActHealerRead        Action = "healer.read"
	ActServiceRead       Action = "service.read"
	ActServiceCreate     Action = "service.create"
	ActServiceUpdate     Action = "service.update"
	ActServiceRemove     Action = "service.remove"
	ActServiceDocSet     Action = "service.doc.set"
	ActServiceGrant      Action = "service.grant"
	ActServiceRevoke     Action = "service.revoke"
	ActInstanceRead      Action = "service.instance.read"
	ActInstanceCreate    Action = "service.instance.create"
	ActInstanceRemove    Action = "service.instance.remove"
	ActServiceBind       Action = "service.bind"
	ActServiceUnbind     Action = "service.unbind"
	ActHealthRead        Action = "health.read"
)

// routeRules are the rules of the route actions that are not already in
// the policy table. A rule without MinRole or AdminOnly lets any
// authenticated caller through to the engine, which decides on what the
// request names (a team, a service, an instance, the caller's own
// account).
var routeRules = map[Action]rule{
	ActUserCreate: {}, ActUserRemove: {}, ActUserRead: {}, ActUserKeyAdd: {}, ActUserKeyRemove: {},
	ActUserLogin: {}, ActUserLogout: {}, ActUserPasswordSet: {}, ActUserPasswordReset: {},
	ActTeamRead: {}, ActTeamCreate: {}, ActTeamRemove: {}, ActTeamUserAdd: {}, ActTeamUserRemove: {},
	ActQuotaRead:       {},
	ActQuotaSet:        {AdminOnly: true},
	ActAppList:         {},
	ActAppCreate:       {},
	ActAppRemove:       {MinRole: state.RoleOwner},
	ActPlatformRead:    {},
	ActRepoCreate:      {},
	ActRepoMaintAdd:    {MinRole: state.RoleAdmin},
	ActRepoMaintRemove: {MinRole: state.RoleAdmin},
	ActRepoPush:        {MinRole: state.RoleDeveloper, AppToken: true},
	ActNotifyRead:      {},
	ActNotifyAdd:       {AdminOnly: true},
	ActNotifyRemove:    {AdminOnly: true},
	ActAppUpdate:       {MinRole: state.RoleDeveloper, AppToken: true},
	ActProcDeploy:      {MinRole: state.RoleDeveloper, AppToken: true},
	ActProcPatch:       {MinRole: state.RoleDeveloper, AppToken: true},
	ActProcUndeploy:    {MinRole: state.RoleAdmin},
	ActAppEnvSet:       {MinRole: state.RoleDeveloper, AppToken: true},
	ActAppEnvUnset:     {MinRole: state.RoleDeveloper, AppToken: true},
	ActHealerRead:      {},
	ActServiceRead:     {}, ActServiceCreate: {}, ActServiceUpdate: {}, ActServiceRemove: {},
	ActServiceDocSet: {}, ActServiceGrant: {}, ActServiceRevoke: {},
	ActInstanceRead: {}, ActInstanceCreate: {}, ActInstanceRemove: {},
	ActServiceBind: {}, ActServiceUnbind: {},
	ActHealthRead: {},
}

func init() {
	for a, r := range routeRules {
		if _, dup := policy[a]; dup {
			panic("engine: action " + string(a) + " has two rules")
		}
		policy[a] = r
	}
}

// OnApp reports whether act is checked against an app (its rule names a
// role on the app).
func OnApp(act Action) bool { return policy[act].MinRole != "" }

// Known reports whether act is in the policy table.
func Known(act Action) bool { _, ok := policy[act]; return ok }
