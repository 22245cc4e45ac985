package engine

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
	"github.com/berthpaas/berth/plugins/broker"
)

// instanceByName loads an instance; the caller must be able to use it (an
// admin, its owner, or a member of one of its teams).
func (s *Engine) instanceByName(ctx context.Context, id *Identity, name string) (*state.ServiceInstance, *state.Service, error) {
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
	svc, _, err := state.Get[state.Service](ctx, s.store, state.ServiceKey(inst.ServiceName))
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil, notFound("service %q of instance %q not found", inst.ServiceName, name)
	}
	if err != nil {
		return nil, nil, err
	}
	if !id.Admin && !id.AppToken {
		mine, err := s.myTeams(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		ok := false
		if inst.Owner == id.Email {
			// The owner is the user who created it (same ID), not whoever
			// registered the email since.
			u, _, err := state.Get[state.User](ctx, s.store, state.UserKey(id.Email))
			if err != nil && !errors.Is(err, state.ErrNotFound) {
				return nil, nil, err
			}
			ok = err == nil && ownsInstance(inst, u)
		}
		for _, t := range inst.Teams {
			ok = ok || teamMatches(inst.TeamIDs, t, mine[t])
		}
		if !ok {
			return nil, nil, forbidden("you have no access to service instance %q", name)
		}
	} else if id.AppToken {
		return nil, nil, forbidden("an app token cannot manage service instances")
	}
	return inst, svc, nil
}

// CreateInstance provisions an instance of a service the caller may use,
// owned by the caller and given to all the caller's teams, on the
// service's plan.
func (s *Engine) CreateInstance(ctx context.Context, id *Identity, name, service string) (*state.ServiceInstance, error) {
	return s.CreateInstanceWith(ctx, id, InstanceRequest{Name: name, Service: service})
}

// InstanceRequest is what a new service instance is: its name, its
// service, and optionally the broker plan (its ID or name; default the
// service's) and the one team it is given to (default all the caller's
// teams).
type InstanceRequest struct {
	Name, Service, Plan, Team string
}

// CreateInstanceWith provisions an instance of a service the caller may
// use, owned by the caller. A team must be one of the caller's that the
// service is granted to (site admins: any team the service is granted
// to); a plan must be one of the broker's catalog.
func (s *Engine) CreateInstanceWith(ctx context.Context, id *Identity, req InstanceRequest) (*state.ServiceInstance, error) {
	name := req.Name
	if err := names.Instance(name); err != nil {
		return nil, err
	}
	svc, err := s.serviceByName(ctx, id, req.Service, false)
	if err != nil {
		return nil, err
	}
	mine, err := s.myTeams(ctx, id)
	if err != nil {
		return nil, err
	}
	teams, ids := []string{}, map[string]string{}
	if req.Team != "" {
		t, err := s.instanceTeam(ctx, id, svc, mine, req.Team)
		if err != nil {
			return nil, err
		}
		teams, ids[t.Name] = []string{t.Name}, t.ID
	} else {
		for name, t := range mine {
			teams = append(teams, name)
			ids[name] = t.ID
		}
	}
	sort.Strings(teams)
	owner, err := s.userWithID(ctx, id.Email)
	if err != nil {
		return nil, err
	}
	inst := &state.ServiceInstance{Name: name, ServiceName: svc.Name, Teams: teams, TeamIDs: ids, Owner: id.Email, OwnerID: owner.ID, Apps: []string{}, State: state.InstanceProvisioning, Created: time.Now().UTC()}
	if req.Plan != "" {
		plans, err := s.ServicePlans(ctx, id, svc.Name)
		if err != nil {
			return nil, err
		}
		var known []string
		for _, p := range plans {
			if p.ID == req.Plan || p.Name == req.Plan {
				inst.Plan = p.ID
			}
			known = append(known, p.Name)
		}
		if inst.Plan == "" {
			return nil, badRequest("service %q has no plan %q (its plans: %s)", svc.Name, req.Plan, strings.Join(known, ", "))
		}
	}
	if err := s.provision(ctx, svc, inst); err != nil {
		return nil, err
	}
	return inst, nil
}

