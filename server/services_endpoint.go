package server

import (
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
	"github.com/berthpaas/berth/plugins"
	"github.com/berthpaas/berth/plugins/broker"
)

// serviceYAML is a service definition as POST/PUT /services take it:
//
//	id: mysql
//	broker: mysql            # plugin: mysql, redis, mongodb, or berth-broker-<name> in plugin_dir
//	endpoint:
//	  production: 127.0.0.1:3306
//	target: shared-mysql     # an operator's broker_target (config.hcl): its settings go to the broker
//	settings:                # site admins only, instead of target: handed to the broker; kept in Secrets only
//	  host: 127.0.0.1
//	  port: "3306"
//	  user: root
//	team: myteam             # owner team (default: all of the creator's teams)
//	plan: ""                 # broker plan id (default: the broker's first)
//	doc: "..."
type serviceYAML struct {
	ID       string            `yaml:"id"`
	Broker   string            `yaml:"broker"`
	Endpoint map[string]string `yaml:"endpoint"`
	Settings map[string]string `yaml:"settings"`
	Target   string            `yaml:"target"`
	Team     string            `yaml:"team"`
	Plan     string            `yaml:"plan"`
	Doc      string            `yaml:"doc"`
}

// parseServiceYAML reads a service definition. The seed answers 500 for
// invalid YAML; Berth answers 400, because the fault is in the request and
// a 500 would tell the client to retry the same body.
func parseServiceYAML(c *call) (*serviceYAML, error) {
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, badRequest("could not read the request body")
	}
	var in serviceYAML
	if err := decodeServiceYAML(body, &in); err != nil {
		return nil, err
	}
	if err := names.Service(in.ID); err != nil {
		return nil, err
	}
	if in.Broker == "" {
		return nil, badRequest("broker is required: mysql, redis, mongodb, or an external broker's name")
	}
	for k := range in.Settings {
		if k == "" || len(k) > 64 || strings.ContainsAny(k, " /\n") {
			return nil, badRequest("invalid settings key %q", k)
		}
	}
	return &in, nil
}

// checkBrokerConnection says whether the caller may point the service's
// broker where the definition does. Broker connection settings (host, port,
// admin credentials) are operator configuration: a broker_target in
// config.hcl, or settings given by a site admin. Anyone else may only name
// a target; a built-in broker with neither has no server to provision on.
// It runs before anything else is looked at.
func (s *Server) checkBrokerConnection(c *call, in *serviceYAML) error {
	if len(in.Settings) > 0 && !c.id.Admin {
		return forbidden("only site admins may give broker settings: name one of the operator's broker targets instead (target: <name>; configured for %s: %s)", in.Broker, s.targetNames(in.Broker))
	}
	if len(in.Settings) > 0 && in.Target != "" {
		return badRequest("give either target or settings, not both")
	}
	if in.Target != "" {
		t := s.cfg.Target(in.Target)
		if t == nil {
			return badRequest("no broker target %q is configured (configured for %s: %s)", in.Target, in.Broker, s.targetNames(in.Broker))
		}
		if t.Broker != in.Broker {
			return badRequest("broker target %q is for broker %q, not %q", in.Target, t.Broker, in.Broker)
		}
		return nil
	}
	if len(in.Settings) == 0 && engine.Contains(plugins.Builtins, in.Broker) {
		return badRequest("no target configured: the %s broker needs a server; name one of the operator's broker targets (target: <name>; configured for %s: %s)", in.Broker, in.Broker, s.targetNames(in.Broker))
	}
	return nil
}

