package engine

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// checkedApp is an app record an API request has already loaded (and
// checked its route's action against): the first LoadApp of that app in the
// request takes it instead of reading and decoding the record again.
type checkedApp struct {
	mu  sync.Mutex
	app *state.App
}

type checkedAppKey struct{}

// WithCheckedApp hands a to the first LoadApp of a.Name made with the
// returned context (the HTTP layer loads the app a route names to check the
// route's action, and the handler's engine call loads it again). It is
// handed out once, so no two callers share (and may change) one record;
// later loads read the Store. The action asked by that LoadApp is checked
// again on the record.
func WithCheckedApp(ctx context.Context, a *state.App) context.Context {
	if a == nil {
		return ctx
	}
	return context.WithValue(ctx, checkedAppKey{}, &checkedApp{app: a})
}

func takeCheckedApp(ctx context.Context, name string) *state.App {
	c, ok := ctx.Value(checkedAppKey{}).(*checkedApp)
	if !ok {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.app == nil || c.app.Name != name {
		return nil
	}
	a := c.app
	c.app = nil
	return a
}

// LoadApp loads an app, checking that the caller may do act on it.
// Unknown apps are ErrNotFound.
func (s *Engine) LoadApp(ctx context.Context, id *Identity, name string, act Action) (*state.App, error) {
	if a := takeCheckedApp(ctx, name); a != nil {
		if err := s.Allowed(ctx, id, act, a); err != nil {
			return nil, err
		}
		return a, nil
	}
	a, err := state.GetApp(ctx, s.store, name)
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("app %q not found", name)
	}
	if err != nil {
		return nil, err
	}
	if err := s.Allowed(ctx, id, act, a); err != nil {
		return nil, err
	}
	return a, nil
}

type NewApp struct {
	Name      string
	Platform  string
	TeamOwner string
	AppType   string
	Resource  string
	Client    string
}

// RegisterApp creates an app owned by the caller, counting it against the
// caller's quota in the same transaction, so concurrent creates can never
// exceed it.
func (s *Engine) RegisterApp(ctx context.Context, id *Identity, in NewApp) (*state.App, error) {
	if id.AppToken {
		return nil, forbidden("an app token cannot create apps")
	}
	if err := names.App(in.Name); err != nil {
		return nil, err
	}
	if in.AppType == "" {
		in.AppType = state.AppTypeApp
	}
	switch in.AppType {
	case state.AppTypeApp, state.AppTypeService, state.AppTypeResource, state.AppTypeResourceInstance:
	default:
		return nil, badRequest("apptype must be one of app, service, resource, not %q", in.AppType)
	}
	if in.Platform != "" && !Contains(s.cfg.Platforms, in.Platform) {
		return nil, badRequest("unknown platform %q; see GET /platforms", in.Platform)
	}
	if in.TeamOwner != "" {
		if err := names.Team(in.TeamOwner); err != nil {
			return nil, err
		}
	}
	app := &state.App{
		Name: in.Name, Owner: id.Email, TeamOwner: in.TeamOwner, Platform: in.Platform, AppType: in.AppType,
		Resource: in.Resource, Client: in.Client,
		Maintainers: map[string]string{id.Email: state.RoleOwner},
		GitURL:      strings.ReplaceAll(s.cfg.Apps.GitURLTemplate, "{app}", in.Name),
		Created:     time.Now().UTC(),
		Routes:      []string{in.Name + "." + s.cfg.Apps.Domain},
	}
	if in.TeamOwner != "" {
		app.Teams = []string{in.TeamOwner}
	}
	for attempt := 0; attempt < 32; attempt++ {
		// The team is checked and written (with its ID) in the app's
		// transaction: its ModifyIndex moves, so a DELETE /teams that
		// checked for apps before this commit fails its CAS, and one that
		// committed first makes this one fail and find no team.
		var teamOp []backends.TxnOp
		if in.TeamOwner != "" {
			t, tidx, err := state.Get[state.Team](ctx, s.store, state.TeamKey(in.TeamOwner))
			if errors.Is(err, state.ErrNotFound) {
				return nil, notFound("team %q not found", in.TeamOwner)
			}
			if err != nil {
				return nil, err
			}
			if !id.Admin && !Contains(t.Users, id.Email) {
				return nil, forbidden("you are not a member of team %q", in.TeamOwner)
			}
			if t.ID == "" {
				t.ID = state.NewID()
			}
			app.TeamIDs = map[string]string{in.TeamOwner: t.ID}
			teamJSON, err := jsonBytes(t)
			if err != nil {
				return nil, err
			}
			teamOp = []backends.TxnOp{{Verb: backends.TxnCAS, Key: state.TeamKey(in.TeamOwner), Value: teamJSON, Index: tidx}}
		}
		appJSON, err := jsonBytes(app)
		if err != nil {
			return nil, err
		}
		u, uidx, err := state.Get[state.User](ctx, s.store, state.UserKey(id.Email))
		if errors.Is(err, state.ErrNotFound) {
			return nil, unauthorized("your user no longer exists")
		}
		if err != nil {
			return nil, err
		}
		if limit := s.quotaOf(u); u.Owned >= limit {
			return nil, forbidden("quota exceeded: you own %d of %d apps allowed; remove one or ask an admin to raise your quota", u.Owned, limit)
		}
		u.Owned++
		userJSON, err := jsonBytes(u)
		if err != nil {
			return nil, err
		}
		_, err = s.store.Txn(ctx, append([]backends.TxnOp{
			{Verb: backends.TxnCAS, Key: state.AppKey(in.Name), Value: appJSON, Index: 0},
			{Verb: backends.TxnCAS, Key: state.UserKey(id.Email), Value: userJSON, Index: uidx},
		}, teamOp...))
		if err == nil {
			return app, nil
		}
		if !errors.Is(err, backends.ErrCASConflict) {
			return nil, err
		}
		var te *backends.TxnError
		if errors.As(err, &te) && te.OpIndex == 0 {
			return nil, conflict("app %q already exists", in.Name)
		}
		if p, _, gerr := s.store.Get(ctx, state.AppKey(in.Name), nil); gerr == nil && p != nil {
			return nil, conflict("app %q already exists", in.Name)
		}
	}
	return nil, conflict("too many concurrent changes; try again")
}