// instanceTeam is the team a new instance is given to: one of the
// caller's (any, for site admins), granted the service.
func (s *Engine) instanceTeam(ctx context.Context, id *Identity, svc *state.Service, mine map[string]*state.Team, name string) (*state.Team, error) {
	if err := names.Team(name); err != nil {
		return nil, err
	}
	t := mine[name]
	if t == nil && id.Admin {
		got, _, err := state.Get[state.Team](ctx, s.store, state.TeamKey(name))
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return nil, err
		}
		t = got
	}
	if t == nil {
		return nil, forbidden("you are not a member of team %q", name)
	}
	granted := false
	for _, g := range svc.Teams {
		granted = granted || teamMatches(svc.TeamIDs, g, t)
	}
	if !granted {
		return nil, forbidden("service %q is not granted to team %q", svc.Name, name)
	}
	return t, nil
}

// ServicePlans lists the plans of a service the caller may use, from its
// broker's catalog.
func (s *Engine) ServicePlans(ctx context.Context, id *Identity, service string) ([]broker.Plan, error) {
	svc, err := s.serviceByName(ctx, id, service, false)
	if err != nil {
		return nil, err
	}
	bctx, cancel := s.brokerCtx(ctx)
	defer cancel()
	b, err := s.brokerFor(bctx, svc)
	if err != nil {
		return nil, err
	}
	cat, err := b.Catalog(bctx)
	if err != nil {
		return nil, brokerErr("reading the catalog of "+svc.Name, err)
	}
	out := []broker.Plan{}
	if len(cat.Services) > 0 {
		out = append(out, cat.Services[0].Plans...)
	}
	return out, nil
}

// Instance is a service instance the caller may use.
func (s *Engine) Instance(ctx context.Context, id *Identity, name string) (*state.ServiceInstance, error) {
	inst, _, err := s.instanceByName(ctx, id, name)
	return inst, err
}

// RemoveInstance deprovisions an instance and removes its record; it is
// refused (KindForbidden) while the instance is bound to apps.
func (s *Engine) RemoveInstance(ctx context.Context, id *Identity, name string) error {
	inst, svc, err := s.instanceByName(ctx, id, name)
	if err != nil {
		return err
	}
	if len(inst.Apps) > 0 {
		return forbidden("service instance %q is bound to %s: unbind first", name, strings.Join(inst.Apps, ", "))
	}
	bctx, cancel := s.brokerCtx(ctx)
	defer cancel()
	b, err := s.brokerFor(bctx, svc)
	if err != nil {
		return err
	}
	resp, err := b.Deprovision(bctx, broker.DeprovisionRequest{InstanceID: name})
	if err == nil && resp.Async {
		s.recordDeprovisioning(ctx, name, resp.Operation)
		err = waitOperation(bctx, b, name, resp.Operation)
		if errors.Is(err, broker.ErrGone) {
			err = nil
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			// Still in progress: the service sweep polls it to its end
			// (across restarts) and then removes the record.
			s.log.Info("asynchronous deprovision still in progress; the service sweep keeps polling it", "instance", name, "operation", resp.Operation)
			return nil
		}
	}
	if err != nil && !errors.Is(err, broker.ErrGone) {
		return brokerErr("deprovisioning "+name, err)
	}
	if err := state.Delete(ctx, s.store, state.InstanceKey(name)); err != nil && !errors.Is(err, state.ErrNotFound) {
		return err
	}
	return nil
}

// InstanceStatus is an instance's state as Berth records it and as its
// broker reports it.
type InstanceStatus struct {
	Name  string
	State string
	// Broker is the broker's state of the last operation, or what kept
	// the broker from saying ("unreachable: ...", "gone: ...", "error: ...").
	Broker      string
	Description string // the broker's description of the operation, if any
}

