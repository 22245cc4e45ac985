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

type provisionBody struct {
	ServiceID        json.RawMessage `json:"service_id"`
	PlanID           json.RawMessage `json:"plan_id"`
	OrganizationGUID json.RawMessage `json:"organization_guid"`
	SpaceGUID        json.RawMessage `json:"space_guid"`
	Context          json.RawMessage `json:"context"`
	Parameters       json.RawMessage `json:"parameters"`
	MaintenanceInfo  json.RawMessage `json:"maintenance_info"`
}

func (s *Server) provision(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("iid")
	accepts, err := acceptsIncomplete(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	var in provisionBody
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
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"organization_guid", in.OrganizationGUID}, {"space_guid", in.SpaceGUID}} {
		if _, err := reqString(f.name, f.raw); err != nil {
			badRequest(w, "%v", err)
			return
		}
	}
	if err := object("context", in.Context); err != nil {
		badRequest(w, "%v", err)
		return
	}
	if err := object("maintenance_info", in.MaintenanceInfo); err != nil {
		badRequest(w, "%v", err)
		return
	}
	ps, err := params(in.Parameters)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	off, brokerPlan, err := s.resolve(ctx, serviceID, planID)
	if err != nil {
		if _, ok := engine.AsError(err); ok {
			failErr(w, err)
		} else {
			badRequest(w, "%v", err)
		}
		return
	}
	if s.cfg.Async && !accepts {
		asyncRequired(w)
		return
	}
	rec := &instRec{ID: id, Berth: berthInstance(id), Service: off.svc.Name, ServiceID: serviceID, PlanID: planID,
		BrokerSvc: off.brokerSvc, BrokerPln: brokerPlan, Params: ps, Owner: owner(r),
		Op: "provision", OpID: newOpID("provision"), State: stateInProgress, Updated: time.Now().UTC()}
	if len(in.Parameters) > 0 && string(in.Parameters) != "null" {
		rec.Raw = in.Parameters
	}
	hold := s.hold(instKey(id))
	defer hold.done()
	for attempt := 0; ; attempt++ {
		if attempt > 8 {
			concurrency(w, "the instance is being changed by other requests; try again")
			return
		}
		cur, err := s.getInst(ctx, id)
		if errors.Is(err, state.ErrNotFound) {
			if !hold.owned {
				concurrency(w, "another operation on the service instance is ending; try again")
				return
			}
			if _, err := state.Create(ctx, s.store(), instKey(id), rec); errors.Is(err, state.ErrExists) {
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
		same := cur.ServiceID == serviceID && cur.PlanID == planID && broker.EqualParams(cur.Params, ps)
		switch {
		case cur.Op == "provision" && cur.State == stateFailed, tombstone(cur):
			// A provision that failed left nothing (the engine mitigated
			// the orphan), a deprovision that ended neither: this request
			// starts over.
			if err := state.Delete(ctx, s.store(), instKey(id)); err != nil && !errors.Is(err, state.ErrNotFound) {
				failErr(w, err)
				return
			}
			continue
		case cur.Op == "deprovision":
			concurrency(w, "the service instance is being deprovisioned")
			return
		case !same:
			fail(w, http.StatusConflict, "Conflict", "a service instance with this id exists with other attributes (service, plan or parameters)")
			return
		case cur.State == stateSucceeded:
			empty(w, http.StatusOK)
			return
		case accepts && s.cfg.Async:
			writeJSON(w, http.StatusAccepted, map[string]string{"operation": cur.OpID})
			return
		default:
			concurrency(w, "the service instance is being provisioned")
			return
		}
	}
	if s.cfg.Async {
		hold.spawn(func(ctx context.Context) { s.runInstanceOp(ctx, rec) })
		writeJSON(w, http.StatusAccepted, map[string]string{"operation": rec.OpID})
		return
	}
	if err := s.doProvision(ctx, rec); err != nil {
		_ = state.Delete(context.WithoutCancel(ctx), s.store(), instKey(id))
		failErr(w, err)
		return
	}
	if rec.State == stateInProgress {
		// The Berth broker is asynchronous and has not finished: the
		// engine's service sweep polls it, last_operation reports it.
		asyncRequired(w)
		return
	}
	empty(w, http.StatusCreated)
}

// doProvision provisions the Berth instance of rec and records the
// outcome (rec.State succeeded, or still in progress when the Berth
// broker's own asynchronous provision has not ended).
func (s *Server) doProvision(ctx context.Context, rec *instRec) error {
	svcs, err := s.eng.TeamServices(ctx, s.cfg.Team)
	if err != nil {
		return err
	}
	var svc *state.Service
	for _, x := range svcs {
		if x.Name == rec.Service {
			svc = x
		}
	}
	if svc == nil {
		return engine.NotFound("service %q is no longer granted to team %q", rec.Service, s.cfg.Team)
	}
	inst, err := s.eng.ProvisionForTeam(ctx, s.cfg.Team, rec.Owner, rec.Berth, svc, rec.BrokerSvc, rec.BrokerPln, rec.Params)
	if err != nil {
		return err
	}
	if inst.State == state.InstanceReady {
		rec.State, rec.Desc = stateSucceeded, ""
	}
	return s.putInst(context.WithoutCancel(ctx), rec)
}

// runInstanceOp runs (or resumes) rec's operation in the background.
func (s *Server) runInstanceOp(ctx context.Context, rec *instRec) {
	switch rec.Op {
	case "provision":
		if inst, _, err := s.eng.TeamInstance(ctx, s.cfg.Team, rec.Berth); err == nil {
			// Resumed: the Berth instance exists; the engine finishes it.
			if inst.State == state.InstanceReady {
				rec.State = stateSucceeded
				_ = s.putInst(context.WithoutCancel(ctx), rec)
			}
			return
		}
		err := s.doProvision(ctx, rec)
		if e, ok := engine.AsError(err); ok && e.Kind == engine.KindConflict {
			// Another Berth server resumed it first: its Berth instance
			// exists, and settle follows it.
			if _, _, ierr := s.eng.TeamInstance(ctx, s.cfg.Team, rec.Berth); ierr == nil {
				return
			}
		}
		if err != nil && ctx.Err() == nil {
			rec.State, rec.Desc = stateFailed, err.Error()
			_ = s.putInst(context.WithoutCancel(ctx), rec)
		}
	case "deprovision":
		_, err := s.doDeprovision(ctx, rec)
		if err != nil && ctx.Err() == nil {
			rec.State, rec.Desc = stateFailed, err.Error()
			_ = s.putInst(context.WithoutCancel(ctx), rec)
		}
	}
}

func (s *Server) deprovision(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("iid")
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
	cur, err := s.getLive(ctx, id)
	if errors.Is(err, state.ErrNotFound) {
		empty(w, http.StatusGone)
		return
	}
	if err != nil {
		failErr(w, err)
		return
	}
	if cur.ServiceID != q.Get("service_id") || cur.PlanID != q.Get("plan_id") {
		badRequest(w, "service_id and plan_id do not match the service instance's")
		return
	}
	if s.cfg.Async && !accepts {
		asyncRequired(w)
		return
	}
	switch {
	case cur.Op == "provision" && cur.State == stateInProgress:
		concurrency(w, "the service instance is being provisioned")
		return
	case cur.Op == "deprovision" && cur.State == stateInProgress:
		if accepts && s.cfg.Async {
			writeJSON(w, http.StatusAccepted, map[string]string{"operation": cur.OpID})
		} else {
			concurrency(w, "the service instance is being deprovisioned")
		}
		return
	}
	hold := s.hold(instKey(id))
	defer hold.done()
	if !hold.owned {
		concurrency(w, "another operation on the service instance is running")
		return
	}
	rec := *cur
	rec.Op, rec.OpID, rec.State, rec.Desc = "deprovision", newOpID("deprovision"), stateInProgress, ""
	idx := uint64(0)
	if _, i, err := state.Get[instRec](ctx, s.store(), instKey(id)); err == nil {
		idx = i
	}
	rec.Updated = time.Now().UTC()
	if _, err := state.Put(ctx, s.store(), instKey(id), &rec, idx); err != nil {
		concurrency(w, "the service instance is being changed by another request")
		return
	}
	if s.cfg.Async {
		hold.spawn(func(ctx context.Context) { s.runInstanceOp(ctx, &rec) })
		writeJSON(w, http.StatusAccepted, map[string]string{"operation": rec.OpID})
		return
	}
	pending, err := s.doDeprovision(ctx, &rec)
	if err != nil {
		rec.State, rec.Desc = stateFailed, err.Error()
		_ = s.putInst(context.WithoutCancel(ctx), &rec)
		failErr(w, err)
		return
	}
	if pending {
		// The Berth broker deprovisions asynchronously and has not
		// finished: the engine's service sweep polls it.
		asyncRequired(w)
		return
	}
	empty(w, http.StatusOK)
}

// doDeprovision deprovisions rec's Berth instance and removes the records
// of the instance and its bindings (rec.State stays in progress while the
// Berth broker's own asynchronous deprovision runs).
func (s *Server) doDeprovision(ctx context.Context, rec *instRec) (pending bool, err error) {
	pending, err = s.eng.DeprovisionForTeam(ctx, s.cfg.Team, rec.Berth)
	if e, ok := engine.AsError(err); ok && e.Kind == engine.KindNotFound {
		err = nil
	}
	if err != nil {
		return false, err
	}
	if pending {
		return true, s.putInst(context.WithoutCancel(ctx), rec)
	}
	return false, s.bury(context.WithoutCancel(ctx), rec)
}

// bury records a finished deprovision: the instance's bindings are
// forgotten and its record becomes a tombstone (see tombstone).
func (s *Server) bury(ctx context.Context, rec *instRec) error {
	if err := s.forgetBindings(ctx, rec.ID); err != nil {
		return err
	}
	rec.State, rec.Desc = stateSucceeded, ""
	rec.Params, rec.Raw = nil, nil
	return s.putInst(ctx, rec)
}

// forgetBindings removes the records of an instance's bindings.
func (s *Server) forgetBindings(ctx context.Context, id string) error {
	pairs, _, err := s.store().List(ctx, bindPrefix+digest(id)[:40]+"/", nil)
	if err != nil {
		return err
	}
	for _, p := range pairs {
		_, _ = s.store().Delete(ctx, p.Key)
	}
	return nil
}

// settleGrace is how long a provision's record may be in progress with
// no Berth instance and no operation running in this process before
// last_operation reports it failed: another Berth server (sharing the
// Store) may be running it, and the engine's provision saga is bounded
// well within it (plugins.call_timeout plus a margin).
const settleGrace = 2 * time.Minute

// settleGrace is settleGrace, or three provision sagas if longer.
func (s *Server) settleGrace() time.Duration {
	if d := 3 * (s.eng.Config().Plugins.CallTimeoutDur + 5*time.Second); d > settleGrace {
		return d
	}
	return settleGrace
}

// settle brings an in-progress record up to date with its Berth instance
// when no operation runs here for it (Berth restarted, or the Berth
// broker's own asynchronous operation is being polled by the engine).
func (s *Server) settle(ctx context.Context, rec *instRec) (*instRec, error) {
	s.mu.Lock()
	running := s.running[instKey(rec.ID)]
	s.mu.Unlock()
	if rec.State != stateInProgress || running {
		return rec, nil
	}
	inst, _, err := s.eng.TeamInstance(ctx, s.cfg.Team, rec.Berth)
	gone := false
	if e, ok := engine.AsError(err); ok && e.Kind == engine.KindNotFound {
		gone, err = true, nil
	}
	if err != nil {
		return rec, nil
	}
	switch {
	case rec.Op == "provision" && gone && time.Since(rec.Updated) < s.settleGrace():
		// Another Berth server may be running it.
		return rec, nil
	case rec.Op == "provision" && gone:
		rec.State, rec.Desc = stateFailed, "the provision failed"
	case rec.Op == "provision" && inst.State == state.InstanceReady:
		rec.State = stateSucceeded
	case rec.Op == "deprovision" && gone:
		return rec, s.bury(ctx, rec)
	default:
		return rec, nil
	}
	return rec, s.putInst(ctx, rec)
}

func (s *Server) lastOperation(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	cur, err := s.getInst(ctx, r.PathValue("iid"))
	if errors.Is(err, state.ErrNotFound) {
		empty(w, http.StatusGone)
		return
	}
	if err != nil {
		failErr(w, err)
		return
	}
	op := r.URL.Query().Get("operation")
	if tombstone(cur) && op != cur.OpID {
		// Only the poller of the deprovision hears "succeeded".
		empty(w, http.StatusGone)
		return
	}
	if op != "" && op != cur.OpID {
		badRequest(w, "operation %q is not the last operation of this service instance", op)
		return
	}
	cur, err = s.settle(ctx, cur)
	if err != nil {
		failErr(w, err)
		return
	}
	if tombstone(cur) && op != cur.OpID {
		empty(w, http.StatusGone)
		return
	}
	answerState(w, cur.State, cur.Desc)
}

func answerState(w http.ResponseWriter, st, desc string) {
	out := map[string]string{"state": st}
	if desc != "" {
		out["description"] = desc
	}
	if st == stateInProgress {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getInstance(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	cur, err := s.getLive(ctx, r.PathValue("iid"))
	if err == nil {
		cur, err = s.settle(ctx, cur)
	}
	if errors.Is(err, state.ErrNotFound) || (err == nil && (tombstone(cur) || cur.Op == "provision" && cur.State != stateSucceeded)) {
		fail(w, http.StatusNotFound, "NotFound", "no such service instance (or its provision has not completed)")
		return
	}
	if err != nil {
		failErr(w, err)
		return
	}
	if cur.Op == "deprovision" {
		concurrency(w, "the service instance is being deprovisioned")
		return
	}
	out := map[string]any{"service_id": cur.ServiceID, "plan_id": cur.PlanID}
	if len(cur.Raw) > 0 {
		out["parameters"] = cur.Raw
	}
	writeJSON(w, http.StatusOK, out)
}

type updateBody struct {
	ServiceID      json.RawMessage `json:"service_id"`
	PlanID         json.RawMessage `json:"plan_id"`
	Context        json.RawMessage `json:"context"`
	Parameters     json.RawMessage `json:"parameters"`
	PreviousValues json.RawMessage `json:"previous_values"`
}

// update accepts what changes nothing (a context update, the same plan,
// the same parameters): Berth's brokers cannot change an instance's plan
// or parameters (plan_updateable is false), so such a change is 422.
func (s *Server) update(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if _, err := acceptsIncomplete(r); err != nil {
		badRequest(w, "%v", err)
		return
	}
	var in updateBody
	if err := decode(r, &in); err != nil {
		badRequest(w, "%v", err)
		return
	}
	serviceID, err := reqString("service_id", in.ServiceID)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	planID, err := optString("plan_id", in.PlanID)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"context", in.Context}, {"previous_values", in.PreviousValues}} {
		if err := object(f.name, f.raw); err != nil {
			badRequest(w, "%v", err)
			return
		}
	}
	ps, err := params(in.Parameters)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	cur, err := s.getLive(ctx, r.PathValue("iid"))
	if errors.Is(err, state.ErrNotFound) {
		fail(w, http.StatusNotFound, "NotFound", "no such service instance")
		return
	}
	if err != nil {
		failErr(w, err)
		return
	}
	if cur.ServiceID != serviceID {
		badRequest(w, "service_id does not match the service instance's")
		return
	}
	if cur.State == stateInProgress {
		concurrency(w, "another operation on the service instance is in progress")
		return
	}
	if planID != "" && planID != cur.PlanID {
		fail(w, http.StatusUnprocessableEntity, "PlanChangeNotSupported", "the plan of a service instance cannot be changed (plan_updateable is false)")
		return
	}
	if ps != nil && !broker.EqualParams(ps, cur.Params) {
		fail(w, http.StatusUnprocessableEntity, "ParametersChangeNotSupported", "the parameters of a service instance cannot be changed")
		return
	}
	empty(w, http.StatusOK)
}
