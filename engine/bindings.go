package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
	"github.com/berthpaas/berth/plugins/broker"
)

func bindingPath(app, instance string) string { return bindingPrefix(app) + instance }

// bindingID is the broker's id of the binding of instance to app.
func bindingID(instance, app string) string {
	sum := sha256.Sum256([]byte(instance + "/" + app))
	return "b-" + hex.EncodeToString(sum[:12])
}

// BindApp binds a ready service instance to an app and answers the
// variables the app gets. It takes the app's lease, runs the Bind saga,
// then starts the redeploy of a deployed app that puts the credentials in
// its processes' env (the reconciler releases the lease when it has
// converged).
//
// A bind is whole or not at all, as tsuru's bind pipeline is: when the
// redeploy cannot be started (the app's desired state cannot be written),
// the binding is undone (the broker's user included) and the error says
// so; an answer of success always means the app is being given the
// credentials. (The alternative, keeping the binding and answering
// success with a warning, would leave an app bound to credentials it does
// not have, in an answer whose body is the app's env.)
func (s *Engine) BindApp(ctx context.Context, id *Identity, instance, app string) (map[string]string, error) {
	if err := names.App(app); err != nil {
		return nil, err
	}
	a, err := s.LoadApp(ctx, id, app, ActAppBind)
	if err != nil {
		return nil, err
	}
	inst, svc, err := s.instanceByName(ctx, id, instance)
	if err != nil {
		return nil, err
	}
	if inst.State != state.InstanceReady {
		return nil, conflict("service instance %q is %s, not ready", instance, inst.State)
	}
	if Contains(a.Bindings, instance) {
		return nil, conflict("service instance %q is already bound to app %q", instance, app)
	}
	op := "bind " + instance
	if err := s.lockApp(ctx, app, id.Name(), op, a.Generation+1); err != nil {
		return nil, err
	}
	creds, err := s.bind(ctx, svc, inst, a)
	if err != nil {
		s.releaseLease(ctx, app)
		return nil, err
	}
	if rerr := s.redeployAfter(ctx, id, app, op); rerr != nil {
		s.log.Warn("could not redeploy app after a bind: undoing the binding", "app", app, "instance", instance, "error", rerr)
		uctx, cancel := s.undoCtx(ctx)
		uerr := s.unbind(uctx, svc, inst, app)
		cancel()
		s.releaseLease(ctx, app)
		e := Errorf(kindOf(rerr), "service instance %q was bound to app %q, but the app's redeploy, which gives it the credentials, could not be started (%v): the binding was undone; try again", instance, app, rerr)
		e.Extra = map[string]any{"redeployed": false, "binding": "undone"}
		if uerr != nil {
			s.log.Warn("could not undo a binding whose redeploy failed", "app", app, "instance", instance, "error", uerr)
			e.Msg = fmt.Sprintf("service instance %q was bound to app %q, but the app's redeploy, which gives it the credentials, could not be started (%v), and undoing the binding failed too (%v): unbind it, then bind again", instance, app, rerr, uerr)
			e.Extra["binding"] = "not undone"
		}
		return nil, e
	}
	return creds, nil
}

// UnbindResult is the outcome of an unbind that succeeded.
type UnbindResult struct {
	// Warning says why a deployed app was not redeployed after the unbind
	// ("" when it was, or needed no redeploy): its processes keep the
	// variables of the binding, whose credentials are revoked, until the
	// app is deployed again.
	Warning string
}

// UnbindApp unbinds a service instance from an app: the broker revokes
// the credentials, they leave Secrets and both records, and a deployed app
// is redeployed without them. An unbind cannot be undone once the broker
// has revoked the credentials, so a redeploy that cannot be started is
// reported in the result's Warning, not as an error.
func (s *Engine) UnbindApp(ctx context.Context, id *Identity, instance, app string) (*UnbindResult, error) {
	if err := names.App(app); err != nil {
		return nil, err
	}
	a, err := s.LoadApp(ctx, id, app, ActAppBind)
	if err != nil {
		return nil, err
	}
	inst, svc, err := s.instanceByName(ctx, id, instance)
	if err != nil {
		return nil, err
	}
	if !Contains(a.Bindings, instance) {
		return nil, notFound("service instance %q is not bound to app %q", instance, app)
	}
	op := "unbind " + instance
	if err := s.lockApp(ctx, app, id.Name(), op, a.Generation+1); err != nil {
		return nil, err
	}
	if err := s.unbind(ctx, svc, inst, app); err != nil {
		s.releaseLease(ctx, app)
		return nil, err
	}
	if err := s.redeployAfter(ctx, id, app, op); err != nil {
		s.log.Warn("could not redeploy app after an unbind", "app", app, "instance", instance, "error", err)
		s.releaseLease(ctx, app)
		return &UnbindResult{Warning: fmt.Sprintf("service instance %q was unbound from app %q and its credentials revoked, but the app was not redeployed: its redeploy could not be started (%v); its processes keep the old variables until it is deployed again", instance, app, err)}, nil
	}
	return &UnbindResult{}, nil
}

