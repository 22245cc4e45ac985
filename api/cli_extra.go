package api

import (
	"net/http"
	"sort"
)

// AppInfo is one view of an app, as `berth app info` shows it: its
// registration (GET /apps/:name), its deployment (GET /api/v1/apps/:app/;
// nil while it is not deployed), the service instances bound to it, and
// the URLs it is served at. There is no single endpoint for it yet:
// Apps().Info composes it from those reads.
type AppInfo struct {
	App *App `json:"app"`
	// Deployed is the app's deployment; nil while it is not deployed.
	Deployed *DeployedApp `json:"deployed"`
	// URLs are http://<route>/ for each of its routes.
	URLs []string `json:"urls"`
	// Bound are the service instances bound to it; never null.
	Bound []ServiceInstanceSummary `json:"bound"`
}

// Info composes an app's AppInfo (see there). A read of a service's
// instances that fails (e.g. 403 on a service the caller may not see) is
// skipped.
func (a *Apps) Info(name string, q *QueryOptions) (*AppInfo, error) {
	app, _, err := a.Get(name, q)
	if err != nil {
		return nil, err
	}
	info := &AppInfo{App: app, URLs: []string{}, Bound: []ServiceInstanceSummary{}}
	d, _, err := a.c.Deploys().Get(name, q)
	switch {
	case err == nil:
		info.Deployed = d
		for _, r := range d.Routes {
			info.URLs = append(info.URLs, "http://"+r+"/")
		}
	case IsNotFound(err):
	default:
		return nil, err
	}
	if len(info.URLs) == 0 && app.Ip != "" {
		info.URLs = append(info.URLs, "http://"+app.Ip+"/")
	}
	svcs, _, err := a.c.Services().List(q)
	if StatusOf(err) == http.StatusForbidden {
		// A token that may read the app but not the services (a team or
		// app token): the app's info without its bound instances.
		svcs, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, s := range svcs {
		if len(s.Instances) == 0 {
			continue
		}
		insts, _, err := a.c.Services().Instances(s.Service, q)
		if err != nil {
			continue
		}
		for _, i := range insts {
			for _, bound := range i.Apps {
				if bound == name {
					info.Bound = append(info.Bound, i)
					break
				}
			}
		}
	}
	sort.Slice(info.Bound, func(i, j int) bool { return info.Bound[i].Name < info.Bound[j].Name })
	return info, nil
}
