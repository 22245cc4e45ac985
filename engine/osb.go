package engine

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
	"github.com/berthpaas/berth/plugins/broker"
)

// What Berth's Open Service Broker endpoint (package osbserver) needs of
// the engine. The endpoint acts for one team, the one named in the osb
// block of the configuration: it offers the services granted to that
// team, and the instances it makes belong to that team (a Berth instance
// each, visible to the team's members like any other), so that what one
// platform provisions stays apart from other tenants.

// TeamServices lists the services granted to team (the team that was
// granted them: a team re-created under the name does not match).
func (s *Engine) TeamServices(ctx context.Context, team string) ([]*state.Service, error) {
	tm, err := s.teamWithID(ctx, team)
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("team %q not found", team)
	}
	if err != nil {
		return nil, err
	}
	svcs, err := state.List[state.Service](ctx, s.store, state.ServicesPrefix)
	if err != nil {
		return nil, err
	}
	var out []*state.Service
	for _, svc := range svcs {
		if Contains(svc.Teams, team) && teamMatches(svc.TeamIDs, team, tm) {
			out = append(out, svc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ServiceBroker returns the started broker of a service, and a context
// bounding one broker saga (plugins.call_timeout plus a margin).
func (s *Engine) ServiceBroker(ctx context.Context, svc *state.Service) (broker.Broker, context.Context, context.CancelFunc, error) {
	bctx, cancel := s.brokerCtx(ctx)
	b, err := s.brokerFor(bctx, svc)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return b, bctx, cancel, nil
}

// TeamInstance loads a service instance of team and its service; an
// instance of another team is KindNotFound, as a missing one is.
func (s *Engine) TeamInstance(ctx context.Context, team, name string) (*state.ServiceInstance, *state.Service, error) {
	if err := names.Instance(name); err != nil {
		return nil, nil, err
	}
	inst, _, err := state.Get[state.ServiceInstance](ctx, s.store, state.InstanceKey(name))
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil, notFound("service instance %q not found", name)
	}
	if err != nil {
		return nil, nil, err
	}
	tm, err := s.teamWithID(ctx, team)
	if err != nil || !Contains(inst.Teams, team) || !teamMatches(inst.TeamIDs, team, tm) {
		return nil, nil, notFound("service instance %q not found", name)
	}
	svc, _, err := state.Get[state.Service](ctx, s.store, state.ServiceKey(inst.ServiceName))
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil, notFound("service %q of instance %q not found", inst.ServiceName, name)
	}
	if err != nil {
		return nil, nil, err
	}
	return inst, svc, nil
}

// ProvisionForTeam provisions instance name of svc (which must be granted
// to team) with the broker's service and plan IDs and parameters, owned by
// team; owner is recorded as who asked (e.g. "osb:cloudfoundry"). It runs
// the same saga as CreateInstance: orphan mitigation on failure, and an
// asynchronous provision still in progress is left provisioning for the
// service sweep.
func (s *Engine) ProvisionForTeam(ctx context.Context, team, owner, name string, svc *state.Service, serviceID, planID string, params map[string]string) (*state.ServiceInstance, error) {
	if err := names.Instance(name); err != nil {
		return nil, err
	}
	tm, err := s.teamWithID(ctx, team)
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("team %q not found", team)
	}
	if err != nil {
		return nil, err
	}
	if !Contains(svc.Teams, team) || !teamMatches(svc.TeamIDs, team, tm) {
		return nil, forbidden("service %q is not granted to team %q", svc.Name, team)
	}
	inst := &state.ServiceInstance{Name: name, ServiceName: svc.Name, Teams: []string{team}, TeamIDs: map[string]string{team: tm.ID},
		Owner: owner, Apps: []string{}, State: state.InstanceProvisioning, Created: time.Now().UTC()}
	if err := s.provisionPlan(ctx, svc, inst, serviceID, planID, params); err != nil {
		return nil, err
	}
	return inst, nil
}

// DeprovisionForTeam deprovisions an instance of team and removes its
// record, as RemoveInstance does (refused while Berth apps are bound to
// it). An asynchronous deprovision still in progress leaves the instance
// deprovisioning for the service sweep, and deprovisioning is true.
func (s *Engine) DeprovisionForTeam(ctx context.Context, team, name string) (deprovisioning bool, err error) {
	inst, svc, err := s.TeamInstance(ctx, team, name)
	if err != nil {
		return false, err
	}
	if len(inst.Apps) > 0 {
		return false, conflict("service instance %q is bound to Berth apps: unbind them first", name)
	}
	bctx, cancel := s.brokerCtx(ctx)
	defer cancel()
	b, err := s.brokerFor(bctx, svc)
	if err != nil {
		return false, err
	}
	resp, err := b.Deprovision(bctx, broker.DeprovisionRequest{InstanceID: name})
	if err == nil && resp.Async {
		s.recordDeprovisioning(ctx, name, resp.Operation)
		err = waitOperation(bctx, b, name, resp.Operation)
		if errors.Is(err, broker.ErrGone) {
			err = nil
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return true, nil
		}
	}
	if err != nil && !errors.Is(err, broker.ErrGone) {
		return false, brokerErr("deprovisioning "+name, err)
	}
	if err := state.Delete(ctx, s.store, state.InstanceKey(name)); err != nil && !errors.Is(err, state.ErrNotFound) {
		return false, err
	}
	return false, nil
}

// BrokerError maps a broker's error to a domain error (as the API
// reports it).
func BrokerError(what string, err error) error { return brokerErr(what, err) }
