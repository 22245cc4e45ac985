package osbserver

import (
	"context"
	"time"

	"github.com/berthpaas/berth/engine/state"
)

// InjectAcceptedProvision records a provision as a Berth that answered
// 202 and then stopped before doing it would have left it, and returns
// its operation.
func (s *Server) InjectAcceptedProvision(ctx context.Context, id, serviceID, planID string) (string, error) {
	off, bp, err := s.resolve(ctx, serviceID, planID)
	if err != nil {
		return "", err
	}
	rec := &instRec{ID: id, Berth: berthInstance(id), Service: off.svc.Name, ServiceID: serviceID, PlanID: planID,
		BrokerSvc: off.brokerSvc, BrokerPln: bp, Owner: "osb", Op: "provision", OpID: newOpID("provision"),
		State: stateInProgress, Updated: time.Now().UTC()}
	_, err = state.Create(ctx, s.store(), instKey(id), rec)
	return rec.OpID, err
}

// BerthInstance is the Berth instance name of an OSB instance_id.
func BerthInstance(id string) string { return berthInstance(id) }
