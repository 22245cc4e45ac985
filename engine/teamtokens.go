package engine

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// Team tokens (as tsuru has them): a token for automation (CI) that acts
// for a team on the team's apps — the apps whose owner or teams include
// the team, by the team's ID — with only the actions it was granted. It
// holds the role team membership gives (developer), so only app actions a
// developer may do can be granted; its creator must be a member of the
// team (or a site admin), must remain one for the token to be accepted,
// and the token dies with the creator's account or the team. The value is
// shown once, at creation; the Secrets keep only its hash (like every
// token) and the Store a record that lists it (state.TeamToken).

const tokenTeam = "team"

// TeamTokenGrant is what a team token may do (Identity.Team).
type TeamTokenGrant struct {
	Team    string
	TeamID  string
	TokenID string
	Actions []Action
}

// tokenImplies: granting an action also grants the route actions that do
// the same thing through another path (an app.deploy token may move the
// app to another release and deploy an undeployed proc; app.scale is
// PATCH of a proc: instances, cpu, memory).
var tokenImplies = map[Action][]Action{
	ActAppPush:     {ActRepoPush},
	ActAppDeploy:   {ActAppUpdate, ActProcDeploy},
	ActAppScale:    {ActProcPatch},
	ActAppEnvWrite: {ActAppEnvSet, ActAppEnvUnset},
}

// TokenGrantable reports whether act may be granted to a team token: an
// action on an app that team membership (developer) allows.
func TokenGrantable(act Action) bool {
	r, ok := policy[act]
	return ok && r.MinRole != "" && state.RoleRank(r.MinRole) <= state.RoleRank(state.RoleDeveloper)
}

// GrantableActions lists the actions a team token may be given, sorted.
func GrantableActions() []string {
	var out []string
	for a := range policy {
		if TokenGrantable(a) {
			out = append(out, string(a))
		}
	}
	sort.Strings(out)
	return out
}

func (g *TeamTokenGrant) grants(act Action) bool {
	if !TokenGrantable(act) {
		return false
	}
	for _, a := range g.Actions {
		if a == act {
			return true
		}
		for _, b := range tokenImplies[a] {
			if b == act {
				return true
			}
		}
	}
	return false
}

// teamTokenAllowed is Allowed for a team token: a granted action, on an
// app of the token's team.
func (s *Engine) teamTokenAllowed(ctx context.Context, id *Identity, act Action, app *state.App) error {
	g := id.Team
	if !g.grants(act) {
		granted := make([]string, len(g.Actions))
		for i, a := range g.Actions {
			granted[i] = string(a)
		}
		return forbidden("this team token may not do %s (it was granted: %s)", act, strings.Join(granted, ", "))
	}
	if app == nil {
		return nil
	}
	t, _, err := state.Get[state.Team](ctx, s.store, state.TeamKey(g.Team))
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return err
	}
	if err != nil || t.ID != g.TeamID || !Contains(appTeams(app), g.Team) || !appTeamMatches(app, g.Team, t) {
		return forbidden("this team token acts on the apps of team %q; app %q is not one of them", g.Team, app.Name)
	}
	return nil
}

// lastUsedEvery is how often a token's last use is recorded.
var lastUsedEvery = time.Minute