// InstanceStatus asks the instance's broker about it. A broker that cannot
// answer is reported in the status, not as an error.
func (s *Engine) InstanceStatus(ctx context.Context, id *Identity, name string) (*InstanceStatus, error) {
	inst, svc, err := s.instanceByName(ctx, id, name)
	if err != nil {
		return nil, err
	}
	out := &InstanceStatus{Name: inst.Name, State: inst.State}
	bctx, cancel := s.brokerCtx(ctx)
	defer cancel()
	b, err := s.brokerFor(bctx, svc)
	if err != nil {
		out.Broker = "unreachable: " + err.Error()
		return out, nil
	}
	lo, err := b.LastOperation(bctx, broker.LastOperationRequest{InstanceID: name})
	switch {
	case errors.Is(err, broker.ErrGone):
		out.Broker = "gone: the broker no longer has this instance"
	case err != nil:
		out.Broker = "error: " + err.Error()
	default:
		out.Broker = lo.State
		out.Description = lo.Description
	}
	return out, nil
}

// provision is the Provision saga: the instance is recorded first (so a
// crash leaves a record the sweep cleans up), then provisioned; on failure
// the broker is asked to deprovision (OSB orphan mitigation) and the record
// is removed.
func (s *Engine) provision(ctx context.Context, svc *state.Service, inst *state.ServiceInstance) error {
	return s.provisionPlan(ctx, svc, inst, "", "", nil)
}

// provisionPlan is provision with the broker's service and plan IDs and
// the instance's parameters ("" IDs: the broker's first service, and the
// service's plan or the broker's first plan). An asynchronous provision
// that has not ended within the saga's time budget leaves the instance
// provisioning with its operation recorded (Async): the service sweep
// polls it to its end, also after a restart, and the instance is
// returned as it is (State provisioning) without an error.
func (s *Engine) provisionPlan(ctx context.Context, svc *state.Service, inst *state.ServiceInstance, serviceID, planID string, params map[string]string) error {
	if _, err := state.Create(ctx, s.store, state.InstanceKey(inst.Name), inst); errors.Is(err, state.ErrExists) {
		return conflict("service instance %q already exists", inst.Name)
	} else if err != nil {
		return err
	}
	fail := func(err error) error {
		s.cleanupInstance(inst.Name, svc)
		return err
	}
	bctx, cancel := s.brokerCtx(ctx)
	defer cancel()
	b, err := s.brokerFor(bctx, svc)
	if err != nil {
		return fail(err)
	}
	if serviceID == "" || planID == "" {
		if planID == "" {
			planID = inst.Plan
		}
		if planID == "" {
			planID = svc.Plan
		}
		if serviceID == "" {
			serviceID = svc.Broker
		}
		cat, cerr := b.Catalog(bctx)
		if cerr == nil && len(cat.Services) > 0 {
			serviceID = cat.Services[0].ID
			if planID == "" && len(cat.Services[0].Plans) > 0 {
				planID = cat.Services[0].Plans[0].ID
			}
		}
		if cerr != nil && planID == "" {
			// Without the catalog there is no plan to ask for: the
			// catalog's error (e.g. the broker refused Berth's
			// credentials) is the one to report.
			return fail(brokerErr("provisioning "+inst.Name+": reading the broker's catalog", cerr))
		}
	}
	resp, err := b.Provision(bctx, broker.ProvisionRequest{InstanceID: inst.Name, ServiceID: serviceID, PlanID: planID, Params: params})
	if err == nil && resp.Async {
		// Recorded before the wait: a Berth that stops now resumes
		// polling this operation (ServiceSweep).
		now := time.Now().UTC()
		if _, _, uerr := state.Update(ctx, s.store, state.InstanceKey(inst.Name), func(i *state.ServiceInstance) error {
			i.Async, i.Operation, i.OperationStarted = true, resp.Operation, now
			return nil
		}); uerr != nil {
			return fail(uerr)
		}
		inst.Async, inst.Operation, inst.OperationStarted = true, resp.Operation, now
		err = waitOperation(bctx, b, inst.Name, resp.Operation)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			s.log.Info("asynchronous provision still in progress; the service sweep keeps polling it", "instance", inst.Name, "operation", resp.Operation)
			return nil
		}
	}
	if err != nil {
		return fail(brokerErr("provisioning "+inst.Name, err))
	}
	_, _, err = state.Update(ctx, s.store, state.InstanceKey(inst.Name), func(i *state.ServiceInstance) error {
		i.State = state.InstanceReady
		i.Async, i.Operation, i.OperationStarted = false, "", time.Time{}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	inst.State = state.InstanceReady
	inst.Async, inst.Operation, inst.OperationStarted = false, "", time.Time{}
	return nil
}

// cleanupInstance deprovisions (gone is fine) and removes the record; used
// to undo a failed Provision and by the sweep for orphans.
func (s *Engine) cleanupInstance(name string, svc *state.Service) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Plugins.CallTimeoutDur+5*time.Second)
	defer cancel()
	if svc != nil {
		if b, err := s.brokerFor(ctx, svc); err == nil {
			resp, err := b.Deprovision(ctx, broker.DeprovisionRequest{InstanceID: name})
			if err == nil && resp.Async {
				// The broker deprovisions in the background: the sweep
				// polls the operation and removes the record when it ends.
				s.recordDeprovisioning(ctx, name, resp.Operation)
				return
			}
			if err != nil && !errors.Is(err, broker.ErrGone) {
				s.log.Warn("orphan cleanup: deprovision failed; the sweep retries", "instance", name, "error", err)
				_, _, _ = state.Update(ctx, s.store, state.InstanceKey(name), func(i *state.ServiceInstance) error {
					i.State, i.Message = state.InstanceDeprovisioning, "deprovision failed: "+err.Error()
					return nil
				})
				return
			}
		}
	}
	_, _ = s.store.Delete(ctx, state.InstanceKey(name))
}

