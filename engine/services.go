package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
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

func ServiceSettingsPath(service string) string { return "services/" + service + "/settings" }
func bindingPath(app, instance string) string   { return bindingPrefix(app) + instance }

// bindingID is the broker's id of the binding of instance to app.
func bindingID(instance, app string) string {
	sum := sha256.Sum256([]byte(instance + "/" + app))
	return "b-" + hex.EncodeToString(sum[:12])
}

// BrokerErr maps a broker's answer to the API's.
func BrokerErr(what string, err error) error {
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

// BrokerFor returns the broker of a service, started with its settings.
func (s *Engine) BrokerFor(ctx context.Context, svc *state.Service) (broker.Broker, error) {
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
		sec, err := s.secrets.Get(ctx, ServiceSettingsPath(svc.Name), 0)
		if err == nil {
			settings = sec.Data
		} else if !errors.Is(err, backends.ErrNotFound) {
			return nil, err
		}
	}
	b, err := s.brokers.Broker(ctx, svc.Name, svc.Broker, settings)
	if err != nil {
		return nil, BrokerErr("starting broker "+svc.Broker, err)
	}
	return b, nil
}

// BrokerCtx bounds one saga's broker calls.
func (s *Engine) BrokerCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Plugins.CallTimeoutDur+5*time.Second)
}

// WaitOperation polls an asynchronous broker operation until it ends.
func WaitOperation(ctx context.Context, b broker.Broker, instance, op string) error {
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

// Provision is the Provision saga: the instance is recorded first (so a
// crash leaves a record the sweep cleans up), then provisioned; on failure
// the broker is asked to deprovision (OSB orphan mitigation) and the record
// is removed.
func (s *Engine) Provision(ctx context.Context, svc *state.Service, inst *state.ServiceInstance) error {
	if _, err := state.Create(ctx, s.store, state.InstanceKey(inst.Name), inst); errors.Is(err, state.ErrExists) {
		return conflict("service instance %q already exists", inst.Name)
	} else if err != nil {
		return err
	}
	fail := func(err error) error {
		s.cleanupInstance(inst.Name, svc)
		return err
	}
	bctx, cancel := s.BrokerCtx(ctx)
	defer cancel()
	b, err := s.BrokerFor(bctx, svc)
	if err != nil {
		return fail(err)
	}
	planID := svc.Plan
	serviceID := svc.Broker
	if cat, err := b.Catalog(bctx); err == nil && len(cat.Services) > 0 {
		serviceID = cat.Services[0].ID
		if planID == "" && len(cat.Services[0].Plans) > 0 {
			planID = cat.Services[0].Plans[0].ID
		}
	}
	resp, err := b.Provision(bctx, broker.ProvisionRequest{InstanceID: inst.Name, ServiceID: serviceID, PlanID: planID})
	if err == nil && resp.Async {
		err = WaitOperation(bctx, b, inst.Name, resp.Operation)
	}
	if err != nil {
		return fail(BrokerErr("provisioning "+inst.Name, err))
	}
	_, _, err = state.Update(ctx, s.store, state.InstanceKey(inst.Name), func(i *state.ServiceInstance) error {
		i.State = state.InstanceReady
		return nil
	})
	if err != nil {
		return fail(err)
	}
	inst.State = state.InstanceReady
	return nil
}

// cleanupInstance deprovisions (gone is fine) and removes the record; used
// to undo a failed Provision and by the sweep for orphans.
func (s *Engine) cleanupInstance(name string, svc *state.Service) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Plugins.CallTimeoutDur+5*time.Second)
	defer cancel()
	if svc != nil {
		if b, err := s.BrokerFor(ctx, svc); err == nil {
			_, err := b.Deprovision(ctx, broker.DeprovisionRequest{InstanceID: name})
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

// Bind is the Bind saga; each step has an undo.
//  1. broker Bind (undo: Unbind)
//  2. credentials into Secrets (undo: delete)
//  3. app.Bindings and instance.Apps in one transaction
//
// The undo steps run on a context of their own (the request's values, not
// its cancellation, and plugins.call_timeout): a bind that timed out or
// whose client went away is the very case that needs them, and an undo on
// the dead context would leave the broker's user behind. A Bind that
// failed without a clear refusal may have created the user (the broker
// answered late), so it is undone too (Unbind of nothing is ErrGone).
//
// The caller holds the app's lease and redeploys afterwards.
func (s *Engine) Bind(ctx context.Context, svc *state.Service, inst *state.ServiceInstance, app *state.App) (map[string]string, error) {
	bctx, cancel := s.BrokerCtx(ctx)
	defer cancel()
	b, err := s.BrokerFor(bctx, svc)
	if err != nil {
		return nil, err
	}
	bid := bindingID(inst.Name, app.Name)
	undoBroker := func() {
		uctx, cancel := s.undoCtx(ctx)
		defer cancel()
		if err := b.Unbind(uctx, broker.UnbindRequest{InstanceID: inst.Name, BindingID: bid}); err != nil && !errors.Is(err, broker.ErrGone) {
			s.log.Warn("bind undo: Unbind failed", "instance", inst.Name, "app", app.Name, "error", err)
		}
	}
	resp, err := b.Bind(bctx, broker.BindRequest{InstanceID: inst.Name, BindingID: bid, AppName: app.Name})
	if err != nil {
		if !refused(err) {
			undoBroker()
		}
		return nil, BrokerErr("binding "+inst.Name, err)
	}
	// Created only if absent: a binding's credentials are never replaced
	// (and then removed by this saga's undo) by a concurrent Bind.
	if _, err := s.secrets.PutCAS(ctx, bindingPath(app.Name, inst.Name), resp.Credentials, 0); err != nil {
		if errors.Is(err, backends.ErrCASMismatch) {
			return nil, conflict("service instance %q is already bound to app %q", inst.Name, app.Name)
		}
		undoBroker()
		return nil, err
	}
	undoSecret := func() {
		uctx, cancel := s.undoCtx(ctx)
		defer cancel()
		if err := s.secrets.Delete(uctx, bindingPath(app.Name, inst.Name)); err != nil {
			s.log.Warn("bind undo: could not delete the credentials", "instance", inst.Name, "app", app.Name, "error", err)
		}
	}
	if err := s.linkBinding(ctx, inst.Name, app.Name, true); err != nil {
		undoSecret()
		undoBroker()
		return nil, err
	}
	return resp.Credentials, nil
}

// undoCtx is the context of a saga's undo step: ctx's values without its
// cancellation, bounded by plugins.call_timeout.
func (s *Engine) undoCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Plugins.CallTimeoutDur)
}