// checkTeamToken checks that a team token still stands: its record exists,
// its team is the one it was created for, its creator is the same account
// and still a member of the team (or a site admin). A token whose team or
// creator is gone is revoked; one whose creator left the team is refused
// but kept (it works again if they rejoin, until it expires).
func (s *Engine) checkTeamToken(ctx context.Context, sec *backends.Secret, hash string, creator *state.User) (*TeamTokenGrant, error) {
	rec, _, err := state.Get[state.TeamToken](ctx, s.store, state.TeamTokenKey(sec.Data["token_id"]))
	if errors.Is(err, state.ErrNotFound) || (err == nil && rec.Hash != hash) {
		_ = s.revokeToken(ctx, sec.Data["email"], hash)
		return nil, unauthorized("this team token was revoked")
	}
	if err != nil {
		return nil, err
	}
	if rec.CreatorID != "" && creator.ID != rec.CreatorID {
		_ = s.revokeTeamToken(ctx, rec)
		return nil, unauthorized("the creator of this team token (%s) no longer exists", rec.Creator)
	}
	t, _, err := state.Get[state.Team](ctx, s.store, state.TeamKey(rec.Team))
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	if err != nil || t.ID != rec.TeamID {
		_ = s.revokeTeamToken(ctx, rec)
		return nil, unauthorized("the team of this token (%q) no longer exists", rec.Team)
	}
	if !Contains(t.Users, creator.Email) && !creator.Admin && !s.cfg.IsAdmin(creator.Email) {
		return nil, forbidden("this team token's creator (%s) is no longer a member of team %q, so the token is not accepted", rec.Creator, rec.Team)
	}
	now := time.Now().UTC()
	if rec.LastUsed == nil || now.Sub(*rec.LastUsed) >= lastUsedEvery {
		_, _, err := state.Update(ctx, s.store, state.TeamTokenKey(rec.ID), func(r *state.TeamToken) error {
			r.LastUsed = &now
			return nil
		})
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			s.log.Warn("team token: could not record its last use", "token_id", rec.ID, "error", err)
		}
	}
	g := &TeamTokenGrant{Team: rec.Team, TeamID: rec.TeamID, TokenID: rec.ID}
	for _, a := range rec.Actions {
		g.Actions = append(g.Actions, Action(a))
	}
	return g, nil
}

// userOnly refuses app and team tokens: managing tokens takes a user's own
// login.
func userOnly(id *Identity) error {
	if id == nil {
		return unauthorized("authentication required")
	}
	if id.AppToken || id.Team != nil {
		return forbidden("tokens are managed with a user's token (berth login), not with an app or team token")
	}
	return nil
}

// memberTeam is team, which the caller must be a member of (or a site
// admin).
func (s *Engine) memberTeam(ctx context.Context, id *Identity, team string) (*state.Team, error) {
	if err := names.Team(team); err != nil {
		return nil, invalid(err)
	}
	t, err := s.teamWithID(ctx, team)
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("team %q not found", team)
	}
	if err != nil {
		return nil, err
	}
	if !id.Admin && !Contains(t.Users, id.Email) {
		return nil, forbidden("you (%s) are not a member of team %q", id.Email, team)
	}
	return t, nil
}

// TeamTokenRequest is what a team token is created with.
type TeamTokenRequest struct {
	Team        string
	Description string
	Actions     []string
	// ExpiresIn is the lifetime in seconds (0: users.app_token_ttl; at most
	// users.max_token_ttl).
	ExpiresIn int64
}

// CreateTeamToken issues a team token. It returns its record and its
// value, which is not kept and never shown again.
func (s *Engine) CreateTeamToken(ctx context.Context, id *Identity, in TeamTokenRequest) (*state.TeamToken, string, error) {
	if err := userOnly(id); err != nil {
		return nil, "", err
	}
	t, err := s.memberTeam(ctx, id, in.Team)
	if err != nil {
		return nil, "", err
	}
	if len(in.Description) > 256 {
		return nil, "", InvalidField("description", "description must be at most 256 characters")
	}
	if len(in.Actions) == 0 {
		return nil, "", InvalidField("actions", "give the token at least one action; it may be given: %s", strings.Join(GrantableActions(), ", "))
	}
	var acts []string
	for _, a := range in.Actions {
		if !TokenGrantable(Action(a)) {
			return nil, "", InvalidField("actions", "a team token cannot be given %q; it may be given: %s", a, strings.Join(GrantableActions(), ", "))
		}
		if !Contains(acts, a) {
			acts = append(acts, a)
		}
	}
	sort.Strings(acts)
	ttl, err := s.appTokenTTL(in.ExpiresIn)
	if err != nil {
		return nil, "", err
	}
	u, err := s.userWithID(ctx, id.Email)
	if errors.Is(err, state.ErrNotFound) {
		return nil, "", unauthorized("your account no longer exists")
	}
	if err != nil {
		return nil, "", err
	}
	tokID := NewSecret(8)
	tok, exp, err := s.issue(ctx, id.Email, tokenTeam, "", map[string]string{"team": t.Name, "team_id": t.ID, "token_id": tokID}, ttl)
	if err != nil {
		return nil, "", err
	}
	rec := &state.TeamToken{
		ID: tokID, Team: t.Name, TeamID: t.ID, Description: in.Description, Actions: acts,
		Creator: id.Email, CreatorID: u.ID, Hash: tokenHash(tok), Created: time.Now().UTC(), Expires: exp,
	}
	if _, err := state.Create(ctx, s.store, state.TeamTokenKey(tokID), rec); err != nil {
		_ = s.revokeToken(ctx, id.Email, rec.Hash)
		return nil, "", err
	}
	return rec, tok, nil
}

