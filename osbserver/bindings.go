package osbserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/plugins/broker"
)

type bindBody struct {
	ServiceID    json.RawMessage `json:"service_id"`
	PlanID       json.RawMessage `json:"plan_id"`
	AppGUID      json.RawMessage `json:"app_guid"`
	BindResource json.RawMessage `json:"bind_resource"`
	Context      json.RawMessage `json:"context"`
	Parameters   json.RawMessage `json:"parameters"`
}

// instanceFor loads the instance record a binding request names and
// checks the query's or body's service_id and plan_id against it. It
// answers the request itself (and returns nil) when it cannot go on.
func (s *Server) instanceFor(w http.ResponseWriter, r *http.Request, serviceID, planID string, missing int) *instRec {
	inst, err := s.getLive(r.Context(), r.PathValue("iid"))
	if err == nil {
		inst, err = s.settle(r.Context(), inst)
	}
	if errors.Is(err, state.ErrNotFound) || (err == nil && tombstone(inst)) {
		if missing == http.StatusGone {
			empty(w, http.StatusGone)
		} else {
			fail(w, missing, "NotFound", "no such service instance")
		}
		return nil
	}
	if err != nil {
		failErr(w, err)
		return nil
	}
	if inst.ServiceID != serviceID || inst.PlanID != planID {
		badRequest(w, "service_id and plan_id do not match the service instance's")
		return nil
	}
	if inst.Op != "provision" || inst.State != stateSucceeded {
		if inst.Op == "provision" && inst.State == stateFailed {
			fail(w, missing, "NotFound", "no such service instance (its provision failed)")
			return nil
		}
		concurrency(w, "an operation on the service instance is in progress")
		return nil
	}
	return inst
}

func (s *Server) bind(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	iid, bid := r.PathValue("iid"), r.PathValue("bid")
	accepts, err := acceptsIncomplete(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	var in bindBody
	if err := decode(r, &in); err != nil {
		badRequest(w, "%v", err)
		return
	}
	serviceID, err := reqString("service_id", in.ServiceID)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	planID, err := reqString("plan_id", in.PlanID)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	app, err := optString("app_guid", in.AppGUID)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	if err := object("bind_resource", in.BindResource); err != nil {
		badRequest(w, "%v", err)
		return
	}
	if len(in.BindResource) > 0 && string(in.BindResource) != "null" {
		var res struct {
			AppGUID json.RawMessage `json:"app_guid"`
		}
		_ = json.Unmarshal(in.BindResource, &res)
		a, err := optString("bind_resource.app_guid", res.AppGUID)
		if err != nil {
			badRequest(w, "%v", err)
			return
		}
		if a != "" {
			app = a
		}
	}
	if err := object("context", in.Context); err != nil {
		badRequest(w, "%v", err)
		return
	}
	ps, err := params(in.Parameters)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	if app == "" {
		app = "osb"
	}
	inst := s.instanceFor(w, r, serviceID, planID, http.StatusNotFound)
	if inst == nil {
		return
	}
	rec := &bindRec{InstanceID: iid, BindingID: bid, Broker: brokerBinding(iid, bid), App: app, Params: ps,
		Op: "bind", OpID: newOpID("bind"), State: stateInProgress, Updated: time.Now().UTC()}
	if len(in.Parameters) > 0 && string(in.Parameters) != "null" {
		rec.Raw = in.Parameters
	}
	key := bindKey(iid, bid)
	hold := s.hold(key)
	defer hold.done()
	for attempt := 0; ; attempt++ {
		if attempt > 8 {
			concurrency(w, "the binding is being changed by other requests; try again")
			return
		}
		cur, err := s.getBind(ctx, iid, bid)
		if errors.Is(err, state.ErrNotFound) {
			if !hold.owned {
				concurrency(w, "another operation on the binding is ending; try again")
				return
			}
			if _, err := state.Create(ctx, s.store(), key, rec); errors.Is(err, state.ErrExists) {
				continue
			} else if err != nil {
				failErr(w, err)
				return
			}
			break
		}
		if err != nil {
			failErr(w, err)
			return
		}
		same := cur.App == app && broker.EqualParams(cur.Params, ps)
		switch {
		case cur.Op == "bind" && cur.State == stateFailed:
			if err := state.Delete(ctx, s.store(), key); err != nil && !errors.Is(err, state.ErrNotFound) {
				failErr(w, err)
				return
			}
			continue
		case cur.Op == "unbind":
			concurrency(w, "the binding is being deleted")
			return
		case !same:
			fail(w, http.StatusConflict, "Conflict", "a binding with this id exists with other attributes (app or parameters)")
			return
		case cur.State == stateSucceeded:
			creds, err := s.credentials(ctx, inst, cur)
			if err != nil {
				failErr(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"credentials": creds})
			return
		case accepts:
			writeJSON(w, http.StatusAccepted, map[string]string{"operation": cur.OpID})
			return
		default:
			concurrency(w, "the binding is being created")
			return
		}
	}
	if s.cfg.Async && accepts {
		hold.spawn(func(ctx context.Context) { s.runBindingOp(ctx, rec) })
		writeJSON(w, http.StatusAccepted, map[string]string{"operation": rec.OpID})
		return
	}
	creds, err := s.doBind(ctx, rec)
	if err != nil {
		_ = state.Delete(context.WithoutCancel(ctx), s.store(), key)
		failErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"credentials": creds})
}