// unregisterApp removes an app's record, gives its owner the quota back,
// and removes its releases and private env. The caller has undeployed it.
func (s *Engine) unregisterApp(ctx context.Context, app *state.App) error {
	for attempt := 0; attempt < 32; attempt++ {
		cur, err := state.GetApp(ctx, s.store, app.Name)
		if errors.Is(err, state.ErrNotFound) {
			return notFound("app %q not found", app.Name)
		}
		if err != nil {
			return err
		}
		ops := []backends.TxnOp{{Verb: backends.TxnDeleteCAS, Key: state.AppKey(app.Name), Index: cur.ModifyIndex}}
		u, uidx, err := state.Get[state.User](ctx, s.store, state.UserKey(cur.Owner))
		if cur.AppType == state.AppTypeResourceInstance {
			err = state.ErrNotFound // instances do not count against quotas
		}
		if err == nil {
			if u.Owned > 0 {
				u.Owned--
			}
			b, err := jsonBytes(u)
			if err != nil {
				return err
			}
			ops = append(ops, backends.TxnOp{Verb: backends.TxnCAS, Key: state.UserKey(cur.Owner), Value: b, Index: uidx})
		} else if !errors.Is(err, state.ErrNotFound) {
			return err
		}
		_, err = s.store.Txn(ctx, ops)
		if errors.Is(err, backends.ErrCASConflict) {
			continue
		}
		if err != nil {
			return err
		}
		if _, err := s.store.DeleteTree(ctx, state.ReleasePrefix(app.Name)); err != nil {
			s.log.Warn("could not delete releases", "app", app.Name, "error", err)
		}
		if err := s.forgetHistory(ctx, app.Name); err != nil {
			s.log.Warn("could not delete the deploy history", "app", app.Name, "error", err)
		}
		if err := s.secrets.Delete(ctx, envSecretPath(app.Name)); err != nil {
			s.log.Warn("could not delete private env", "app", app.Name, "error", err)
		}
		return nil
	}
	return conflict("too many concurrent changes; try again")
}

func envSecretPath(app string) string { return "apps/" + app + "/env" }

// latestRelease returns the newest pushed release of an app, or nil.
func (s *Engine) latestRelease(ctx context.Context, app string) (*state.Release, error) {
	rs, err := state.List[state.Release](ctx, s.store, state.ReleasePrefix(app))
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	sort.SliceStable(rs, func(i, j int) bool {
		if !rs[i].Pushed.Equal(rs[j].Pushed) {
			return rs[i].Pushed.Before(rs[j].Pushed)
		}
		return rs[i].MetaVersion < rs[j].MetaVersion
	})
	return rs[len(rs)-1], nil
}

func jsonBytes(v any) ([]byte, error) { return json.Marshal(v) }

// AppStatus is an app with its teams and what the scheduler reports of it.
type AppStatus struct {
	RegisteredApp
	// Units are its running instances.
	Units []backends.Instance
	// State is "registered" when it is not deployed, "unknown" when the
	// scheduler cannot say, else the scheduler's deployment state.
	State string
}

func (s *Engine) appStatus(ctx context.Context, a *state.App) *AppStatus {
	units, st := s.Units(ctx, a)
	return &AppStatus{RegisteredApp: RegisteredApp{App: a, Teams: sortedTeams(a)}, Units: units, State: st}
}

// sortedTeams are the teams with access to a, sorted; never nil.
func sortedTeams(a *state.App) []string {
	ts := appTeams(a)
	sort.Strings(ts)
	if ts == nil {
		ts = []string{}
	}
	return ts
}

// ListApps lists the apps the caller may read, with their units.
func (s *Engine) ListApps(ctx context.Context, id *Identity) ([]*AppStatus, error) {
	out, _, err := s.ListAppsPage(ctx, id, Page{})
	return out, err
}

// GetApp is one app the caller may read, with its units.
func (s *Engine) GetApp(ctx context.Context, id *Identity, name string) (*AppStatus, error) {
	a, err := s.loadApp(ctx, id, name, ActAppRead)
	if err != nil {
		return nil, err
	}
	return s.appStatus(ctx, a), nil
}

// RemoveApp undeploys an app (unbinding its services), removes its record,
// releases and private env, gives its owner the quota back and revokes its
// app tokens. Only its owners (and site admins) may.
func (s *Engine) RemoveApp(ctx context.Context, id *Identity, name string) error {
	a, err := s.loadApp(ctx, id, name, ActAppDelete)
	if err != nil {
		return err
	}
	if err := s.beforeRemoveApp(ctx, id, a); err != nil {
		return err
	}
	if err := s.unregisterApp(ctx, a); err != nil {
		return err
	}
	// Its app tokens die with it. (Should this fail, they are refused all
	// the same: a token is bound to the app it was issued for, not to an
	// app that later gets the same name; see checkAppToken.)
	if err := s.revokeAppTokens(ctx, a.Name); err != nil {
		s.log.Warn("could not revoke the app tokens of a removed app", "app", a.Name, "error", err)
	}
	return nil
}

// Platforms are the platforms apps may name.
func (s *Engine) Platforms() []string {
	return append([]string(nil), s.cfg.Platforms...)
}