// ListTeamTokens lists the team tokens of team, or ("") of every team the
// caller is a member of (every team, for a site admin), oldest first. A
// token that no longer works (revoked with its creator's account, expired,
// of a removed team) is cleaned up here rather than listed.
func (s *Engine) ListTeamTokens(ctx context.Context, id *Identity, team string) ([]*state.TeamToken, error) {
	if err := userOnly(id); err != nil {
		return nil, err
	}
	var teams map[string]*state.Team
	if team != "" {
		t, err := s.memberTeam(ctx, id, team)
		if err != nil {
			return nil, err
		}
		teams = map[string]*state.Team{t.Name: t}
	} else if !id.Admin {
		var err error
		if teams, err = s.myTeams(ctx, id); err != nil {
			return nil, err
		}
	}
	recs, err := state.List[state.TeamToken](ctx, s.store, state.TeamTokensPrefix)
	if err != nil {
		return nil, err
	}
	out := []*state.TeamToken{}
	for _, rec := range recs {
		if teams != nil {
			if t := teams[rec.Team]; t == nil || t.ID != rec.TeamID {
				continue
			}
		}
		alive, err := s.teamTokenAlive(ctx, rec)
		if err != nil {
			return nil, err
		}
		if alive {
			out = append(out, rec)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// teamTokenAlive reports whether a listed token still authenticates, and
// removes it if it never will again.
func (s *Engine) teamTokenAlive(ctx context.Context, rec *state.TeamToken) (bool, error) {
	_, err := s.secrets.Get(ctx, tokenPath(rec.Hash), 0)
	dead := errors.Is(err, backends.ErrNotFound) || time.Now().After(rec.Expires)
	if err != nil && !dead {
		return false, err
	}
	if !dead {
		t, _, err := state.Get[state.Team](ctx, s.store, state.TeamKey(rec.Team))
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return false, err
		}
		dead = err != nil || t.ID != rec.TeamID
	}
	if dead {
		if err := s.revokeTeamToken(ctx, rec); err != nil {
			s.log.Warn("team token: could not remove a dead token", "token_id", rec.ID, "error", err)
		}
		return false, nil
	}
	return true, nil
}

// RevokeTeamToken revokes a team token by ID; team, when not "", is the
// team the request names. Members of the token's team (and site admins)
// may revoke it. 404 for a token the caller cannot see.
func (s *Engine) RevokeTeamToken(ctx context.Context, id *Identity, team, tokenID string) (*state.TeamToken, error) {
	if err := userOnly(id); err != nil {
		return nil, err
	}
	var t *state.Team
	if team != "" {
		var err error
		if t, err = s.memberTeam(ctx, id, team); err != nil {
			return nil, err
		}
	}
	if !isTokenID(tokenID) {
		return nil, notFound("team token %q not found", tokenID)
	}
	rec, _, err := state.Get[state.TeamToken](ctx, s.store, state.TeamTokenKey(tokenID))
	if errors.Is(err, state.ErrNotFound) || (err == nil && t != nil && (rec.Team != t.Name || rec.TeamID != t.ID)) {
		return nil, notFound("team token %q not found", tokenID)
	}
	if err != nil {
		return nil, err
	}
	if t == nil && !id.Admin {
		mine, err := s.myTeams(ctx, id)
		if err != nil {
			return nil, err
		}
		if mt := mine[rec.Team]; mt == nil || mt.ID != rec.TeamID {
			return nil, notFound("team token %q not found", tokenID)
		}
	}
	return rec, s.revokeTeamToken(ctx, rec)
}

// isTokenID reports whether s has the shape of a token ID (16 hex digits):
// anything else is not looked up.
func isTokenID(s string) bool {
	if len(s) != appTokenIDLen {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// revokeTeamToken deletes the token (it stops working at once), then its
// record.
func (s *Engine) revokeTeamToken(ctx context.Context, rec *state.TeamToken) error {
	if err := s.revokeToken(ctx, rec.Creator, rec.Hash); err != nil {
		return err
	}
	err := state.Delete(ctx, s.store, state.TeamTokenKey(rec.ID))
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	return err
}

// AppTokenInfo describes an app token (never its value). Its ID is the
// start of the token's hash.
type AppTokenInfo struct {
	ID      string
	App     string
	Creator string
	Created time.Time
	Expires time.Time
}

const appTokenIDLen = 16

// ListAppTokens lists the app tokens of app (the caller's right to see
// them, app.token.read, is checked by whoever loaded app), oldest first.
// Tokens that will never work again (expired, of an earlier app of the
// same name) are revoked rather than listed.
func (s *Engine) ListAppTokens(ctx context.Context, id *Identity, app *state.App) ([]AppTokenInfo, error) {
	if err := userOnly(id); err != nil {
		return nil, err
	}
	paths, err := s.secrets.List(ctx, "app-tokens/"+app.Name+"/")
	if err != nil {
		return nil, err
	}
	out := []AppTokenInfo{}
	for _, p := range paths {
		h := p[strings.LastIndexByte(p, '/')+1:]
		sec, err := s.secrets.Get(ctx, tokenPath(h), 0)
		if errors.Is(err, backends.ErrNotFound) {
			_ = s.secrets.Delete(ctx, p)
			continue
		}
		if err != nil {
			return nil, err
		}
		exp, err := time.Parse(time.RFC3339, sec.Data["expires"])
		if err != nil || time.Now().After(exp) || !sameIncarnation(sec.Data, app) || len(h) < appTokenIDLen {
			_ = s.revokeToken(ctx, sec.Data["email"], h)
			continue
		}
		created, _ := time.Parse(time.RFC3339, sec.Data["created"])
		out = append(out, AppTokenInfo{ID: h[:appTokenIDLen], App: app.Name, Creator: sec.Data["email"], Created: created, Expires: exp})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// RevokeAppToken revokes the app token of app with that ID (404 if none).
func (s *Engine) RevokeAppToken(ctx context.Context, id *Identity, app *state.App, tokenID string) error {
	if err := userOnly(id); err != nil {
		return err
	}
	if !isTokenID(tokenID) {
		return notFound("app token %q of app %q not found", tokenID, app.Name)
	}
	paths, err := s.secrets.List(ctx, "app-tokens/"+app.Name+"/")
	if err != nil {
		return err
	}
	for _, p := range paths {
		h := p[strings.LastIndexByte(p, '/')+1:]
		if !strings.HasPrefix(h, tokenID) {
			continue
		}
		email := ""
		if sec, err := s.secrets.Get(ctx, p, 0); err == nil {
			email = sec.Data["email"]
		}
		if err := s.revokeToken(ctx, email, h); err != nil {
			return err
		}
		return s.secrets.Delete(ctx, p)
	}
	return notFound("app token %q of app %q not found", tokenID, app.Name)
}
