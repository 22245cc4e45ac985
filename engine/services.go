package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
	"github.com/berthpaas/berth/plugins"
	"github.com/berthpaas/berth/plugins/broker"
)

// Brokers starts and reaches service-broker plugins (plugins.Manager).
type Brokers interface {
	// Check reports whether a plugin of that name can be started.
	Check(pluginName string) error
	// Broker returns a client of the plugin process for key (one per
	// service), configured with settings.
	Broker(ctx context.Context, key, pluginName string, settings map[string]string) (broker.Broker, error)
	// Stop ends the plugin process of key.
	Stop(key string)
}

// serviceSettingsPath is where a service's broker settings (given by a site
// admin) live in Secrets.
func serviceSettingsPath(service string) string { return "services/" + service + "/settings" }

// brokerErr maps a broker's answer to the API's.
func brokerErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, broker.ErrBadRequest):
		return badRequest("%s: the broker refused: %v", what, err)
	case errors.Is(err, broker.ErrConflict):
		return conflict("%s: the broker has it with different parameters: %v", what, err)
	case errors.Is(err, broker.ErrNotFound):
		return notFound("%s: the broker does not know it: %v", what, err)
	case errors.Is(err, context.DeadlineExceeded):
		return Errorf(KindTimeout, "%s: the broker did not answer in time: %v", what, err)
	case errors.Is(err, broker.ErrUnavailable):
		return Errorf(KindUpstream, "%s: the broker or its backing server is unavailable: %v", what, err)
	}
	return Errorf(KindUpstream, "%s: the broker failed: %v", what, err)
}

// brokerFor returns the broker of a service, started with its settings.
func (s *Engine) brokerFor(ctx context.Context, svc *state.Service) (broker.Broker, error) {
	if s.brokers == nil {
		return nil, Errorf(KindUnavailable, "no broker manager is configured")
	}
	settings := map[string]string{}
	if svc.Target != "" {
		// The operator's broker target: its settings are read from the
		// configuration each time (a restart picks up a changed target).
		t := s.cfg.Target(svc.Target)
		if t == nil {
			return nil, Errorf(KindUnavailable, "service %q names broker target %q, which is not configured any more", svc.Name, svc.Target)
		}
		if t.Broker != svc.Broker {
			return nil, Errorf(KindUnavailable, "broker target %q is for broker %q, not %q of service %q", t.Name, t.Broker, svc.Broker, svc.Name)
		}
		for k, v := range t.Resolved {
			settings[k] = v
		}
	} else {
		sec, err := s.secrets.Get(ctx, serviceSettingsPath(svc.Name), 0)
		if err == nil {
			settings = sec.Data
		} else if !errors.Is(err, backends.ErrNotFound) {
			return nil, err
		}
	}
	b, err := s.brokers.Broker(ctx, svc.Name, svc.Broker, settings)
	if err != nil {
		return nil, brokerErr("starting broker "+svc.Broker, err)
	}
	return b, nil
}

// brokerCtx bounds one saga's broker calls.
func (s *Engine) brokerCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Plugins.CallTimeoutDur+5*time.Second)
}

