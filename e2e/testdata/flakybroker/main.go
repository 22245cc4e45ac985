// Command flakybroker is an external service broker for the services e2e
// tests, built with plugins/sdk as <plugin_dir>/berth-broker-flaky. It keeps
// instances and bindings in memory and misbehaves on request, through the
// service's settings:
//
//	crash_in  a verb (provision, deprovision, bind, unbind, lastoperation): the process exits there
//	hang_in   a verb: the call never answers (it ignores its context)
//
// With neither setting it is a well-behaved broker whose bindings get
// FLAKY_INSTANCE and FLAKY_TOKEN.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
)

type flaky struct {
	sdk.Defaults
	mu        sync.Mutex
	crashIn   string
	hangIn    string
	instances map[string]map[string]broker.BindResponse // instance -> binding -> credentials
}

var _ broker.Broker = (*flaky)(nil)

var catalog = &broker.Catalog{Services: []broker.Service{{ID: "flaky", Name: "flaky",
	Description: "In-memory broker that fails on request", Plans: []broker.Plan{{ID: "flaky-free", Name: "free"}}}}}

func (f *flaky) Configure(_ context.Context, settings map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashIn, f.hangIn = settings["crash_in"], settings["hang_in"]
	return nil
}

// misbehave crashes or hangs if verb is the one named in the settings.
func (f *flaky) misbehave(verb string) {
	f.mu.Lock()
	crash, hang := f.crashIn == verb, f.hangIn == verb
	f.mu.Unlock()
	if crash {
		os.Exit(3)
	}
	if hang {
		select {} // never answers; the host's call timeout must fire
	}
}

func (f *flaky) Catalog(context.Context) (*broker.Catalog, error) { return catalog, nil }

func (f *flaky) Provision(_ context.Context, req broker.ProvisionRequest) (*broker.ProvisionResponse, error) {
	req, err := sdk.CheckProvision(req, catalog)
	if err != nil {
		return nil, err
	}
	f.misbehave("provision")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.instances[req.InstanceID]; ok {
		return &broker.ProvisionResponse{AlreadyExisted: true}, nil
	}
	f.instances[req.InstanceID] = map[string]broker.BindResponse{}
	return &broker.ProvisionResponse{}, nil
}

func (f *flaky) Deprovision(_ context.Context, req broker.DeprovisionRequest) (*broker.DeprovisionResponse, error) {
	f.misbehave("deprovision")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.instances[req.InstanceID]; !ok {
		return nil, sdk.Gone("instance", req.InstanceID)
	}
	delete(f.instances, req.InstanceID)
	return &broker.DeprovisionResponse{}, nil
}

func (f *flaky) Bind(_ context.Context, req broker.BindRequest) (*broker.BindResponse, error) {
	if err := sdk.CheckBind(req.InstanceID, req.BindingID); err != nil {
		return nil, err
	}
	f.misbehave("bind")
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.instances[req.InstanceID]
	if !ok {
		return nil, sdk.NotFound(req.InstanceID)
	}
	if b, ok := in[req.BindingID]; ok {
		b.AlreadyExisted = true
		return &b, nil
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	b := broker.BindResponse{Credentials: map[string]string{"FLAKY_INSTANCE": req.InstanceID, "FLAKY_TOKEN": hex.EncodeToString(tok)}}
	in[req.BindingID] = b
	return &b, nil
}

func (f *flaky) Unbind(_ context.Context, req broker.UnbindRequest) error {
	f.misbehave("unbind")
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.instances[req.InstanceID]
	if !ok {
		return sdk.Gone("binding", req.BindingID)
	}
	if _, ok := in[req.BindingID]; !ok {
		return sdk.Gone("binding", req.BindingID)
	}
	delete(in, req.BindingID)
	return nil
}

func (f *flaky) LastOperation(_ context.Context, req broker.LastOperationRequest) (*broker.LastOperationResponse, error) {
	f.misbehave("lastoperation")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.instances[req.InstanceID]; !ok {
		return nil, sdk.Gone("instance", req.InstanceID)
	}
	return &broker.LastOperationResponse{State: broker.StateSucceeded}, nil
}

func main() { sdk.Serve(&flaky{instances: map[string]map[string]broker.BindResponse{}}) }
