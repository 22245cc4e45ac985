package ui

import (
	"net/http"
	"sort"

	"github.com/berthpaas/berth/api"
)

// serviceRoutes: the services and their instances the user may use;
// creating an instance, binding it to an app and unbinding it (both with
// a confirmation step).
var serviceRoutes = []uiRoute{
	{http.MethodGet, "services", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, _ map[string]string) {
		c.servicesPage(w, r, s)
	}},
	{http.MethodPost, "services/instances", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, _ map[string]string) {
		c.createInstance(w, r, s)
	}},
	{http.MethodPost, "services/instances/:instance/bind", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, p map[string]string) {
		c.bindInstance(w, r, s, p["instance"], true)
	}},
	{http.MethodPost, "services/instances/:instance/unbind", func(c *Console, w http.ResponseWriter, r *http.Request, s *session, p map[string]string) {
		c.bindInstance(w, r, s, p["instance"], false)
	}},
}

// instanceRow is one service instance on the Services page.
type instanceRow struct {
	Name, State, Message string
	Plan                 string // the plan's name ("": the service's)
	Teams, Apps          []string
	// Bindable are the user's apps it is not bound to.
	Bindable []string
}

// serviceRow is one service and the instances of it the user may see.
type serviceRow struct {
	Name      string
	Plans     []api.ServicePlan
	Instances []instanceRow
}

// GET /ui/services
func (c *Console) servicesPage(w http.ResponseWriter, r *http.Request, s *session) {
	var list []api.ServiceListItem
	if !c.fetch(w, r, s, "/services", &list, "service", false) {
		return
	}
	var apps []api.App
	if !c.fetch(w, r, s, "/apps", &apps, "app", false) {
		return
	}
	mine := make([]string, 0, len(apps))
	for _, a := range apps {
		mine = append(mine, a.Name)
	}
	sort.Strings(mine)
	var teams []api.Team
	if !c.fetch(w, r, s, "/teams", &teams, "team", false) {
		return
	}
	teamNames := make([]string, 0, len(teams))
	for _, t := range teams {
		teamNames = append(teamNames, t.Name)
	}
	sort.Strings(teamNames)
	var rows []serviceRow
	for _, sv := range list {
		row := serviceRow{Name: sv.Service}
		// Its plans, if its broker answers (the form then offers the
		// service's default only).
		_, _ = c.call(r, s, http.MethodGet, "/services/"+esc(sv.Service)+"/plans", nil, &row.Plans)
		planName := map[string]string{}
		for _, p := range row.Plans {
			planName[p.ID] = p.Name
		}
		for _, name := range sv.Instances {
			// Each instance as the API shows it to this user: one it
			// refuses is left out.
			var in api.ServiceInstance
			if status, err := c.call(r, s, http.MethodGet, "/services/instances/"+esc(name), nil, &in); err != nil || status != http.StatusOK {
				continue
			}
			ir := instanceRow{Name: in.Name, State: in.State, Message: in.Message, Teams: in.Teams, Apps: in.Apps, Plan: in.Plan}
			if n := planName[in.Plan]; n != "" {
				ir.Plan = n
			}
			for _, a := range mine {
				if !contains(in.Apps, a) {
					ir.Bindable = append(ir.Bindable, a)
				}
			}
			row.Instances = append(row.Instances, ir)
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	c.render(w, http.StatusOK, "services", c.withSession(s, page{Title: "Services", Data: map[string]any{
		"Services": rows, "Teams": teamNames, "Done": done(r.URL.Query()),
	}}))
}

// POST /ui/services/instances (service, name, plan, team): POST
// /services/instances.
func (c *Console) createInstance(w http.ResponseWriter, r *http.Request, s *session) {
	req := api.InstanceCreateRequest{Name: formValue(r, "name"), ServiceName: formValue(r, "service"), Plan: formValue(r, "plan"), Team: formValue(r, "team")}
	c.act(w, r, s, http.MethodPost, "/services/instances", req, doneURL("/ui/services", "created", req.Name))
}

// POST /ui/services/instances/:instance/bind and /unbind (app, confirm):
// without confirm=yes a confirmation page; then PUT or DELETE
// /services/instances/:instance/:app.
func (c *Console) bindInstance(w http.ResponseWriter, r *http.Request, s *session, instance string, bind bool) {
	app := formValue(r, "app")
	if app == "" {
		c.render(w, http.StatusBadRequest, "error", c.withSession(s, page{Title: "Not done", Error: "Choose an app."}))
		return
	}
	verb, method, kind := "unbind", http.MethodDelete, "unbound"
	q := "Unbind service instance " + instance + " from app " + app + "? The app is redeployed without its credentials."
	if bind {
		verb, method, kind = "bind", http.MethodPut, "bound"
		q = "Bind service instance " + instance + " to app " + app + "? The app is redeployed with the instance's credentials in its environment."
	}
	if !c.confirmed(w, r, s, "Confirm "+verb, confirmData{
		Question: q, Action: "/ui/services/instances/" + esc(instance) + "/" + verb, Button: "Yes, " + verb, Back: "/ui/services",
		Fields: []field{{"app", app}},
	}) {
		return
	}
	// The bind's answer (the credentials the app gets) is not shown.
	c.act(w, r, s, method, "/services/instances/"+esc(instance)+"/"+esc(app), nil, doneURL("/ui/services", kind, instance, app))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