// brokerOf returns the broker of a binding's instance.
func (s *Server) brokerOf(ctx context.Context, instanceID string) (*instRec, broker.Broker, context.Context, context.CancelFunc, error) {
	inst, err := s.getLive(ctx, instanceID)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	_, svc, err := s.eng.TeamInstance(ctx, s.cfg.Team, inst.Berth)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	b, bctx, cancel, err := s.eng.ServiceBroker(ctx, svc)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return inst, b, bctx, cancel, nil
}

// doBind makes the binding with the Berth broker and records it. A Bind
// that failed without a clear refusal may have made the user: it is
// unbound (orphan mitigation).
func (s *Server) doBind(ctx context.Context, rec *bindRec) (map[string]string, error) {
	inst, b, bctx, cancel, err := s.brokerOf(ctx, rec.InstanceID)
	if err != nil {
		return nil, err
	}
	defer cancel()
	resp, err := b.Bind(bctx, broker.BindRequest{InstanceID: inst.Berth, BindingID: rec.Broker, AppName: rec.App, Params: rec.Params})
	if err != nil {
		if !errors.Is(err, broker.ErrBadRequest) && !errors.Is(err, broker.ErrConflict) && !errors.Is(err, broker.ErrNotFound) {
			uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			_ = b.Unbind(uctx, broker.UnbindRequest{InstanceID: inst.Berth, BindingID: rec.Broker})
			ucancel()
		}
		return nil, engine.BrokerError("binding "+inst.Berth, err)
	}
	rec.State, rec.Desc = stateSucceeded, ""
	if err := s.putBind(context.WithoutCancel(ctx), rec); err != nil {
		return nil, err
	}
	return resp.Credentials, nil
}

// credentials asks the broker for an existing binding's credentials again
// (Bind is idempotent by binding ID: the same credentials).
func (s *Server) credentials(ctx context.Context, inst *instRec, rec *bindRec) (map[string]string, error) {
	_, b, bctx, cancel, err := s.brokerOf(ctx, inst.ID)
	if err != nil {
		return nil, err
	}
	defer cancel()
	resp, err := b.Bind(bctx, broker.BindRequest{InstanceID: inst.Berth, BindingID: rec.Broker, AppName: rec.App, Params: rec.Params})
	if err != nil {
		return nil, engine.BrokerError("reading the credentials of "+inst.Berth, err)
	}
	return resp.Credentials, nil
}

func (s *Server) doUnbind(ctx context.Context, rec *bindRec) error {
	inst, b, bctx, cancel, err := s.brokerOf(ctx, rec.InstanceID)
	if e, ok := engine.AsError(err); (ok && e.Kind == engine.KindNotFound) || errors.Is(err, state.ErrNotFound) {
		return s.dropBind(ctx, rec)
	}
	if err != nil {
		return err
	}
	defer cancel()
	err = b.Unbind(bctx, broker.UnbindRequest{InstanceID: inst.Berth, BindingID: rec.Broker})
	if err != nil && !errors.Is(err, broker.ErrGone) {
		return engine.BrokerError("unbinding "+inst.Berth, err)
	}
	return s.dropBind(ctx, rec)
}

