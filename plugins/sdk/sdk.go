// Package sdk lets a third party write a Berth service broker in a few lines.
//
// The short way: implement Provider (create/delete an instance, create/delete
// a binding's credentials on your server) and serve sdk.NewBroker(provider,
// store), which does ID validation, idempotency, conflicts, "gone" answers
// and per-instance locking. The built-in brokers (plugins/mysql, redis,
// mongodb) are written this way, each keeping its records and its lock on
// its own server (plugins/sdk/mysqlstore, redisstore, mongostore; see
// Connector). The full way: implement broker.Broker yourself (embed
// sdk.Defaults for Configure and LastOperation) using the Check* and error
// helpers. Either way, main calls sdk.Serve. Build the binary as
// <plugin_dir>/berth-broker-<name>; Berth starts it as a go-plugin subprocess
// (gRPC, magic-cookie handshake, AutoMTLS) and restarts it if it dies.
//
// Logs written through sdk.Logger reach Berth's log (hclog, key/value).
// Never log secret values.
//
// See plugins/sdk/example for a complete in-memory broker and its test.
package sdk

import (
	"context"
	"fmt"
	"os"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Re-exported sentinels, so a broker needs only this package for its errors.
var (
	ErrGone       = broker.ErrGone
	ErrConflict   = broker.ErrConflict
	ErrNotFound   = broker.ErrNotFound
	ErrBadRequest = broker.ErrBadRequest
)

// Logger returns the logger a plugin should use: JSON on stderr, which
// go-plugin forwards into the host's hclog logger under the plugin's name.
func Logger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      hclog.Debug,
		JSONFormat: true,
		Output:     os.Stderr,
	})
}

// Serve serves b as a broker plugin and blocks until the host goes away.
// Run by hand (not by Berth), the binary prints a short message and exits.
func Serve(b broker.Broker) {
	ServeWithLogger(b, Logger("broker"))
}

// ServeWithLogger is Serve with the plugin-side logger of go-plugin itself.
func ServeWithLogger(b broker.Broker, logger hclog.Logger) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: broker.Handshake,
		Plugins: map[string]plugin.Plugin{
			broker.PluginName: &broker.GRPCPlugin{Impl: b},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     logger,
	})
}

// Defaults gives a synchronous broker's trivial verbs: Configure accepts any
// settings and LastOperation reports "succeeded". Embed it and override.
type Defaults struct{}

// Configure accepts any settings.
func (Defaults) Configure(context.Context, map[string]string) error { return nil }

// LastOperation reports success: a synchronous broker has nothing pending.
func (Defaults) LastOperation(context.Context, broker.LastOperationRequest) (*broker.LastOperationResponse, error) {
	return &broker.LastOperationResponse{State: broker.StateSucceeded}, nil
}

// CheckProvision validates a ProvisionRequest's IDs against cat (empty
// ServiceID/PlanID mean the catalog's first service/plan) and returns the
// request with them filled in.
func CheckProvision(req broker.ProvisionRequest, cat *broker.Catalog) (broker.ProvisionRequest, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return req, err
	}
	if cat == nil || len(cat.Services) == 0 {
		return req, fmt.Errorf("%w: broker has an empty catalog", ErrBadRequest)
	}
	var svc *broker.Service
	for i := range cat.Services {
		if req.ServiceID == "" || cat.Services[i].ID == req.ServiceID || cat.Services[i].Name == req.ServiceID {
			svc = &cat.Services[i]
			break
		}
	}
	if svc == nil {
		return req, fmt.Errorf("%w: unknown service_id %q", ErrBadRequest, req.ServiceID)
	}
	req.ServiceID = svc.ID
	for _, p := range svc.Plans {
		if req.PlanID == "" || p.ID == req.PlanID || p.Name == req.PlanID {
			req.PlanID = p.ID
			return req, nil
		}
	}
	return req, fmt.Errorf("%w: unknown plan_id %q for service %q", ErrBadRequest, req.PlanID, svc.ID)
}

// CheckBind validates a BindRequest's or UnbindRequest's IDs.
func CheckBind(instanceID, bindingID string) error {
	if err := broker.CheckID("instance_id", instanceID); err != nil {
		return err
	}
	return broker.CheckID("binding_id", bindingID)
}

// Gone returns an ErrGone error for a missing instance or binding.
func Gone(kind, id string) error { return fmt.Errorf("%w: %s %q does not exist", ErrGone, kind, id) }

// NotFound returns an ErrNotFound error for a missing instance.
func NotFound(id string) error {
	return fmt.Errorf("%w: instance %q does not exist", ErrNotFound, id)
}

// Conflict returns an ErrConflict error for an ID that exists with other
// parameters.
func Conflict(kind, id string) error {
	return fmt.Errorf("%w: %s %q already exists with different parameters", ErrConflict, kind, id)
}
