package sdk

import (
	"context"

	"github.com/berthpaas/berth/plugins/broker"
)

// Binding is a binding that exists on the server, for Import.
type Binding struct {
	Request     broker.BindRequest
	Credentials map[string]string
}

// Import records in s instances and bindings that exist on the server but
// that s may not know of: those made by a broker that kept its records
// elsewhere (an earlier version of it, say). A record s already has is left
// as it is, so Import can be run again. The caller holds whatever lock keeps
// other brokers from changing these instances meanwhile.
func Import(ctx context.Context, s Store, instances []broker.ProvisionRequest, bindings []Binding) error {
	for _, req := range instances {
		if err := putNew(ctx, s, instanceKey(req.InstanceID), instanceRecord{Request: req}); err != nil {
			return err
		}
	}
	for _, b := range bindings {
		rec := bindingRecord{AppName: b.Request.AppName, Params: b.Request.Params, Credentials: b.Credentials}
		if err := putNew(ctx, s, bindingKey(b.Request.InstanceID, b.Request.BindingID), rec); err != nil {
			return err
		}
	}
	return nil
}

func putNew(ctx context.Context, s Store, key string, v any) error {
	if _, ok, err := s.Get(ctx, key); err != nil || ok {
		return err
	}
	return put(ctx, s, key, v)
}
