package engine

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
)

// Identity by immutable id: users and teams are named by email and name in
// the API, but those names can be taken again after the record is deleted.
// Every record that grants something to a team or a user (services' teams,
// instances' teams and owner) also keeps the ID the team or user had when
// it was granted; a check matches only if the current record has that ID,
// so a re-created name inherits nothing. Records written before IDs existed
// have no recorded ID: they match by name until the service sweep pins
// them (to the current record, or to a tombstone when the name is gone).

// teamWithID reads a team, giving it an ID if it has none (older records).
func (s *Engine) teamWithID(ctx context.Context, name string) (*state.Team, error) {
	t, _, err := state.Get[state.Team](ctx, s.store, state.TeamKey(name))
	if err != nil || t.ID != "" {
		return t, err
	}
	t, _, err = state.Update(ctx, s.store, state.TeamKey(name), func(t *state.Team) error {
		if t.ID == "" {
			t.ID = state.NewID()
		}
		return nil
	})
	return t, err
}

// userWithID reads a user, giving it an ID if it has none (users get one
// the first time something is recorded as theirs).
func (s *Engine) userWithID(ctx context.Context, email string) (*state.User, error) {
	u, _, err := state.Get[state.User](ctx, s.store, state.UserKey(email))
	if err != nil || u.ID != "" {
		return u, err
	}
	u, _, err = state.Update(ctx, s.store, state.UserKey(email), func(u *state.User) error {
		if u.ID == "" {
			u.ID = state.NewID()
		}
		return nil
	})
	return u, err
}

// teamMatches reports whether t is the team that was granted under name:
// the ID recorded at grant time (ids) is t's. A reference with no recorded
// ID (an older record not yet pinned by the sweep) matches by name.
func teamMatches(ids map[string]string, name string, t *state.Team) bool {
	if t == nil || t.Name != name {
		return false
	}
	id, ok := ids[name]
	if !ok {
		return true
	}
	return id != "" && id == t.ID
}

// appTeamMatches is teamMatches for the teams of an app. An app record
// with no recorded ID (older than app team IDs, not yet pinned by the
// sweep) matches only a team created no later than the app was (or, for a
// resource instance, than its resource was): an app is given its teams
// when it is registered, so a team created after that is a re-creation.
func appTeamMatches(app *state.App, name string, t *state.Team) bool {
	if t == nil || t.Name != name {
		return false
	}
	if id, ok := app.TeamIDs[name]; ok {
		return id != "" && id == t.ID
	}
	since := app.Created
	if !app.ResourceCreated.IsZero() {
		since = app.ResourceCreated
	}
	return since.IsZero() || !t.Created.After(since)
}

// ownsInstance reports whether u is the user that created inst.
func ownsInstance(inst *state.ServiceInstance, u *state.User) bool {
	if u == nil || inst.Owner == "" || inst.Owner != u.Email {
		return false
	}
	return inst.OwnerID == "" || inst.OwnerID == u.ID
}

// myTeams is the caller's teams by name, each with its ID.
func (s *Engine) myTeams(ctx context.Context, id *Identity) (map[string]*state.Team, error) {
	ts, err := state.List[state.Team](ctx, s.store, state.TeamsPrefix)
	if err != nil {
		return nil, err
	}
	out := map[string]*state.Team{}
	for _, t := range ts {
		if !Contains(t.Users, id.Email) {
			continue
		}
		if t.ID == "" {
			if t, err = s.teamWithID(ctx, t.Name); err != nil {
				if errors.Is(err, state.ErrNotFound) {
					continue
				}
				return nil, err
			}
		}
		out[t.Name] = t
	}
	return out, nil
}

// TeamIDs records the current IDs of the named teams (grant time).
func (s *Engine) TeamIDs(ctx context.Context, teams []string) (map[string]string, error) {
	ids := map[string]string{}
	for _, name := range teams {
		t, err := s.teamWithID(ctx, name)
		if errors.Is(err, state.ErrNotFound) {
			return nil, notFound("team %q not found", name)
		}
		if err != nil {
			return nil, err
		}
		ids[name] = t.ID
	}
	return ids, nil
}

