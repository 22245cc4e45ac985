package engine

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/berthpaas/berth/engine/state"
)

// MaxPageLimit is the largest page a list may be asked for.
const MaxPageLimit = 1000

// Page asks for one page of a list. The zero Page is the whole list.
type Page struct {
	// Limit is the most items the page holds; 0 = no limit.
	Limit int
	// After is where the page starts: the Next of the page before (the
	// key, within the list, of the last record that page scanned); "" =
	// the first page.
	After string
}

// check refuses a limit out of range.
func (p Page) check() error {
	if p.Limit < 0 || p.Limit > MaxPageLimit {
		return InvalidField("limit", "limit must be a number from 1 to %d", MaxPageLimit)
	}
	return nil
}

// scanPage reads the records under prefix in key order, starting after
// p.After, and keeps those keep accepts until p.Limit are kept. It reads
// the Store page by page (Store.ListPage), so a page costs what it scans,
// not the size of everything under prefix: when keep accepts everything,
// a page of n reads n+1 records. next is the key (less the prefix) of the
// page's last record when a record the filter keeps follows it, "" at the
// end of the list — a filter that keeps few records makes the scan read
// further (up to the next record it keeps), never a page that skips any.
func scanPage[T any](ctx context.Context, s *Engine, prefix string, p Page, keep func(*T) (bool, error)) (out []*T, next string, err error) {
	if err := p.check(); err != nil {
		return nil, "", err
	}
	decode := state.Decode[T]
	out = []*T{}
	if p.Limit == 0 {
		// The whole list (from After): one read.
		var vs []*T
		if p.After == "" {
			vs, err = state.List[T](ctx, s.store, prefix)
		} else {
			ps, _, lerr := s.store.ListPage(ctx, prefix, prefix+p.After, 0)
			err = lerr
			for _, kv := range ps {
				v, derr := decode(kv.Key, kv.Value)
				if derr != nil {
					return nil, "", derr
				}
				vs = append(vs, v)
			}
		}
		if err != nil {
			return nil, "", err
		}
		for _, v := range vs {
			ok, err := keep(v)
			if err != nil {
				return nil, "", err
			}
			if ok {
				out = append(out, v)
			}
		}
		return out, "", nil
	}
	after := ""
	if p.After != "" {
		after = prefix + p.After
	}
	lastKept := ""
	batch := 0
	for {
		// One more than the page still needs, to know whether more follow;
		// growing while a sparse filter keeps little.
		batch = min(max(p.Limit-len(out)+1, batch*2), MaxPageLimit+1)
		ps, _, err := s.store.ListPage(ctx, prefix, after, batch)
		if err != nil {
			return nil, "", err
		}
		for _, kv := range ps {
			after = kv.Key
			v, err := decode(kv.Key, kv.Value)
			if err != nil {
				return nil, "", err
			}
			ok, err := keep(v)
			if err != nil {
				return nil, "", err
			}
			if !ok {
				continue
			}
			if len(out) == p.Limit {
				// Full, and a record of the list follows.
				return out, strings.TrimPrefix(lastKept, prefix), nil
			}
			out = append(out, v)
			lastKept = kv.Key
		}
		if len(ps) < batch {
			return out, "", nil
		}
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
	}
}

// appFilter says whether the caller may read an app. It reads the teams
// the apps name, each once, as the apps come (not the list of every team).
func (s *Engine) appFilter(ctx context.Context, id *Identity) func(*state.App) (bool, error) {
	teams := map[string]*state.Team{}
	return func(a *state.App) (bool, error) {
		if id.Admin {
			return true, nil
		}
		if id.AppToken {
			return a.Name == id.App, nil
		}
		if id.Team != nil {
			return false, nil
		}
		if a.Maintainers[id.Email] != "" {
			return true, nil
		}
		for _, t := range appTeams(a) {
			if _, seen := teams[t]; seen {
				continue
			}
			tm, _, err := state.Get[state.Team](ctx, s.store, state.TeamKey(t))
			if err != nil && !errors.Is(err, state.ErrNotFound) {
				return false, err
			}
			teams[t] = tm // nil when absent
		}
		return s.roleOn(id, a, teams) != "", nil
	}
}

// visibleAppsPage is one page of the apps the caller may read (see
// scanPage), the cursor being the app's name.
func (s *Engine) visibleAppsPage(ctx context.Context, id *Identity, p Page, also func(*state.App) bool) ([]*state.App, string, error) {
	visible := s.appFilter(ctx, id)
	return scanPage(ctx, s, state.AppsPrefix, p, func(a *state.App) (bool, error) {
		if also != nil && !also(a) {
			return false, nil
		}
		return visible(a)
	})
}

