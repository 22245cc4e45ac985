package engine

import (
	"context"
	"errors"
	"time"

	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// resourceInstanceName names the instance of resource serving client.
func resourceInstanceName(resource, client string) string { return resource + "-" + client }

// checkResourceUse: a release may only use resources its pusher (or
// deployer) may use: a developer or more on the resource (a maintainer, or
// a member of one of its teams), or a site admin. An app token acts for
// the user who created it. Otherwise 403, and nothing is recorded or run.
func (s *Engine) checkResourceUse(ctx context.Context, id *Identity, resources []string) error {
	if id != nil && id.AppToken {
		id = &Identity{Email: id.Email, Admin: s.cfg.IsAdmin(id.Email)}
	}
	for _, resName := range resources {
		res, err := state.GetApp(ctx, s.store, resName)
		if errors.Is(err, state.ErrNotFound) {
			continue // may be registered later: checked again at deploy time
		}
		if err != nil {
			return err
		}
		if err := s.Allowed(ctx, id, ActResourceUse, res); err != nil {
			return forbidden("use_resources: you (%s) may not use resource %q: only its maintainers and the members of its teams may", id.Email, resName)
		}
	}
	return nil
}

// ensureResourceInstances creates (or moves to the resource's latest
// release) one resource-instance app per resource the release uses. They
// are owned by the resource's owner and do not count against quotas.
func (s *Engine) ensureResourceInstances(ctx context.Context, id *Identity, client *state.App, rel *state.Release) ([]string, error) {
	// Checked again at deploy time: the release may have been pushed by
	// someone else, or before the deployer lost access to the resource.
	if err := s.checkResourceUse(ctx, id, rel.Spec.Resources); err != nil {
		return nil, err
	}
	var out []string
	for _, resName := range rel.Spec.Resources {
		res, err := state.GetApp(ctx, s.store, resName)
		if errors.Is(err, state.ErrNotFound) {
			return nil, badRequest("release %s uses resource %q, which is not registered", rel.MetaVersion, resName)
		}
		if err != nil {
			return nil, err
		}
		if res.AppType != state.AppTypeResource {
			return nil, badRequest("release %s uses %q as a resource, but it is an %s", rel.MetaVersion, resName, res.AppType)
		}
		resRel, err := s.latestRelease(ctx, resName)
		if err != nil {
			return nil, err
		}
		if resRel == nil {
			return nil, badRequest("resource %q has no pushed release", resName)
		}
		name := resourceInstanceName(resName, client.Name)
		if err := names.App(name); err != nil {
			return nil, badRequest("the resource instance name %q (resource-client) is not a valid app name: %v", name, err)
		}
		instRel := *resRel
		instRel.App = name
		if _, err := state.Create(ctx, s.store, state.ReleaseKey(name, resRel.MetaVersion), &instRel); err != nil && !errors.Is(err, state.ErrExists) {
			return nil, err
		}
		maint := map[string]string{}
		for u, r := range res.Maintainers {
			maint[u] = r
		}
		inst := &state.App{
			Name: name, Owner: res.Owner, AppType: state.AppTypeResourceInstance, Resource: resName, Client: client.Name,
			ResourceCreated: res.Created, ClientCreated: client.Created,
			Maintainers: maint, GitURL: res.GitURL, Created: time.Now().UTC(), Teams: res.Teams, TeamOwner: res.TeamOwner, TeamIDs: cloneMap(res.TeamIDs),
			Deployed: true, MetaVersion: resRel.MetaVersion, Generation: 1,
			Routes: []string{name + "." + s.cfg.Apps.Domain},
		}
		if _, err := state.Create(ctx, s.store, state.AppKey(name), inst); errors.Is(err, state.ErrExists) {
			cur, err := state.GetApp(ctx, s.store, name)
			if err != nil {
				return nil, err
			}
			if cur.AppType != state.AppTypeResourceInstance || cur.Resource != resName || cur.Client != client.Name {
				return nil, conflict("app %q exists and is not the instance of resource %q for %q", name, resName, client.Name)
			}
			if !sameIncarnationOf(cur.ResourceCreated, res) || !sameIncarnationOf(cur.ClientCreated, client) {
				return nil, conflict("app %q is the instance of an earlier app named %q or %q (removed since): remove it first", name, resName, client.Name)
			}
			if !cur.Deployed || cur.MetaVersion != resRel.MetaVersion {
				if _, _, err := state.Update(ctx, s.store, state.AppKey(name), func(a *state.App) error {
					a.Deployed, a.MetaVersion = true, resRel.MetaVersion
					a.Generation++
					return nil
				}); err != nil {
					return nil, err
				}
			}
		} else if err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, nil
}

// sameIncarnationOf reports whether an app recorded as created at t is a as it is now
// (a zero t is an older record: it matches by name).
func sameIncarnationOf(t time.Time, a *state.App) bool {
	return t.IsZero() || t.Equal(a.Created)
}

// ResourceInstances lists the instances of a resource (one per app that
// uses it) that are of its current incarnation.
func (s *Engine) ResourceInstances(ctx context.Context, id *Identity, resource string) ([]*DeployedApp, error) {
	out, _, err := s.ResourceInstancesPage(ctx, id, resource, Page{})
	return out, err
}
