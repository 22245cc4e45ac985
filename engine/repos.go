package engine

import (
	"context"

	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// RegisteredApp is an app's registration: its record and the teams with
// access to it.
type RegisteredApp struct {
	App *state.App
	// Teams are the teams with access, sorted; never nil.
	Teams []string
}

func registered(a *state.App) *RegisteredApp {
	return &RegisteredApp{App: a, Teams: sortedTeams(a)}
}

// RegisterRepo registers an app (LAIN's repos): RegisterApp for the types
// a caller may register. Resource instances are not registered: they are
// made by deploying an app that uses the resource.
func (s *Engine) RegisterRepo(ctx context.Context, id *Identity, in NewApp) (*RegisteredApp, error) {
	if in.AppType == state.AppTypeResourceInstance {
		return nil, badRequest("resource instances are created by deploying an app that uses the resource")
	}
	in.Resource, in.Client = "", ""
	a, err := s.RegisterApp(ctx, id, in)
	if err != nil {
		return nil, err
	}
	return registered(a), nil
}

// ListRepos lists the registrations of the apps the caller may read.
func (s *Engine) ListRepos(ctx context.Context, id *Identity) ([]*RegisteredApp, error) {
	out, _, err := s.ListReposPage(ctx, id, Page{})
	return out, err
}

// GetRepo is the registration of an app the caller may read.
func (s *Engine) GetRepo(ctx context.Context, id *Identity, name string) (*RegisteredApp, error) {
	a, err := s.loadApp(ctx, id, name, ActAppRead)
	if err != nil {
		return nil, err
	}
	return registered(a), nil
}

// RepoDetails is an app with its newest pushed release.
type RepoDetails struct {
	App *state.App
	// Latest is the newest pushed release, nil if none.
	Latest *state.Release
}

// GetRepoDetails is an app the caller may read with its newest release.
func (s *Engine) GetRepoDetails(ctx context.Context, id *Identity, name string) (*RepoDetails, error) {
	a, err := s.loadApp(ctx, id, name, ActAppRead)
	if err != nil {
		return nil, err
	}
	latest, err := s.latestRelease(ctx, a.Name)
	if err != nil {
		return nil, err
	}
	return &RepoDetails{App: a, Latest: latest}, nil
}

// AppRole is a user's role on an app.
type AppRole struct {
	App string
	// User is the user's email (an app token's name for an app token).
	User string
	// Role is owner, admin or developer; for the caller also "site-admin"
	// (a site admin without a role of their own) or "" (none).
	Role string
}

// RoleSiteAdmin is the role MyRole reports for a site admin who has no
// role of their own on the app.
const RoleSiteAdmin = "site-admin"

// MyRole is the caller's role on an app the caller may read. An app token
// acts as a developer of its app.
func (s *Engine) MyRole(ctx context.Context, id *Identity, name string) (*AppRole, error) {
	a, err := s.loadApp(ctx, id, name, ActAppRead)
	if err != nil {
		return nil, err
	}
	if id.AppToken {
		return &AppRole{App: a.Name, User: id.Name(), Role: state.RoleDeveloper}, nil
	}
	teams, err := s.teamsOf(ctx, a)
	if err != nil {
		return nil, err
	}
	role := s.roleOn(id, a, teams)
	if role == "" && id.Admin {
		role = RoleSiteAdmin
	}
	return &AppRole{App: a.Name, User: id.Email, Role: role}, nil
}

// UserRole is the role of the user email on an app whose maintainers the
// caller may read; ErrNotFound if the user has none.
func (s *Engine) UserRole(ctx context.Context, id *Identity, name, email string) (*AppRole, error) {
	a, err := s.loadApp(ctx, id, name, ActAppMaintRead)
	if err != nil {
		return nil, err
	}
	email, err = names.Email(email)
	if err != nil {
		return nil, invalid(err)
	}
	teams, err := s.teamsOf(ctx, a)
	if err != nil {
		return nil, err
	}
	role := s.roleOn(&Identity{Email: email}, a, teams)
	if role == "" {
		return nil, notFound("%s has no role on app %q", email, a.Name)
	}
	return &AppRole{App: a.Name, User: email, Role: role}, nil
}