// ServiceSweep repairs drift between Berth's records and the brokers:
// instances stuck provisioning (a crash mid-saga) or deprovisioning are
// cleaned up, and bindings whose credentials are missing from Secrets are
// bound again (Bind is idempotent by binding id).
func (s *Engine) ServiceSweep(ctx context.Context) (repaired []string) {
	s.pinIdentities(ctx)
	if s.brokers == nil {
		return nil
	}
	insts, err := state.List[state.ServiceInstance](ctx, s.store, state.InstancesPrefix)
	if err != nil {
		return nil
	}
	for _, inst := range insts {
		svc, _, err := state.Get[state.Service](ctx, s.store, state.ServiceKey(inst.ServiceName))
		if err != nil {
			continue
		}
		if inst.Async {
			if msg := s.pollPending(ctx, svc, inst); msg != "" {
				repaired = append(repaired, msg)
			}
			continue
		}
		stale := time.Since(inst.Created) > 2*s.cfg.Plugins.CallTimeoutDur
		if (inst.State == state.InstanceProvisioning && stale) || inst.State == state.InstanceDeprovisioning {
			s.cleanupInstance(inst.Name, svc)
			repaired = append(repaired, "cleaned up instance "+inst.Name)
			continue
		}
		for _, app := range inst.Apps {
			if _, err := s.secrets.Get(ctx, bindingPath(app, inst.Name), 0); !errors.Is(err, backends.ErrNotFound) {
				continue
			}
			bctx, cancel := s.brokerCtx(ctx)
			b, err := s.brokerFor(bctx, svc)
			if err == nil {
				var resp *broker.BindResponse
				resp, err = b.Bind(bctx, broker.BindRequest{InstanceID: inst.Name, BindingID: bindingID(inst.Name, app), AppName: app})
				if err == nil {
					_, err = s.secrets.PutCAS(ctx, bindingPath(app, inst.Name), resp.Credentials, 0)
				}
			}
			cancel()
			if err == nil {
				repaired = append(repaired, "restored binding "+inst.Name+" -> "+app)
			} else {
				s.log.Warn("service sweep: could not restore binding", "instance", inst.Name, "app", app, "error", err)
			}
		}
	}
	return repaired
}

// MaxOperationPolling is how long the service sweep polls an asynchronous
// broker operation before it considers it failed (the OSB API's maximum
// polling duration, on Berth's side).
const MaxOperationPolling = 24 * time.Hour

// recordDeprovisioning marks an instance deprovisioning with the broker's
// pending asynchronous operation.
func (s *Engine) recordDeprovisioning(ctx context.Context, name, op string) {
	uctx, cancel := s.undoCtx(ctx)
	defer cancel()
	now := time.Now().UTC()
	_, _, err := state.Update(uctx, s.store, state.InstanceKey(name), func(i *state.ServiceInstance) error {
		i.State, i.Message = state.InstanceDeprovisioning, ""
		i.Async, i.Operation, i.OperationStarted = true, op, now
		return nil
	})
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		s.log.Warn("could not record a pending deprovision; the sweep deprovisions again", "instance", name, "error", err)
	}
}

