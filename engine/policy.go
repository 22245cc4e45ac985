package engine

import (
	"context"
	"errors"

	"github.com/berthpaas/berth/engine/state"
)

// Action is something a caller may be allowed to do.
type Action string

// Actions on apps.
const (
	ActAppRead         Action = "app.read"
	ActAppPush         Action = "app.push"
	ActAppDeploy       Action = "app.deploy"
	ActAppScale        Action = "app.scale"
	ActAppRestart      Action = "app.restart"
	ActAppEnvRead      Action = "app.env.read"
	ActAppEnvWrite     Action = "app.env.write"
	ActAppUndeploy     Action = "app.undeploy"
	ActAppMaintRead    Action = "app.maintainers.read"
	ActAppMaintWrite   Action = "app.maintainers.write"
	ActAppDelete       Action = "app.delete"
	ActAppToken        Action = "app.token.create"
	ActAppSwap         Action = "app.swap"
	ActAppBind         Action = "app.bind"
	ActResourceUse     Action = "resource.use"
	ActEventsRead      Action = "events.read"
	ActNotifyWrite     Action = "notify.write"
	ActHealerRun       Action = "healer.run"
	ActServiceManage   Action = "service.manage"
	ActUserQuotaOthers Action = "quota.read.others"
)

// rule says who may do an action.
type rule struct {
	// MinRole is the weakest app role that may act ("" = not an app action).
	MinRole string
	// AppToken: an app token for the same app may act.
	AppToken bool
	// AdminOnly: only site admins.
	AdminOnly bool
}

// policy is the whole permission table. Site admins may do everything;
// team members of an app's teams act as developers on it.
var policy = map[Action]rule{
	ActAppRead:         {MinRole: state.RoleDeveloper, AppToken: true},
	ActAppPush:         {MinRole: state.RoleDeveloper, AppToken: true},
	ActAppDeploy:       {MinRole: state.RoleDeveloper, AppToken: true},
	ActAppScale:        {MinRole: state.RoleDeveloper, AppToken: true},
	ActAppRestart:      {MinRole: state.RoleDeveloper, AppToken: true},
	ActAppEnvRead:      {MinRole: state.RoleDeveloper, AppToken: true},
	ActAppEnvWrite:     {MinRole: state.RoleDeveloper, AppToken: true},
	ActAppBind:         {MinRole: state.RoleDeveloper},
	ActResourceUse:     {MinRole: state.RoleDeveloper},
	ActAppMaintRead:    {MinRole: state.RoleDeveloper},
	ActAppUndeploy:     {MinRole: state.RoleAdmin},
	ActAppMaintWrite:   {MinRole: state.RoleAdmin},
	ActAppToken:        {MinRole: state.RoleAdmin},
	ActAppSwap:         {MinRole: state.RoleAdmin},
	ActAppDelete:       {MinRole: state.RoleOwner},
	ActEventsRead:      {AdminOnly: true},
	ActNotifyWrite:     {AdminOnly: true},
	ActHealerRun:       {AdminOnly: true},
	ActUserQuotaOthers: {AdminOnly: true},
}

// roleOn is the caller's effective role on an app: the maintainer role, or
// developer through membership of one of the app's teams (the team that
// was given the app, by ID: not one re-created under its name).
func (s *Engine) roleOn(id *Identity, app *state.App, teams map[string]*state.Team) string {
	if id == nil || id.AppToken || id.Team != nil {
		return ""
	}
	role := app.Maintainers[id.Email]
	if role == "" {
		for _, t := range appTeams(app) {
			if tm := teams[t]; appTeamMatches(app, t, tm) && Contains(tm.Users, id.Email) {
				return state.RoleDeveloper
			}
		}
	}
	return role
}

func appTeams(app *state.App) []string {
	ts := append([]string(nil), app.Teams...)
	if app.TeamOwner != "" && !Contains(ts, app.TeamOwner) {
		ts = append(ts, app.TeamOwner)
	}
	return ts
}

// allowed is may for any identity (nil = anonymous). App tokens are checked
// against their app here; that the token still stands (its app is the one
// it was issued for, its creator may still issue it) is checked when it is
// authenticated (checkAppToken).
func (s *Engine) Allowed(ctx context.Context, id *Identity, act Action, app *state.App) error {
	r, ok := policy[act]
	if !ok {
		return forbidden("action %s is not allowed", act)
	}
	if id == nil {
		return unauthorized("authentication required")
	}
	if id.Admin {
		return nil
	}
	if id.Team != nil {
		return s.teamTokenAllowed(ctx, id, act, app)
	}
	if r.AdminOnly {
		return forbidden("only site admins may do %s", act)
	}
	if app == nil {
		return nil
	}
	if id.AppToken {
		if r.AppToken && id.App == app.Name {
			return nil
		}
		return forbidden("this app token may not do %s on app %q", act, app.Name)
	}
	teams, err := s.teamsOf(ctx, app)
	if err != nil {
		return err
	}
	role := s.roleOn(id, app, teams)
	if state.RoleRank(role) >= state.RoleRank(r.MinRole) && role != "" {
		return nil
	}
	if role == "" {
		return forbidden("you (%s) have no role on app %q", id.Email, app.Name)
	}
	return forbidden("you (%s) are %s on app %q; %s needs %s", id.Email, role, app.Name, act, r.MinRole)
}

func (s *Engine) teamsOf(ctx context.Context, app *state.App) (map[string]*state.Team, error) {
	out := map[string]*state.Team{}
	for _, name := range appTeams(app) {
		t, _, err := state.Get[state.Team](ctx, s.store, state.TeamKey(name))
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

func Contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// quotaOf is how many apps u may own.
func (s *Engine) quotaOf(u *state.User) int {
	if u.Quota != nil {
		return *u.Quota
	}
	return *s.cfg.Users.DefaultQuota
}

func Remove(list []string, s string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