// teamHoldings names the services and service instances that refer to team
// t (as owner or granted team); a team is not deleted while it has any.
func (s *Engine) teamHoldings(ctx context.Context, t *state.Team) (services, instances []string, err error) {
	svcs, err := state.List[state.Service](ctx, s.store, state.ServicesPrefix)
	if err != nil {
		return nil, nil, err
	}
	for _, svc := range svcs {
		if (Contains(svc.Teams, t.Name) || Contains(svc.OwnerTeams, t.Name)) && teamMatches(svc.TeamIDs, t.Name, t) {
			services = append(services, svc.Name)
		}
	}
	insts, err := state.List[state.ServiceInstance](ctx, s.store, state.InstancesPrefix)
	if err != nil {
		return nil, nil, err
	}
	for _, inst := range insts {
		if Contains(inst.Teams, t.Name) && teamMatches(inst.TeamIDs, t.Name, t) {
			instances = append(instances, inst.Name)
		}
	}
	return services, instances, nil
}

// instancesWithoutTeam names the instances u owns that have no team to be
// handed to: deleting u is refused while there are any.
func (s *Engine) instancesWithoutTeam(ctx context.Context, u *state.User) ([]string, error) {
	insts, err := state.List[state.ServiceInstance](ctx, s.store, state.InstancesPrefix)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, inst := range insts {
		if ownsInstance(inst, u) && len(inst.Teams) == 0 {
			out = append(out, inst.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// handOverInstances gives the instances u owned to their teams: the owner
// is cleared, so only members of the instance's teams (checked by ID) have
// access. Run after the account is deleted.
func (s *Engine) handOverInstances(ctx context.Context, u *state.User) error {
	insts, err := state.List[state.ServiceInstance](ctx, s.store, state.InstancesPrefix)
	if err != nil {
		return err
	}
	var failed error
	for _, inst := range insts {
		if !ownsInstance(inst, u) {
			continue
		}
		_, _, err := state.Update(ctx, s.store, state.InstanceKey(inst.Name), func(i *state.ServiceInstance) error {
			if ownsInstance(i, u) {
				i.Owner, i.OwnerID = "", ""
			}
			return nil
		})
		if err != nil && !errors.Is(err, state.ErrNotFound) && failed == nil {
			failed = err
		}
	}
	return failed
}

// updateForUser is state.Update for a change that names the user email
// (a maintainer role, a team membership): the record is written in one
// transaction with a check that the user's record is unchanged, so the
// change never lands after DELETE /users deleted the account (that
// deletes the record first, then drops the email from apps and teams;
// a change committed before the delete is seen by that sweep). 404 if
// the user does not exist.
func updateForUser[T any](ctx context.Context, st backends.Store, key, email string, fn func(v *T) error) error {
	for attempt := 0; attempt < 64; attempt++ {
		_, uidx, err := state.Get[state.User](ctx, st, state.UserKey(email))
		if errors.Is(err, state.ErrNotFound) {
			return notFound("user %s not found", email)
		}
		if err != nil {
			return err
		}
		v, idx, err := state.Get[T](ctx, st, key)
		if err != nil {
			return err
		}
		if err := fn(v); err != nil {
			return err
		}
		b, err := jsonBytes(v)
		if err != nil {
			return err
		}
		_, err = st.Txn(ctx, []backends.TxnOp{
			{Verb: backends.TxnCAS, Key: key, Value: b, Index: idx},
			{Verb: backends.TxnCheckIndex, Key: state.UserKey(email), Index: uidx},
		})
		if !errors.Is(err, backends.ErrCASConflict) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(time.Duration(attempt) * time.Millisecond)
	}
	return state.ErrConflict
}

// tombstone is recorded for a reference whose team or user no longer
// exists when the sweep pins it: it matches no record.
const tombstone = "deleted"

// pinIdentities records IDs in older service and instance records that
// have none (run by the service sweep). A reference to a team or user that
// no longer exists is pinned to a tombstone, so a re-created name never
// matches it.
func (s *Engine) pinIdentities(ctx context.Context) {
	pinTeams := func(ids map[string]string, names []string) (map[string]string, bool) {
		changed := false
		for _, n := range names {
			if _, ok := ids[n]; ok {
				continue
			}
			if ids == nil {
				ids = map[string]string{}
			}
			t, err := s.teamWithID(ctx, n)
			switch {
			case err == nil:
				ids[n] = t.ID
			case errors.Is(err, state.ErrNotFound):
				ids[n] = tombstone
			default:
				continue
			}
			changed = true
		}
		return ids, changed
	}
	svcs, err := state.List[state.Service](ctx, s.store, state.ServicesPrefix)
	if err == nil {
		for _, svc := range svcs {
			if _, changed := pinTeams(cloneMap(svc.TeamIDs), append(append([]string{}, svc.OwnerTeams...), svc.Teams...)); !changed {
				continue
			}
			_, _, err := state.Update(ctx, s.store, state.ServiceKey(svc.Name), func(x *state.Service) error {
				x.TeamIDs, _ = pinTeams(x.TeamIDs, append(append([]string{}, x.OwnerTeams...), x.Teams...))
				return nil
			})
			if err != nil && !errors.Is(err, state.ErrNotFound) {
				s.log.Warn("identity pin: could not update service", "service", svc.Name, "error", err)
			}
		}
	}
	s.pinAppTeams(ctx)
	insts, err := state.List[state.ServiceInstance](ctx, s.store, state.InstancesPrefix)
	if err != nil {
		return
	}
	for _, inst := range insts {
		_, changed := pinTeams(cloneMap(inst.TeamIDs), inst.Teams)
		if !changed && (inst.Owner == "" || inst.OwnerID != "") {
			continue
		}
		_, _, err := state.Update(ctx, s.store, state.InstanceKey(inst.Name), func(i *state.ServiceInstance) error {
			i.TeamIDs, _ = pinTeams(i.TeamIDs, i.Teams)
			if i.Owner != "" && i.OwnerID == "" {
				u, err := s.userWithID(ctx, i.Owner)
				switch {
				case err == nil:
					i.OwnerID = u.ID
				case errors.Is(err, state.ErrNotFound):
					i.Owner = "" // the owner is gone: the instance is its teams'
				default:
					return err
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			s.log.Warn("identity pin: could not update service instance", "instance", inst.Name, "error", err)
		}
	}
}

// pinAppTeams records the IDs of the teams of apps that have none (older
// records): the current team's if it is the one the app was given
// (appTeamMatches), else a tombstone.
func (s *Engine) pinAppTeams(ctx context.Context) {
	apps, err := state.List[state.App](ctx, s.store, state.AppsPrefix)
	if err != nil {
		return
	}
	pin := func(a *state.App) error {
		for _, n := range appTeams(a) {
			if _, ok := a.TeamIDs[n]; ok {
				continue
			}
			t, err := s.teamWithID(ctx, n)
			switch {
			case err == nil && appTeamMatches(a, n, t):
			case err == nil || errors.Is(err, state.ErrNotFound):
				t = &state.Team{ID: tombstone}
			default:
				return err
			}
			if a.TeamIDs == nil {
				a.TeamIDs = map[string]string{}
			}
			a.TeamIDs[n] = t.ID
		}
		return nil
	}
	for _, a := range apps {
		missing := false
		for _, n := range appTeams(a) {
			if _, ok := a.TeamIDs[n]; !ok {
				missing = true
			}
		}
		if !missing {
			continue
		}
		_, _, err := state.Update(ctx, s.store, state.AppKey(a.Name), pin)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			s.log.Warn("identity pin: could not update app", "app", a.Name, "error", err)
		}
	}
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// quoteList quotes each of l and joins them with commas.
func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, x := range l {
		q[i] = "\"" + x + "\""
	}
	return strings.Join(q, ", ")
}