// pollPending asks the broker once about an instance's pending
// asynchronous operation and acts on the answer: a provision that
// succeeded makes the instance ready; one that failed (or was polled for
// longer than MaxOperationPolling) is deprovisioned (OSB orphan
// mitigation) and its record removed; a deprovision that succeeded (or
// whose instance is gone) removes the record; one that failed is tried
// again by the next sweep. It returns what it repaired ("" for nothing).
func (s *Engine) pollPending(ctx context.Context, svc *state.Service, inst *state.ServiceInstance) string {
	bctx, cancel := s.brokerCtx(ctx)
	defer cancel()
	b, err := s.brokerFor(bctx, svc)
	if err != nil {
		s.log.Warn("service sweep: cannot poll a pending operation", "instance", inst.Name, "error", err)
		return ""
	}
	lo, err := b.LastOperation(bctx, broker.LastOperationRequest{InstanceID: inst.Name, Operation: inst.Operation})
	deprov := inst.State == state.InstanceDeprovisioning
	overdue := !inst.OperationStarted.IsZero() && time.Since(inst.OperationStarted) > MaxOperationPolling
	switch {
	case deprov && (errors.Is(err, broker.ErrGone) || (err == nil && lo.State == broker.StateSucceeded)):
		_, _ = s.store.Delete(ctx, state.InstanceKey(inst.Name))
		return "deprovisioned instance " + inst.Name
	case deprov && ((err == nil && lo.State == broker.StateFailed) || overdue):
		why := "deprovision took longer than " + MaxOperationPolling.String()
		if err == nil && lo.State == broker.StateFailed {
			why = "deprovision failed: " + lo.Description
		}
		_, _, _ = state.Update(ctx, s.store, state.InstanceKey(inst.Name), func(i *state.ServiceInstance) error {
			i.Async, i.Operation, i.Message = false, "", why
			return nil
		})
		return "deprovision of instance " + inst.Name + " failed; it is tried again"
	case !deprov && err == nil && lo.State == broker.StateSucceeded:
		_, _, err := state.Update(ctx, s.store, state.InstanceKey(inst.Name), func(i *state.ServiceInstance) error {
			i.State, i.Message = state.InstanceReady, ""
			i.Async, i.Operation, i.OperationStarted = false, "", time.Time{}
			return nil
		})
		if err != nil {
			return ""
		}
		return "instance " + inst.Name + " is ready"
	case !deprov && ((err == nil && lo.State == broker.StateFailed) || overdue):
		s.log.Warn("asynchronous provision failed; deprovisioning it (orphan mitigation)", "instance", inst.Name, "overdue", overdue)
		_, _, _ = state.Update(ctx, s.store, state.InstanceKey(inst.Name), func(i *state.ServiceInstance) error {
			i.Async, i.Operation = false, ""
			return nil
		})
		s.cleanupInstance(inst.Name, svc)
		return "provision of instance " + inst.Name + " failed; cleaned up"
	case err != nil:
		s.log.Warn("service sweep: polling a pending operation failed; polled again next sweep", "instance", inst.Name, "error", err)
	}
	return ""
}

// ResumeOperations polls, once, the asynchronous broker operations that
// were pending when Berth last stopped (instances with Async set); the
// reconciler calls it when it starts, and ServiceSweep keeps polling them
// every reconciler interval after that.
func (s *Engine) ResumeOperations(ctx context.Context) (repaired []string) {
	if s.brokers == nil {
		return nil
	}
	insts, err := state.List[state.ServiceInstance](ctx, s.store, state.InstancesPrefix)
	if err != nil {
		return nil
	}
	for _, inst := range insts {
		if !inst.Async {
			continue
		}
		svc, _, err := state.Get[state.Service](ctx, s.store, state.ServiceKey(inst.ServiceName))
		if err != nil {
			continue
		}
		if msg := s.pollPending(ctx, svc, inst); msg != "" {
			repaired = append(repaired, msg)
		}
	}
	return repaired
}