// waitOperation polls an asynchronous broker operation until it ends.
func waitOperation(ctx context.Context, b broker.Broker, instance, op string) error {
	for {
		lo, err := b.LastOperation(ctx, broker.LastOperationRequest{InstanceID: instance, Operation: op})
		if err != nil {
			return err
		}
		switch lo.State {
		case broker.StateSucceeded:
			return nil
		case broker.StateFailed:
			return fmt.Errorf("operation failed: %s", lo.Description)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// serviceAccess: admins, and members of a team the service is granted to.
func (s *Engine) serviceAccess(ctx context.Context, id *Identity, svc *state.Service, manage bool) error {
	if id.Admin {
		return nil
	}
	if id.AppToken {
		return forbidden("an app token cannot use services")
	}
	teams := svc.Teams
	if manage {
		teams = svc.OwnerTeams
	}
	for _, t := range teams {
		// The team must be the one granted (same ID), not a team
		// re-created later under the name.
		tm, _, err := state.Get[state.Team](ctx, s.store, state.TeamKey(t))
		if err == nil && Contains(tm.Users, id.Email) && teamMatches(svc.TeamIDs, t, tm) {
			return nil
		}
	}
	if manage {
		return forbidden("you are not in a team that owns service %q", svc.Name)
	}
	return forbidden("service %q is not granted to any of your teams", svc.Name)
}

// userTeams lists the teams the caller belongs to.
func (s *Engine) userTeams(ctx context.Context, id *Identity) ([]string, error) {
	ts, err := state.List[state.Team](ctx, s.store, state.TeamsPrefix)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		if Contains(t.Users, id.Email) {
			out = append(out, t.Name)
		}
	}
	return out, nil
}

// The service definitions: POST and PUT /services take one as YAML.
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
type serviceDef struct {
	ID       string            `yaml:"id"`
	Broker   string            `yaml:"broker"`
	Endpoint map[string]string `yaml:"endpoint"`
	Settings map[string]string `yaml:"settings"`
	Target   string            `yaml:"target"`
	Team     string            `yaml:"team"`
	Plan     string            `yaml:"plan"`
	Doc      string            `yaml:"doc"`
}

// Limits on a service definition. It is a handful of fields with small
// maps; these are far above any real one and keep decoding cheap (see
// release.YAMLLimits for why the limits are checked on parsed nodes before
// decoding).
const maxServiceYAMLBytes = 64 << 10

var serviceYAMLLimits = release.YAMLLimits{MaxNodes: 4096, MaxMappingKeys: 512, MaxDepth: 16, NoControl: true}

// readServiceDef reads and checks a service definition: its size
// (KindTooLarge), its shape (node count, keys per mapping, depth, no
// aliases, no control characters in any key or value), known fields only,
// and the values. Invalid YAML is KindInvalid (the seed answers 500; the
// fault is in the request, and a 500 would tell the client to retry the
// same body). Errors reading r are returned as they are.
func readServiceDef(r io.Reader) (*serviceDef, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if len(body) > maxServiceYAMLBytes {
		return nil, Errorf(KindTooLarge, "a service definition must be at most %d bytes (this one is %d)", maxServiceYAMLBytes, len(body))
	}
	if err := release.CheckYAML(body, serviceYAMLLimits); err != nil {
		return nil, badRequest("invalid service YAML: %v", err)
	}
	var in serviceDef
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(&in); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, badRequest("the body must be a YAML service definition (id, broker, endpoint, settings)")
		}
		return nil, badRequest("invalid service YAML: %v", err)
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

// mayManageServices is the check made before a service definition is read
// at all: only an admin, or a user in at least one team, can create or
// update a service (the full check, on the named team or the service's
// owner teams, follows the parse).
func (s *Engine) mayManageServices(ctx context.Context, id *Identity) error {
	if id.Admin {
		return nil
	}
	if id.AppToken {
		return forbidden("an app token cannot create or change services")
	}
	mine, err := s.userTeams(ctx, id)
	if err != nil {
		return err
	}
	if len(mine) == 0 {
		return forbidden("you must be a member of a team to create or change a service")
	}
	return nil
}

// checkBrokerConnection says whether the caller may point the service's
// broker where the definition does. Broker connection settings (host, port,
// admin credentials) are operator configuration: a broker_target in
// config.hcl, or settings given by a site admin. Anyone else may only name
// a target; a built-in broker with neither has no server to provision on.
// It runs before anything else is looked at.
func (s *Engine) checkBrokerConnection(id *Identity, in *serviceDef) error {
	if len(in.Settings) > 0 && !id.Admin {
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
	if len(in.Settings) == 0 && Contains(plugins.Builtins, in.Broker) {
		return badRequest("no target configured: the %s broker needs a server; name one of the operator's broker targets (target: <name>; configured for %s: %s)", in.Broker, in.Broker, s.targetNames(in.Broker))
	}
	return nil
}

// targetNames lists the configured broker targets of broker.
func (s *Engine) targetNames(brokerName string) string {
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

// ownerTeams picks the owner teams of a new service.
func (s *Engine) ownerTeams(ctx context.Context, id *Identity, team string) ([]string, error) {
	mine, err := s.userTeams(ctx, id)
	if err != nil {
		return nil, err
	}
	if team != "" {
		if err := names.Team(team); err != nil {
			return nil, err
		}
		if !id.Admin && !Contains(mine, team) {
			return nil, forbidden("you are not a member of team %q", team)
		}
		if _, _, err := state.Get[state.Team](ctx, s.store, state.TeamKey(team)); errors.Is(err, state.ErrNotFound) {
			return nil, notFound("team %q not found", team)
		}
		return []string{team}, nil
	}
	if len(mine) == 0 && !id.Admin {
		return nil, forbidden("you must be a member of a team to create a service")
	}
	if mine == nil {
		mine = []string{}
	}
	return mine, nil
}

// ServiceInstances is a service and its instances.
type ServiceInstances struct {
	Service   *state.Service
	Instances []*state.ServiceInstance
}

// ListServices lists the services granted to the caller's teams (all, for
// admins), each with its instances.
func (s *Engine) ListServices(ctx context.Context, id *Identity) ([]ServiceInstances, error) {
	out, _, err := s.ListServicesPage(ctx, id, Page{})
	return out, err
}

func (s *Engine) instancesByService(ctx context.Context) (map[string][]*state.ServiceInstance, error) {
	insts, err := state.List[state.ServiceInstance](ctx, s.store, state.InstancesPrefix)
	if err != nil {
		return nil, err
	}
	m := map[string][]*state.ServiceInstance{}
	for _, i := range insts {
		m[i.ServiceName] = append(m[i.ServiceName], i)
	}
	return m, nil
}

// CreateService creates a service from its YAML definition, read from def
// only once the caller is known to be allowed to manage services. name is
// the definition's id once it has been read ("" before), whether or not
// the create then succeeded.
func (s *Engine) CreateService(ctx context.Context, id *Identity, def io.Reader) (name string, svc *state.Service, err error) {
	if id.AppToken {
		return "", nil, forbidden("an app token cannot create services")
	}
	if err := s.mayManageServices(ctx, id); err != nil {
		return "", nil, err
	}
	in, err := readServiceDef(def)
	if err != nil {
		return "", nil, err
	}
	if err := s.checkBrokerConnection(id, in); err != nil {
		return in.ID, nil, err
	}
	owners, err := s.ownerTeams(ctx, id, in.Team)
	if err != nil {
		return in.ID, nil, err
	}
	ids, err := s.TeamIDs(ctx, owners)
	if err != nil {
		return in.ID, nil, err
	}
	if s.brokers == nil {
		return in.ID, nil, Unavailable("no broker manager is configured")
	}
	if err := s.brokers.Check(in.Broker); err != nil {
		return in.ID, nil, badRequest("unknown broker %q: %v", in.Broker, err)
	}
	svc = &state.Service{Name: in.ID, Broker: in.Broker, Endpoint: in.Endpoint, Plan: in.Plan, OwnerTeams: owners, Teams: append([]string{}, owners...), Doc: in.Doc, Created: time.Now().UTC(), Target: in.Target, TeamIDs: ids}
	for k := range in.Settings {
		svc.SettingKeys = append(svc.SettingKeys, k)
	}
	sort.Strings(svc.SettingKeys)
	if _, err := state.Create(ctx, s.store, state.ServiceKey(in.ID), svc); errors.Is(err, state.ErrExists) {
		return in.ID, nil, conflict("service %q already exists", in.ID)
	} else if err != nil {
		return in.ID, nil, err
	}
	if len(in.Settings) > 0 {
		if _, err := s.secrets.Put(ctx, serviceSettingsPath(in.ID), in.Settings); err != nil {
			_, _ = s.store.Delete(ctx, state.ServiceKey(in.ID))
			return in.ID, nil, err
		}
	}
	return in.ID, svc, nil
}

// UpdateService replaces a service's definition (the caller's teams must
// own it). Its broker and target cannot change while it has instances.
// name is as for CreateService.
func (s *Engine) UpdateService(ctx context.Context, id *Identity, def io.Reader) (name string, err error) {
	if err := s.mayManageServices(ctx, id); err != nil {
		return "", err
	}
	in, err := readServiceDef(def)
	if err != nil {
		return "", err
	}
	if err := s.checkBrokerConnection(id, in); err != nil {
		return in.ID, err
	}
	svc, err := s.serviceByName(ctx, id, in.ID, true)
	if err != nil {
		return in.ID, err
	}
	if in.Target != svc.Target || in.Broker != svc.Broker {
		by, err := s.instancesByService(ctx)
		if err != nil {
			return in.ID, err
		}
		n := len(by[svc.Name])
		if in.Target != svc.Target && n > 0 {
			return in.ID, conflict("service %q has %d instance(s) on broker target %q: its target cannot change until they are removed", svc.Name, n, svc.Target)
		}
		if in.Broker != svc.Broker {
			if n > 0 {
				return in.ID, conflict("service %q has %d instance(s) made by broker %q: its broker cannot change until they are removed", svc.Name, n, svc.Broker)
			}
			if s.brokers == nil {
				return in.ID, Unavailable("no broker manager is configured")
			}
			if err := s.brokers.Check(in.Broker); err != nil {
				return in.ID, badRequest("unknown broker %q: %v", in.Broker, err)
			}
		}
	}
	_, _, err = state.Update(ctx, s.store, state.ServiceKey(in.ID), func(x *state.Service) error {
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
		return in.ID, err
	}
	if len(in.Settings) > 0 {
		if _, err := s.secrets.Put(ctx, serviceSettingsPath(in.ID), in.Settings); err != nil {
			return in.ID, err
		}
	} else if err := s.secrets.Delete(ctx, serviceSettingsPath(in.ID)); err != nil {
		return in.ID, err
	}
	if s.brokers != nil {
		s.brokers.Stop(in.ID) // restarted with the new settings on next use
	}
	return in.ID, nil
}

// serviceByName loads a service and checks access (manage: owner teams).
func (s *Engine) serviceByName(ctx context.Context, id *Identity, name string, manage bool) (*state.Service, error) {
	if err := names.Service(name); err != nil {
		return nil, err
	}
	svc, _, err := state.Get[state.Service](ctx, s.store, state.ServiceKey(name))
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("service %q not found", name)
	}
	if err != nil {
		return nil, err
	}
	if err := s.serviceAccess(ctx, id, svc, manage); err != nil {
		return nil, err
	}
	return svc, nil
}

// RemoveService removes a service that has no instances (KindForbidden
// while it has some), its settings, and stops its broker.
func (s *Engine) RemoveService(ctx context.Context, id *Identity, name string) error {
	svc, err := s.serviceByName(ctx, id, name, true)
	if err != nil {
		return err
	}
	by, err := s.instancesByService(ctx)
	if err != nil {
		return err
	}
	if n := len(by[svc.Name]); n > 0 {
		return forbidden("service %q has %d instance(s): remove them first", svc.Name, n)
	}
	if err := state.Delete(ctx, s.store, state.ServiceKey(svc.Name)); err != nil {
		return err
	}
	_ = s.secrets.Delete(ctx, serviceSettingsPath(svc.Name))
	if s.brokers != nil {
		s.brokers.Stop(svc.Name)
	}
	return nil
}

// Service is a service the caller may use, with its instances.
func (s *Engine) Service(ctx context.Context, id *Identity, name string) (ServiceInstances, error) {
	svc, err := s.serviceByName(ctx, id, name, false)
	if err != nil {
		return ServiceInstances{}, err
	}
	by, err := s.instancesByService(ctx)
	if err != nil {
		return ServiceInstances{}, err
	}
	return ServiceInstances{Service: svc, Instances: by[svc.Name]}, nil
}

// ServiceDoc is the documentation of a service the caller may use.
func (s *Engine) ServiceDoc(ctx context.Context, id *Identity, name string) (string, error) {
	svc, err := s.serviceByName(ctx, id, name, false)
	if err != nil {
		return "", err
	}
	return svc.Doc, nil
}

// SetServiceDoc replaces a service's documentation with what doc holds,
// read only once the caller is known to own the service.
func (s *Engine) SetServiceDoc(ctx context.Context, id *Identity, name string, doc io.Reader) error {
	svc, err := s.serviceByName(ctx, id, name, true)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(doc)
	if err != nil {
		return err
	}
	_, _, err = state.Update(ctx, s.store, state.ServiceKey(svc.Name), func(x *state.Service) error {
		x.Doc = string(b)
		return nil
	})
	return err
}

// GrantService gives team access to a service the caller's teams own.
func (s *Engine) GrantService(ctx context.Context, id *Identity, name, team string) error {
	return s.grantService(ctx, id, name, team, true)
}

// RevokeService takes a team's access to a service away. Revoking an owner
// team hands the service over: when no owner team is left, the teams still
// granted become owners. The last team with access cannot be revoked.
func (s *Engine) RevokeService(ctx context.Context, id *Identity, name, team string) error {
	return s.grantService(ctx, id, name, team, false)
}

func (s *Engine) grantService(ctx context.Context, id *Identity, name, team string, add bool) error {
	svc, err := s.serviceByName(ctx, id, name, true)
	if err != nil {
		return err
	}
	if err := names.Team(team); err != nil {
		return err
	}
	tm, err := s.teamWithID(ctx, team)
	if errors.Is(err, state.ErrNotFound) {
		return notFound("team %q not found", team)
	}
	if err != nil {
		return err
	}
	_, _, err = state.Update(ctx, s.store, state.ServiceKey(svc.Name), func(x *state.Service) error {
		// A name granted to a team since deleted and re-created is not
		// this team: granting it again records this team's ID.
		has := Contains(x.Teams, team) && teamMatches(x.TeamIDs, team, tm)
		switch {
		case add && has:
			return conflict("team %q already has access to service %q", team, x.Name)
		case add:
			if !Contains(x.Teams, team) {
				x.Teams = append(x.Teams, team)
			}
			x.OwnerTeams = Remove(x.OwnerTeams, team)
			if x.TeamIDs == nil {
				x.TeamIDs = map[string]string{}
			}
			x.TeamIDs[team] = tm.ID
		case !Contains(x.Teams, team) && !Contains(x.OwnerTeams, team):
			return notFound("team %q has no access to service %q", team, x.Name)
		case len(Remove(x.Teams, team)) == 0:
			return forbidden("team %q is the last with access to service %q", team, x.Name)
		default:
			x.Teams = Remove(x.Teams, team)
			x.OwnerTeams = Remove(x.OwnerTeams, team)
			delete(x.TeamIDs, team)
			if len(x.OwnerTeams) == 0 {
				x.OwnerTeams = append([]string{}, x.Teams...)
			}
		}
		return nil
	})
	return err
}
