// Package broker is the contract between Berth and its service brokers: the
// Broker interface (the Open Service Broker API's verbs plus Configure), the
// request and response types, the sentinel errors, and the go-plugin glue
// (Handshake, PluginMap, GRPCPlugin) that carries them over gRPC.
//
// It follows go-plugin's examples/grpc layout: the host (Berth) and every Go
// plugin import this one package. The wire protocol (version 2) is the gRPC
// service of proto/broker.proto, from which plugins in any language are
// built (plugins/sdk/examples/python); this package converts between its
// messages (package brokerpb) and the Go types below. Berth still speaks
// version 1, JSON-encoded Go types over a hand-described service, to plugins
// built before version 2 (VersionedPlugins, grpc_v1.go).
//
// Semantics (OSB):
//   - Provision and Bind are idempotent by ID: the same ID with the same
//     parameters succeeds again with AlreadyExisted set (and Bind returns the
//     same credentials); the same ID with different parameters is ErrConflict.
//   - Deprovision of a missing instance and Unbind of a missing binding return
//     ErrGone, which the platform treats as success.
//   - Bind on a missing instance is ErrNotFound.
//   - Invalid IDs, parameters or settings are ErrBadRequest.
//
// The sentinels survive the gRPC boundary: on the client side errors.Is works
// on what a plugin returned.
package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/berthpaas/berth/names"
)

// Broker is implemented by every service broker (built-in or third party).
type Broker interface {
	// Configure is called once after the plugin starts (and again if the
	// service's settings change) with the service definition's settings,
	// e.g. the address and admin credentials of the backing server.
	Configure(ctx context.Context, settings map[string]string) error
	Catalog(ctx context.Context) (*Catalog, error)
	Provision(ctx context.Context, req ProvisionRequest) (*ProvisionResponse, error)
	// Deprovision of a missing instance returns ErrGone.
	Deprovision(ctx context.Context, req DeprovisionRequest) (*DeprovisionResponse, error)
	// Bind on a missing instance returns ErrNotFound.
	Bind(ctx context.Context, req BindRequest) (*BindResponse, error)
	// Unbind of a missing binding returns ErrGone.
	Unbind(ctx context.Context, req UnbindRequest) error
	LastOperation(ctx context.Context, req LastOperationRequest) (*LastOperationResponse, error)
}

// Catalog lists the services and plans a broker offers.
type Catalog struct {
	Services []Service `json:"services"`
}

// Service is one offering of a broker.
type Service struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Plans       []Plan `json:"plans"`
}

// Plan is a tier of a service.
type Plan struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// ProvisionRequest asks for a new service instance.
type ProvisionRequest struct {
	InstanceID string            `json:"instance_id"`
	ServiceID  string            `json:"service_id"`
	PlanID     string            `json:"plan_id"`
	Params     map[string]string `json:"params,omitempty"`
}

// ProvisionResponse answers a ProvisionRequest. When Async is set the
// platform polls LastOperation with Operation until it is no longer
// "in progress".
type ProvisionResponse struct {
	Async          bool   `json:"async"`
	Operation      string `json:"operation,omitempty"`
	AlreadyExisted bool   `json:"already_existed"`
}

// DeprovisionRequest asks to delete an instance and everything it owns.
type DeprovisionRequest struct {
	InstanceID string `json:"instance_id"`
}

// DeprovisionResponse answers a DeprovisionRequest.
type DeprovisionResponse struct {
	Async     bool   `json:"async"`
	Operation string `json:"operation,omitempty"`
}

// BindRequest asks for credentials on an instance for one app.
type BindRequest struct {
	InstanceID string            `json:"instance_id"`
	BindingID  string            `json:"binding_id"`
	AppName    string            `json:"app_name"`
	Params     map[string]string `json:"params,omitempty"`
}

// BindResponse carries the binding's credentials as environment variables.
type BindResponse struct {
	Credentials    map[string]string `json:"credentials"`
	AlreadyExisted bool              `json:"already_existed"`
}

// UnbindRequest asks to revoke a binding's credentials.
type UnbindRequest struct {
	InstanceID string `json:"instance_id"`
	BindingID  string `json:"binding_id"`
}

// LastOperationRequest polls an asynchronous operation.
type LastOperationRequest struct {
	InstanceID string `json:"instance_id"`
	Operation  string `json:"operation,omitempty"`
}

// Operation states reported by LastOperation.
const (
	StateInProgress = "in progress"
	StateSucceeded  = "succeeded"
	StateFailed     = "failed"
)

// LastOperationResponse reports the state of an operation.
type LastOperationResponse struct {
	State       string `json:"state"`
	Description string `json:"description,omitempty"`
}

// Sentinel errors. Brokers return them (wrapped with fmt.Errorf("%w") if they
// like); they keep their identity across the plugin boundary.
var (
	// ErrGone: the instance or binding does not exist (Deprovision, Unbind,
	// LastOperation). The platform treats it as success.
	ErrGone = errors.New("gone")
	// ErrConflict: the ID exists with different parameters.
	ErrConflict = errors.New("conflict")
	// ErrNotFound: the instance named by a Bind does not exist.
	ErrNotFound = errors.New("not found")
	// ErrBadRequest: invalid IDs, parameters or settings.
	ErrBadRequest = errors.New("bad request")
	// ErrUnavailable: the broker could not be reached (the plugin process
	// died, or the backing server is down).
	ErrUnavailable = errors.New("broker unavailable")
)

// ValidID reports whether id is a valid instance or binding ID, or broker
// plugin name: names.BrokerID's rule (1 to 63 characters from [a-z0-9-],
// starting with a letter, not ending with a hyphen).
func ValidID(id string) bool { return names.BrokerID(id) == nil }

// CheckID returns an error if id is not a valid ID (ValidID): it is
// ErrBadRequest (errors.Is) and a *names.Error whose Kind is kind, e.g.
// "instance_id" (errors.As).
func CheckID(kind, id string) error {
	err := names.BrokerID(id)
	var ne *names.Error
	if !errors.As(err, &ne) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrBadRequest, &names.Error{Kind: kind, Value: id, Reason: ne.Reason})
}

// EqualParams reports whether two parameter maps are equal (nil and empty
// are equal).
func EqualParams(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
