package engine

import (
	"context"
	"sort"

	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// Maintainer is a user with a role on an app.
type Maintainer struct {
	Email string
	// Role is owner, admin or developer.
	Role string
}

// Maintainers lists the maintainers of an app, sorted by email.
func (s *Engine) Maintainers(ctx context.Context, id *Identity, app string) ([]Maintainer, error) {
	a, err := s.loadApp(ctx, id, app, ActAppMaintRead)
	if err != nil {
		return nil, err
	}
	out := make([]Maintainer, 0, len(a.Maintainers))
	for u, r := range a.Maintainers {
		out = append(out, Maintainer{Email: u, Role: r})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Email < out[j].Email })
	return out, nil
}

// GetMaintainer is one maintainer of an app; ErrNotFound if email is not one.
func (s *Engine) GetMaintainer(ctx context.Context, id *Identity, app, email string) (*Maintainer, error) {
	a, err := s.loadApp(ctx, id, app, ActAppMaintRead)
	if err != nil {
		return nil, err
	}
	email, err = names.Email(email)
	if err != nil {
		return nil, invalid(err)
	}
	role, ok := a.Maintainers[email]
	if !ok {
		return nil, notFound("%s is not a maintainer of app %q", email, a.Name)
	}
	return &Maintainer{Email: email, Role: role}, nil
}

// callerRank is the caller's role rank on an app (site admins rank above
// owners).
func (s *Engine) callerRank(ctx context.Context, id *Identity, a *state.App) (int, error) {
	if id.Admin {
		return state.RoleRank(state.RoleOwner) + 1, nil
	}
	teams, err := s.teamsOf(ctx, a)
	if err != nil {
		return 0, err
	}
	return state.RoleRank(s.roleOn(id, a, teams)), nil
}

// AddMaintainer gives the user email a role on an app (developer when role
// is ""). The caller may grant at most their own role; the user must exist
// (and the role is written in one transaction with that check, see
// updateForUser); a user who is a maintainer already is ErrConflict.
func (s *Engine) AddMaintainer(ctx context.Context, id *Identity, app, email, role string) (*Maintainer, error) {
	a, err := s.loadApp(ctx, id, app, ActAppMaintWrite)
	if err != nil {
		return nil, err
	}
	email, err = names.Email(email)
	if err != nil {
		return nil, invalid(err)
	}
	if role == "" {
		role = state.RoleDeveloper
	}
	if state.RoleRank(role) == 0 {
		return nil, badRequest("role must be owner, admin or developer, not %q", role)
	}
	rank, err := s.callerRank(ctx, id, a)
	if err != nil {
		return nil, err
	}
	if state.RoleRank(role) > rank {
		return nil, forbidden("you may not grant %s: it is above your own role on app %q", role, a.Name)
	}
	err = updateForUser(ctx, s.store, state.AppKey(a.Name), email, func(a *state.App) error {
		if _, ok := a.Maintainers[email]; ok {
			return conflict("%s is already a maintainer of app %q", email, a.Name)
		}
		a.Maintainers[email] = role
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Maintainer{Email: email, Role: role}, nil
}

// RemoveMaintainer takes the user email's role on an app away. The caller
// may not remove a role above their own, nor the app's last owner.
func (s *Engine) RemoveMaintainer(ctx context.Context, id *Identity, app, email string) error {
	a, err := s.loadApp(ctx, id, app, ActAppMaintWrite)
	if err != nil {
		return err
	}
	email, err = names.Email(email)
	if err != nil {
		return invalid(err)
	}
	rank, err := s.callerRank(ctx, id, a)
	if err != nil {
		return err
	}
	_, _, err = state.Update(ctx, s.store, state.AppKey(a.Name), func(a *state.App) error {
		role, ok := a.Maintainers[email]
		if !ok {
			return notFound("%s is not a maintainer of app %q", email, a.Name)
		}
		if state.RoleRank(role) > rank {
			return forbidden("you may not remove a maintainer whose role (%s) is above yours", role)
		}
		if role == state.RoleOwner {
			owners := 0
			for _, r := range a.Maintainers {
				if r == state.RoleOwner {
					owners++
				}
			}
			if owners == 1 {
				return forbidden("%s is the last owner of app %q", email, a.Name)
			}
		}
		delete(a.Maintainers, email)
		return nil
	})
	return err
}