// refused reports whether a broker call failed with a clear refusal, after
// which the broker has made nothing.
func refused(err error) bool {
	return errors.Is(err, broker.ErrBadRequest) || errors.Is(err, broker.ErrConflict) || errors.Is(err, broker.ErrNotFound)
}

// linkBinding adds (or removes) the binding in both records atomically.
func (s *Engine) linkBinding(ctx context.Context, instance, app string, add bool) error {
	for attempt := 0; attempt < 32; attempt++ {
		a, err := state.GetApp(ctx, s.store, app)
		if err != nil {
			return err
		}
		inst, iidx, err := state.Get[state.ServiceInstance](ctx, s.store, state.InstanceKey(instance))
		if err != nil {
			return err
		}
		if add {
			if Contains(a.Bindings, instance) {
				return conflict("service instance %q is already bound to app %q", instance, app)
			}
			a.Bindings = append(a.Bindings, instance)
			if !Contains(inst.Apps, app) {
				inst.Apps = append(inst.Apps, app)
			}
		} else {
			a.Bindings = Remove(a.Bindings, instance)
			inst.Apps = Remove(inst.Apps, app)
		}
		ab, err := JsonBytes(a)
		if err != nil {
			return err
		}
		ib, err := JsonBytes(inst)
		if err != nil {
			return err
		}
		_, err = s.store.Txn(ctx, []backends.TxnOp{
			{Verb: backends.TxnCAS, Key: state.AppKey(app), Value: ab, Index: a.ModifyIndex},
			{Verb: backends.TxnCAS, Key: state.InstanceKey(instance), Value: ib, Index: iidx},
		})
		if errors.Is(err, backends.ErrCASConflict) {
			continue
		}
		return err
	}
	return conflict("too many concurrent changes; try again")
}

// Unbind revokes the credentials first (so they stop working even if a
// later step fails), then removes the secret and the records.
func (s *Engine) Unbind(ctx context.Context, svc *state.Service, inst *state.ServiceInstance, app string) error {
	bctx, cancel := s.BrokerCtx(ctx)
	defer cancel()
	b, err := s.BrokerFor(bctx, svc)
	if err != nil {
		return err
	}
	err = b.Unbind(bctx, broker.UnbindRequest{InstanceID: inst.Name, BindingID: bindingID(inst.Name, app)})
	if err != nil && !errors.Is(err, broker.ErrGone) {
		return BrokerErr("unbinding "+inst.Name, err)
	}
	if err := s.secrets.Delete(ctx, bindingPath(app, inst.Name)); err != nil {
		return err
	}
	return s.linkBinding(ctx, inst.Name, app, false)
}

// unbindAll removes an app's service bindings before the app goes away.
func (s *Engine) unbindAll(ctx context.Context, id *Identity, a *state.App) error {
	for _, name := range a.Bindings {
		inst, _, err := state.Get[state.ServiceInstance](ctx, s.store, state.InstanceKey(name))
		if errors.Is(err, state.ErrNotFound) {
			_ = s.secrets.Delete(ctx, bindingPath(a.Name, name))
			continue
		}
		if err != nil {
			return err
		}
		svc, _, err := state.Get[state.Service](ctx, s.store, state.ServiceKey(inst.ServiceName))
		if err != nil {
			return err
		}
		if err := s.Unbind(ctx, svc, inst, a.Name); err != nil {
			return fmt.Errorf("unbinding %s before removing app %s: %w", name, a.Name, err)
		}
	}
	return nil
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
			bctx, cancel := s.BrokerCtx(ctx)
			b, err := s.BrokerFor(bctx, svc)
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

// canUseService: admins, and members of a team the service is granted to.
func (s *Engine) ServiceAccess(ctx context.Context, id *Identity, svc *state.Service, manage bool) error {
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
		if err == nil && Contains(tm.Users, id.Email) && TeamMatches(svc.TeamIDs, t, tm) {
			return nil
		}
	}
	if manage {
		return forbidden("you are not in a team that owns service %q", svc.Name)
	}
	return forbidden("service %q is not granted to any of your teams", svc.Name)
}

// UserTeams lists the teams the caller belongs to.
func (s *Engine) UserTeams(ctx context.Context, id *Identity) ([]string, error) {
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

func JoinOr(list []string) string { return strings.Join(list, ", ") }