// targetNames lists the configured broker targets of broker.
func (s *Server) targetNames(brokerName string) string {
	var out []string
	for _, t := range s.cfg.BrokerTargets {
		if t.Broker == brokerName {
			out = append(out, t.Name)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

type serviceListItem struct {
	Service   string   `json:"service"`
	Instances []string `json:"instances"`
}

// visibleServices: services granted to the caller's teams (all, for admins).
func (s *Server) visibleServices(c *call) ([]*state.Service, error) {
	svcs, err := state.List[state.Service](c.ctx(), s.store, state.ServicesPrefix)
	if err != nil {
		return nil, err
	}
	out := svcs[:0]
	for _, svc := range svcs {
		if s.eng.ServiceAccess(c.ctx(), c.id, svc, false) == nil {
			out = append(out, svc)
		}
	}
	return out, nil
}

func (s *Server) instancesByService(c *call) (map[string][]*state.ServiceInstance, error) {
	insts, err := state.List[state.ServiceInstance](c.ctx(), s.store, state.InstancesPrefix)
	if err != nil {
		return nil, err
	}
	m := map[string][]*state.ServiceInstance{}
	for _, i := range insts {
		m[i.ServiceName] = append(m[i.ServiceName], i)
	}
	return m, nil
}

// GET /services and GET /services/instances
func (s *Server) listServices(c *call) (any, error) {
	svcs, err := s.visibleServices(c)
	if err != nil {
		return nil, err
	}
	by, err := s.instancesByService(c)
	if err != nil {
		return nil, err
	}
	out := []serviceListItem{}
	for _, svc := range svcs {
		item := serviceListItem{Service: svc.Name, Instances: []string{}}
		for _, i := range by[svc.Name] {
			item.Instances = append(item.Instances, i.Name)
		}
		out = append(out, item)
	}
	return out, nil
}

// POST /services (YAML)
func (s *Server) createService(c *call) (any, error) {
	if c.id.AppToken {
		return nil, forbidden("an app token cannot create services")
	}
	if err := s.mayManageServices(c); err != nil {
		return nil, err
	}
	in, err := parseServiceYAML(c)
	if err != nil {
		return nil, err
	}
	c.target = in.ID
	if err := s.checkBrokerConnection(c, in); err != nil {
		return nil, err
	}
	owners, err := s.ownerTeams(c, in.Team)
	if err != nil {
		return nil, err
	}
	ids, err := s.eng.TeamIDs(c.ctx(), owners)
	if err != nil {
		return nil, err
	}
	if s.brokers == nil {
		return nil, errStatus(503, "no broker manager is configured")
	}
	if err := s.brokers.Check(in.Broker); err != nil {
		return nil, badRequest("unknown broker %q: %v", in.Broker, err)
	}
	svc := &state.Service{Name: in.ID, Broker: in.Broker, Endpoint: in.Endpoint, Plan: in.Plan, OwnerTeams: owners, Teams: append([]string{}, owners...), Doc: in.Doc, Created: time.Now().UTC(), Target: in.Target, TeamIDs: ids}
	for k := range in.Settings {
		svc.SettingKeys = append(svc.SettingKeys, k)
	}
	sort.Strings(svc.SettingKeys)
	if _, err := state.Create(c.ctx(), s.store, state.ServiceKey(in.ID), svc); errors.Is(err, state.ErrExists) {
		return nil, conflict("service %q already exists", in.ID)
	} else if err != nil {
		return nil, err
	}
	if len(in.Settings) > 0 {
		if _, err := s.secrets.Put(c.ctx(), engine.ServiceSettingsPath(in.ID), in.Settings); err != nil {
			_, _ = s.store.Delete(c.ctx(), state.ServiceKey(in.ID))
			return nil, err
		}
	}
	return serviceOut(svc), nil
}

// ownerTeams picks the owner teams of a new service.
func (s *Server) ownerTeams(c *call, team string) ([]string, error) {
	mine, err := s.eng.UserTeams(c.ctx(), c.id)
	if err != nil {
		return nil, err
	}
	if team != "" {
		if err := names.Team(team); err != nil {
			return nil, err
		}
		if !c.id.Admin && !engine.Contains(mine, team) {
			return nil, forbidden("you are not a member of team %q", team)
		}
		if _, _, err := state.Get[state.Team](c.ctx(), s.store, state.TeamKey(team)); errors.Is(err, state.ErrNotFound) {
			return nil, notFound("team %q not found", team)
		}
		return []string{team}, nil
	}
	if len(mine) == 0 && !c.id.Admin {
		return nil, forbidden("you must be a member of a team to create a service")
	}
	if mine == nil {
		mine = []string{}
	}
	return mine, nil
}

func serviceOut(svc *state.Service) map[string]any {
	out := map[string]any{"id": svc.Name, "broker": svc.Broker, "endpoint": svc.Endpoint, "owner_teams": svc.OwnerTeams, "teams": svc.Teams, "plan": svc.Plan, "setting_keys": svc.SettingKeys}
	if svc.Target != "" {
		out["target"] = svc.Target
	}
	return out
}

// PUT /services (YAML) — update an existing service.
func (s *Server) updateService(c *call) (any, error) {
	if err := s.mayManageServices(c); err != nil {
		return nil, err
	}
	in, err := parseServiceYAML(c)
	if err != nil {
		return nil, err
	}
	c.target = in.ID
	if err := s.checkBrokerConnection(c, in); err != nil {
		return nil, err
	}
	svc, err := s.serviceByName(c, in.ID, true)
	if err != nil {
		return nil, err
	}
	if in.Target != svc.Target {
		by, err := s.instancesByService(c)
		if err != nil {
			return nil, err
		}
		if n := len(by[svc.Name]); n > 0 {
			return nil, conflict("service %q has %d instance(s) on broker target %q: its target cannot change until they are removed", svc.Name, n, svc.Target)
		}
	}
	if in.Broker != svc.Broker {
		by, err := s.instancesByService(c)
		if err != nil {
			return nil, err
		}
		if n := len(by[svc.Name]); n > 0 {
			return nil, conflict("service %q has %d instance(s) made by broker %q: its broker cannot change until they are removed", svc.Name, n, svc.Broker)
		}
		if err := s.brokers.Check(in.Broker); err != nil {
			return nil, badRequest("unknown broker %q: %v", in.Broker, err)
		}
	}
	_, _, err = state.Update(c.ctx(), s.store, state.ServiceKey(in.ID), func(x *state.Service) error {
		x.Broker, x.Endpoint, x.Plan, x.Target = in.Broker, in.Endpoint, in.Plan, in.Target
		if in.Doc != "" {
			x.Doc = in.Doc
		}
		x.SettingKeys = nil
		for k := range in.Settings {
			x.SettingKeys = append(x.SettingKeys, k)
		}
		sort.Strings(x.SettingKeys)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(in.Settings) > 0 {
		if _, err := s.secrets.Put(c.ctx(), engine.ServiceSettingsPath(in.ID), in.Settings); err != nil {
			return nil, err
		}
	} else if err := s.secrets.Delete(c.ctx(), engine.ServiceSettingsPath(in.ID)); err != nil {
		return nil, err
	}
	s.brokers.Stop(in.ID) // restarted with the new settings on next use
	return nil, nil
}

// serviceByName loads a service and checks access (manage: owner teams).
func (s *Server) serviceByName(c *call, name string, manage bool) (*state.Service, error) {
	if err := names.Service(name); err != nil {
		return nil, err
	}
	svc, _, err := state.Get[state.Service](c.ctx(), s.store, state.ServiceKey(name))
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("service %q not found", name)
	}
	if err != nil {
		return nil, err
	}
	if err := s.eng.ServiceAccess(c.ctx(), c.id, svc, manage); err != nil {
		return nil, err
	}
	return svc, nil
}

// DELETE /services/:name — 204; 403 while it has instances.
func (s *Server) removeService(c *call) (any, error) {
	svc, err := s.serviceByName(c, c.param("name"), true)
	if err != nil {
		return nil, err
	}
	by, err := s.instancesByService(c)
	if err != nil {
		return nil, err
	}
	if n := len(by[svc.Name]); n > 0 {
		return nil, forbidden("service %q has %d instance(s): remove them first", svc.Name, n)
	}
	if err := state.Delete(c.ctx(), s.store, state.ServiceKey(svc.Name)); err != nil {
		return nil, err
	}
	_ = s.secrets.Delete(c.ctx(), engine.ServiceSettingsPath(svc.Name))
	s.brokers.Stop(svc.Name)
	return &reply{Status: http.StatusNoContent}, nil
}

type instanceOutView struct {
	Name        string   `json:"name"`
	ServiceName string   `json:"servicename"`
	Teams       []string `json:"teams"`
	Apps        []string `json:"apps"`
	State       string   `json:"state"`
	Message     string   `json:"message,omitempty"`
}

func instanceOut(i *state.ServiceInstance) instanceOutView {
	v := instanceOutView{Name: i.Name, ServiceName: i.ServiceName, Teams: i.Teams, Apps: i.Apps, State: i.State, Message: i.Message}
	if v.Teams == nil {
		v.Teams = []string{}
	}
	if v.Apps == nil {
		v.Apps = []string{}
	}
	return v
}

// GET /services/:name — the service's instances.
func (s *Server) getService(c *call) (any, error) {
	svc, err := s.serviceByName(c, c.param("name"), false)
	if err != nil {
		return nil, err
	}
	by, err := s.instancesByService(c)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, i := range by[svc.Name] {
		out = append(out, map[string]any{"Name": i.Name, "Teams": nonNil(i.Teams), "Apps": nonNil(i.Apps), "ServiceName": i.ServiceName})
	}
	return out, nil
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// GET /services/:name/doc
func (s *Server) getServiceDoc(c *call) (any, error) {
	svc, err := s.serviceByName(c, c.param("name"), false)
	if err != nil {
		return nil, err
	}
	return textReply(svc.Doc), nil
}

// PUT /services/:name/doc (text)
func (s *Server) putServiceDoc(c *call) (any, error) {
	svc, err := s.serviceByName(c, c.param("name"), true)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(c.r.Body)
	if err != nil {
		return nil, err
	}
	_, _, err = state.Update(c.ctx(), s.store, state.ServiceKey(svc.Name), func(x *state.Service) error {
		x.Doc = string(b)
		return nil
	})
	return nil, err
}

// PUT /services/:name/:team — grant.
func (s *Server) grantService(c *call) (any, error) {
	return s.grant(c, true)
}

// DELETE /services/:name/:team — revoke.
func (s *Server) revokeService(c *call) (any, error) {
	return s.grant(c, false)
}

func (s *Server) grant(c *call, add bool) (any, error) {
	svc, err := s.serviceByName(c, c.param("name"), true)
	if err != nil {
		return nil, err
	}
	team := c.param("team")
	if err := names.Team(team); err != nil {
		return nil, err
	}
	tm, err := s.eng.TeamWithID(c.ctx(), team)
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("team %q not found", team)
	}
	if err != nil {
		return nil, err
	}
	_, _, err = state.Update(c.ctx(), s.store, state.ServiceKey(svc.Name), func(x *state.Service) error {
		// A name granted to a team since deleted and re-created is not
		// this team: granting it again records this team's ID.
		has := engine.Contains(x.Teams, team) && engine.TeamMatches(x.TeamIDs, team, tm)
		switch {
		case add && has:
			return conflict("team %q already has access to service %q", team, x.Name)
		case add:
			if !engine.Contains(x.Teams, team) {
				x.Teams = append(x.Teams, team)
			}
			x.OwnerTeams = engine.Remove(x.OwnerTeams, team)
			if x.TeamIDs == nil {
				x.TeamIDs = map[string]string{}
			}
			x.TeamIDs[team] = tm.ID
		case !engine.Contains(x.Teams, team) && !engine.Contains(x.OwnerTeams, team):
			return notFound("team %q has no access to service %q", team, x.Name)
		case len(engine.Remove(x.Teams, team)) == 0:
			return forbidden("team %q is the last with access to service %q", team, x.Name)
		default:
			// Revoking an owner team hands the service over: when no
			// owner team is left, the teams still granted become owners.
			x.Teams = engine.Remove(x.Teams, team)
			x.OwnerTeams = engine.Remove(x.OwnerTeams, team)
			delete(x.TeamIDs, team)
			if len(x.OwnerTeams) == 0 {
				x.OwnerTeams = append([]string{}, x.Teams...)
			}
		}
		return nil
	})
	return nil, err
}

// instanceByName loads an instance; the caller must be able to use its service.
func (s *Server) instanceByName(c *call, name string) (*state.ServiceInstance, *state.Service, error) {
	if err := names.Instance(name); err != nil {
		return nil, nil, err
	}
	inst, _, err := state.Get[state.ServiceInstance](c.ctx(), s.store, state.InstanceKey(name))
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil, notFound("service instance %q not found", name)
	}
	if err != nil {
		return nil, nil, err
	}
	svc, _, err := state.Get[state.Service](c.ctx(), s.store, state.ServiceKey(inst.ServiceName))
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil, notFound("service %q of instance %q not found", inst.ServiceName, name)
	}
	if err != nil {
		return nil, nil, err
	}
	if !c.id.Admin && !c.id.AppToken {
		mine, err := s.eng.MyTeams(c.ctx(), c.id)
		if err != nil {
			return nil, nil, err
		}
		ok := false
		if inst.Owner == c.id.Email {
			// The owner is the user who created it (same ID), not whoever
			// registered the email since.
			u, _, err := state.Get[state.User](c.ctx(), s.store, state.UserKey(c.id.Email))
			if err != nil && !errors.Is(err, state.ErrNotFound) {
				return nil, nil, err
			}
			ok = err == nil && engine.OwnsInstance(inst, u)
		}
		for _, t := range inst.Teams {
			ok = ok || engine.TeamMatches(inst.TeamIDs, t, mine[t])
		}
		if !ok {
			return nil, nil, forbidden("you have no access to service instance %q", name)
		}
	} else if c.id.AppToken {
		return nil, nil, forbidden("an app token cannot manage service instances")
	}
	return inst, svc, nil
}

// POST /services/instances {"name","service_name"}
func (s *Server) createInstance(c *call) (any, error) {
	var in struct {
		Name        string `json:"name"`
		ServiceName string `json:"service_name"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if err := names.Instance(in.Name); err != nil {
		return nil, err
	}
	c.target = in.Name
	svc, err := s.serviceByName(c, in.ServiceName, false)
	if err != nil {
		return nil, err
	}
	mine, err := s.eng.MyTeams(c.ctx(), c.id)
	if err != nil {
		return nil, err
	}
	teams, ids := []string{}, map[string]string{}
	for name, t := range mine {
		teams = append(teams, name)
		ids[name] = t.ID
	}
	sort.Strings(teams)
	owner, err := s.eng.UserWithID(c.ctx(), c.id.Email)
	if err != nil {
		return nil, err
	}
	inst := &state.ServiceInstance{Name: in.Name, ServiceName: svc.Name, Teams: teams, TeamIDs: ids, Owner: c.id.Email, OwnerID: owner.ID, Apps: []string{}, State: state.InstanceProvisioning, Created: time.Now().UTC()}
	if err := s.eng.Provision(c.ctx(), svc, inst); err != nil {
		return nil, err
	}
	return instanceOut(inst), nil
}

// DELETE /services/instances/:name — refused while bound.
func (s *Server) removeInstance(c *call, name string) (any, error) {
	inst, svc, err := s.instanceByName(c, name)
	if err != nil {
		return nil, err
	}
	c.target = name
	if len(inst.Apps) > 0 {
		return nil, forbidden("service instance %q is bound to %s: unbind first", name, engine.JoinOr(inst.Apps))
	}
	bctx, cancel := s.eng.BrokerCtx(c.ctx())
	defer cancel()
	b, err := s.eng.BrokerFor(bctx, svc)
	if err != nil {
		return nil, err
	}
	resp, err := b.Deprovision(bctx, broker.DeprovisionRequest{InstanceID: name})
	if err == nil && resp.Async {
		err = engine.WaitOperation(bctx, b, name, resp.Operation)
		if errors.Is(err, broker.ErrGone) {
			err = nil
		}
	}
	if err != nil && !errors.Is(err, broker.ErrGone) {
		return nil, engine.BrokerErr("deprovisioning "+name, err)
	}
	if err := state.Delete(c.ctx(), s.store, state.InstanceKey(name)); err != nil && !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	return nil, nil
}

// GET /services/instances/:name
func (s *Server) getInstance(c *call, name string) (any, error) {
	inst, _, err := s.instanceByName(c, name)
	if err != nil {
		return nil, err
	}
	return instanceOut(inst), nil
}

// GET /services/instances/:name/status
func (s *Server) instanceStatus(c *call, name string) (any, error) {
	inst, svc, err := s.instanceByName(c, name)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"name": inst.Name, "state": inst.State}
	bctx, cancel := s.eng.BrokerCtx(c.ctx())
	defer cancel()
	b, err := s.eng.BrokerFor(bctx, svc)
	if err != nil {
		out["broker"] = "unreachable: " + err.Error()
		return out, nil
	}
	lo, err := b.LastOperation(bctx, broker.LastOperationRequest{InstanceID: name})
	switch {
	case errors.Is(err, broker.ErrGone):
		out["broker"] = "gone: the broker no longer has this instance"
	case err != nil:
		out["broker"] = "error: " + err.Error()
	default:
		out["broker"] = lo.State
		if lo.Description != "" {
			out["description"] = lo.Description
		}
	}
	return out, nil
}

// PUT /services/instances/:name/:app — bind; answers the env the app gets.
func (s *Server) bindInstance(c *call, name, appName string) (any, error) {
	if err := names.App(appName); err != nil {
		return nil, err
	}
	a, err := s.eng.LoadApp(c.ctx(), c.id, appName, engine.ActAppBind)
	if err != nil {
		return nil, err
	}
	inst, svc, err := s.instanceByName(c, name)
	if err != nil {
		return nil, err
	}
	c.target = name + "->" + appName
	if inst.State != state.InstanceReady {
		return nil, conflict("service instance %q is %s, not ready", name, inst.State)
	}
	if engine.Contains(a.Bindings, name) {
		return nil, conflict("service instance %q is already bound to app %q", name, appName)
	}
	gen := a.Generation + 1
	if err := s.eng.LockApp(c.ctx(), appName, c.id.Name(), "bind "+name, gen); err != nil {
		return nil, err
	}
	creds, err := s.eng.Bind(c.ctx(), svc, inst, a)
	if err != nil {
		s.eng.UnlockApp(c.ctx(), appName, -1)
		return nil, err
	}
	s.redeployAfter(c, appName, "bind "+name)
	return creds, nil
}

// DELETE /services/instances/:name/:app — unbind.
func (s *Server) unbindInstance(c *call, name, appName string) (any, error) {
	if err := names.App(appName); err != nil {
		return nil, err
	}
	a, err := s.eng.LoadApp(c.ctx(), c.id, appName, engine.ActAppBind)
	if err != nil {
		return nil, err
	}
	inst, svc, err := s.instanceByName(c, name)
	if err != nil {
		return nil, err
	}
	c.target = name + "->" + appName
	if !engine.Contains(a.Bindings, name) {
		return nil, notFound("service instance %q is not bound to app %q", name, appName)
	}
	if err := s.eng.LockApp(c.ctx(), appName, c.id.Name(), "unbind "+name, a.Generation+1); err != nil {
		return nil, err
	}
	if err := s.eng.Unbind(c.ctx(), svc, inst, appName); err != nil {
		s.eng.UnlockApp(c.ctx(), appName, -1)
		return nil, err
	}
	s.redeployAfter(c, appName, "unbind "+name)
	return nil, nil
}

// redeployAfter bumps a deployed app's generation after a binding change
// (the caller holds the lease; the reconciler releases it), or releases
// the lease of an app that is not deployed.
func (s *Server) redeployAfter(c *call, app, op string) {
	a, err := state.GetApp(c.ctx(), s.store, app)
	if err != nil || !a.Deployed {
		s.eng.UnlockApp(c.ctx(), app, -1)
		return
	}
	if _, _, err := s.eng.CommitChange(c.ctx(), app, c.id.Name(), op, func(*state.App) error { return nil }); err != nil {
		s.log.Warn("could not redeploy app after a binding change", "app", app, "error", err)
		s.eng.UnlockApp(c.ctx(), app, -1)
		return
	}
	s.eng.Kick(app)
}