// redeployAfter starts the redeploy that gives a deployed app a binding
// change: it bumps the app's generation (the caller holds the lease; the
// reconciler releases it when the deploy has converged). An app that is
// not deployed needs none: its lease is released. On an error the caller
// still holds the lease.
func (s *Engine) redeployAfter(ctx context.Context, id *Identity, app, op string) error {
	a, err := state.GetApp(ctx, s.store, app)
	if err != nil {
		return err
	}
	if !a.Deployed {
		s.releaseLease(ctx, app)
		return nil
	}
	if _, _, err := s.commitChange(ctx, app, id.Name(), op, func(*state.App) error { return nil }); err != nil {
		return err
	}
	s.Kick(app)
	return nil
}

// releaseLease releases the app's lease, on a context of its own: a
// request that timed out or was cancelled must not leave its app busy
// until the lease expires.
func (s *Engine) releaseLease(ctx context.Context, app string) {
	uctx, cancel := s.undoCtx(ctx)
	defer cancel()
	s.UnlockApp(uctx, app, -1)
}

// kindOf is the kind of domain error err is, or would be.
func kindOf(err error) Kind {
	if e, ok := AsError(err); ok {
		return e.Kind
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.Is(err, backends.ErrCASConflict), errors.Is(err, state.ErrConflict):
		return KindConflict
	case errors.Is(err, backends.ErrUnavailable):
		return KindUnavailable
	}
	return KindInternal
}

// bind is the Bind saga; each step has an undo.
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
func (s *Engine) bind(ctx context.Context, svc *state.Service, inst *state.ServiceInstance, app *state.App) (map[string]string, error) {
	bctx, cancel := s.brokerCtx(ctx)
	defer cancel()
	b, err := s.brokerFor(bctx, svc)
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
		return nil, brokerErr("binding "+inst.Name, err)
	}
	// Created only if absent: a binding's credentials are never replaced
	// (and then removed by this saga's undo) by a concurrent Bind.
	if _, err := s.secrets.PutCAS(ctx, bindingPath(app.Name, inst.Name), resp.Credentials, 0); err != nil {
		if errors.Is(err, backends.ErrCASMismatch) {
			return nil, conflict("service instance %q is already bound to app %q", inst.Name, app.Name)
		}
		// The write may have landed all the same (its answer lost): the
		// credentials must not stay in Secrets without their binding (the
		// app's env takes every binding's credentials).
		s.dropCredentials(ctx, bindingPath(app.Name, inst.Name), resp.Credentials)
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

// dropCredentials deletes the credentials at path if they are creds (a
// write of them that failed may have landed); other credentials there (a
// concurrent bind's) are left alone. A backend that still does not answer
// is logged.
func (s *Engine) dropCredentials(ctx context.Context, path string, creds map[string]string) {
	uctx, cancel := s.undoCtx(ctx)
	defer cancel()
	sec, err := s.secrets.Get(uctx, path, 0)
	if errors.Is(err, backends.ErrNotFound) {
		return
	}
	if err == nil && !equalMaps(sec.Data, creds) {
		return
	}
	if err == nil {
		err = s.secrets.Delete(uctx, path)
	}
	if err != nil {
		s.log.Warn("bind undo: could not check or delete credentials whose write failed", "path", path, "error", err)
	}
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
		ab, err := jsonBytes(a)
		if err != nil {
			return err
		}
		ib, err := jsonBytes(inst)
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

// unbind revokes the credentials first (so they stop working even if a
// later step fails), then removes the secret and the records.
func (s *Engine) unbind(ctx context.Context, svc *state.Service, inst *state.ServiceInstance, app string) error {
	bctx, cancel := s.brokerCtx(ctx)
	defer cancel()
	b, err := s.brokerFor(bctx, svc)
	if err != nil {
		return err
	}
	err = b.Unbind(bctx, broker.UnbindRequest{InstanceID: inst.Name, BindingID: bindingID(inst.Name, app)})
	if err != nil && !errors.Is(err, broker.ErrGone) {
		return brokerErr("unbinding "+inst.Name, err)
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
		if err := s.unbind(ctx, svc, inst, a.Name); err != nil {
			return fmt.Errorf("unbinding %s before removing app %s: %w", name, a.Name, err)
		}
	}
	return nil
}