// ListAppsPage is one page of ListApps; next is the cursor of the page
// after it, "" after the last page.
func (s *Engine) ListAppsPage(ctx context.Context, id *Identity, p Page) ([]*AppStatus, string, error) {
	apps, next, err := s.visibleAppsPage(ctx, id, p, nil)
	if err != nil {
		return nil, "", err
	}
	out, _ := eachOf(apps, func(a *state.App) (*AppStatus, error) { return s.appStatus(ctx, a), nil })
	return out, next, nil
}

// ListReposPage is one page of ListRepos.
func (s *Engine) ListReposPage(ctx context.Context, id *Identity, p Page) ([]*RegisteredApp, string, error) {
	apps, next, err := s.visibleAppsPage(ctx, id, p, nil)
	if err != nil {
		return nil, "", err
	}
	out := make([]*RegisteredApp, 0, len(apps))
	for _, a := range apps {
		out = append(out, registered(a))
	}
	return out, next, nil
}

// ListDeployedPage is one page of ListDeployed.
func (s *Engine) ListDeployedPage(ctx context.Context, id *Identity, appType string, p Page) ([]*DeployedApp, string, error) {
	switch appType {
	case "", state.AppTypeApp, state.AppTypeService, state.AppTypeResource, state.AppTypeResourceInstance:
	default:
		return nil, "", badRequest("apptype must be one of app, service, resource, resource-instance, not %q", appType)
	}
	apps, next, err := s.visibleAppsPage(ctx, id, p, func(a *state.App) bool {
		return a.Deployed && (appType == "" || a.AppType == appType)
	})
	if err != nil {
		return nil, "", err
	}
	out, err := eachOf(apps, func(a *state.App) (*DeployedApp, error) { return s.deployed(ctx, a) })
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// ResourceInstancesPage is one page of ResourceInstances.
func (s *Engine) ResourceInstancesPage(ctx context.Context, id *Identity, resource string, p Page) ([]*DeployedApp, string, error) {
	res, err := s.loadApp(ctx, id, resource, ActAppRead)
	if err != nil {
		return nil, "", err
	}
	if res.AppType != state.AppTypeResource {
		return nil, "", notFound("app %q is not a resource", res.Name)
	}
	apps, next, err := scanPage(ctx, s, state.AppsPrefix, p, func(a *state.App) (bool, error) {
		return a.AppType == state.AppTypeResourceInstance && a.Resource == res.Name && sameIncarnationOf(a.ResourceCreated, res), nil
	})
	if err != nil {
		return nil, "", err
	}
	out, err := eachOf(apps, func(a *state.App) (*DeployedApp, error) { return s.deployed(ctx, a) })
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// TeamsPage is one page of Teams.
func (s *Engine) TeamsPage(ctx context.Context, id *Identity, p Page) ([]*state.Team, string, error) {
	if id == nil {
		return nil, "", unauthorized("authentication required")
	}
	if id.AppToken {
		return nil, "", forbidden("an app token cannot list teams")
	}
	return scanPage(ctx, s, state.TeamsPrefix, p, func(t *state.Team) (bool, error) {
		return id.Admin || Contains(t.Users, id.Email), nil
	})
}

// ListServicesPage is one page of ListServices. (The instances of the
// page's services are found among all instances.)
func (s *Engine) ListServicesPage(ctx context.Context, id *Identity, p Page) ([]ServiceInstances, string, error) {
	svcs, next, err := scanPage(ctx, s, state.ServicesPrefix, p, func(svc *state.Service) (bool, error) {
		return s.serviceAccess(ctx, id, svc, false) == nil, nil
	})
	if err != nil {
		return nil, "", err
	}
	out := []ServiceInstances{}
	if len(svcs) == 0 {
		return out, next, nil
	}
	by, err := s.instancesByService(ctx)
	if err != nil {
		return nil, "", err
	}
	for _, svc := range svcs {
		out = append(out, ServiceInstances{Service: svc, Instances: by[svc.Name]})
	}
	return out, next, nil
}

// pageWorkers is how many of a page's items are filled in at once (their
// reads are round trips to the Store and the scheduler: a page of 100 on
// Consul waits for 8 at a time, not 100 in a row).
const pageWorkers = 8

// eachOf returns f of every item of in, in order, calling f for up to
// pageWorkers items at a time; the first error (in order) is returned.
func eachOf[T, U any](in []T, f func(T) (U, error)) ([]U, error) {
	out := make([]U, len(in))
	errs := make([]error, len(in))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(pageWorkers, len(in)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = f(in[i])
			}
		}()
	}
	for i := range in {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