func (s *Server) dropBind(ctx context.Context, rec *bindRec) error {
	err := state.Delete(context.WithoutCancel(ctx), s.store(), bindKey(rec.InstanceID, rec.BindingID))
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	return err
}

// runBindingOp runs (or resumes) a binding's operation in the background.
func (s *Server) runBindingOp(ctx context.Context, rec *bindRec) {
	var err error
	if rec.Op == "bind" {
		_, err = s.doBind(ctx, rec)
	} else {
		err = s.doUnbind(ctx, rec)
	}
	if err != nil && ctx.Err() == nil {
		rec.State, rec.Desc = stateFailed, err.Error()
		_ = s.putBind(context.WithoutCancel(ctx), rec)
	}
}

func (s *Server) unbind(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	iid, bid := r.PathValue("iid"), r.PathValue("bid")
	q := r.URL.Query()
	accepts, err := acceptsIncomplete(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	if q.Get("service_id") == "" || q.Get("plan_id") == "" {
		badRequest(w, "the query parameters service_id and plan_id are required")
		return
	}
	cur, err := s.getBind(ctx, iid, bid)
	if errors.Is(err, state.ErrNotFound) {
		empty(w, http.StatusGone)
		return
	}
	if err != nil {
		failErr(w, err)
		return
	}
	inst, err := s.getLive(ctx, iid)
	if err != nil {
		empty(w, http.StatusGone)
		return
	}
	if inst.ServiceID != q.Get("service_id") || inst.PlanID != q.Get("plan_id") {
		badRequest(w, "service_id and plan_id do not match the service instance's")
		return
	}
	switch {
	case cur.Op == "bind" && cur.State == stateInProgress:
		concurrency(w, "the binding is being created")
		return
	case cur.Op == "unbind" && cur.State == stateInProgress:
		if accepts {
			writeJSON(w, http.StatusAccepted, map[string]string{"operation": cur.OpID})
		} else {
			concurrency(w, "the binding is being deleted")
		}
		return
	}
	hold := s.hold(bindKey(iid, bid))
	defer hold.done()
	if !hold.owned {
		concurrency(w, "another operation on the binding is running")
		return
	}
	rec := *cur
	rec.Op, rec.OpID, rec.State, rec.Desc = "unbind", newOpID("unbind"), stateInProgress, ""
	if err := s.putBind(ctx, &rec); err != nil {
		failErr(w, err)
		return
	}
	if s.cfg.Async && accepts {
		hold.spawn(func(ctx context.Context) { s.runBindingOp(ctx, &rec) })
		writeJSON(w, http.StatusAccepted, map[string]string{"operation": rec.OpID})
		return
	}
	if err := s.doUnbind(ctx, &rec); err != nil {
		rec.State, rec.Desc = stateFailed, err.Error()
		_ = s.putBind(context.WithoutCancel(ctx), &rec)
		failErr(w, err)
		return
	}
	empty(w, http.StatusOK)
}

func (s *Server) getBinding(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	cur, err := s.getBind(ctx, r.PathValue("iid"), r.PathValue("bid"))
	if errors.Is(err, state.ErrNotFound) || (err == nil && (cur.Op != "bind" || cur.State != stateSucceeded)) {
		fail(w, http.StatusNotFound, "NotFound", "no such binding (or its creation has not completed)")
		return
	}
	if err != nil {
		failErr(w, err)
		return
	}
	inst, err := s.getLive(ctx, cur.InstanceID)
	if err != nil {
		fail(w, http.StatusNotFound, "NotFound", "no such service instance")
		return
	}
	creds, err := s.credentials(ctx, inst, cur)
	if err != nil {
		failErr(w, err)
		return
	}
	out := map[string]any{"credentials": creds}
	if len(cur.Raw) > 0 {
		out["parameters"] = cur.Raw
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) bindingLastOperation(w http.ResponseWriter, r *http.Request) {
	cur, err := s.getBind(r.Context(), r.PathValue("iid"), r.PathValue("bid"))
	if errors.Is(err, state.ErrNotFound) {
		empty(w, http.StatusGone)
		return
	}
	if err != nil {
		failErr(w, err)
		return
	}
	if op := r.URL.Query().Get("operation"); op != "" && op != cur.OpID {
		badRequest(w, "operation %q is not the last operation of this binding", op)
		return
	}
	answerState(w, cur.State, cur.Desc)
}
