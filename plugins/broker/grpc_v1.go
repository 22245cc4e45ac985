package broker

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

// Protocol version 1: the service berth.broker.v1.Broker, described by hand
// (ServiceDescV1) with the JSON encoding of this package's Go types as its
// messages, and sentinels carried as google.rpc.ErrorInfo details. Berth
// still speaks it to plugins built before version 2 (see VersionedPlugins);
// new plugins speak version 2 (broker.proto).

// ProtocolVersionV1 is the handshake version of the JSON protocol.
const ProtocolVersionV1 = 1

// GRPCPluginV1 is GRPCPlugin for protocol version 1.
//
// Deprecated: plugins serve version 2 (GRPCPlugin); this one remains so that
// Berth can talk to plugins built before it.
type GRPCPluginV1 struct {
	plugin.Plugin
	Impl Broker
}

// GRPCServer registers the version 1 broker service on s.
func (p *GRPCPluginV1) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("broker: GRPCPluginV1.Impl is nil")
	}
	s.RegisterService(&ServiceDescV1, p.Impl)
	return nil
}

// GRPCClient returns a Broker that calls a version 1 plugin over conn.
func (p *GRPCPluginV1) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return NewClientV1(conn), nil
}

var _ plugin.GRPCPlugin = (*GRPCPluginV1)(nil)

// codecName is the gRPC content-subtype of the version 1 service: messages
// are the JSON encoding of this package's Go types.
const codecName = "berthjson"

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return codecName }

func init() { encoding.RegisterCodec(jsonCodec{}) }

// serviceNameV1 is the fully qualified gRPC service name of version 1.
const serviceNameV1 = "berth.broker.v1.Broker"

type empty struct{}

type configureRequest struct {
	Settings map[string]string `json:"settings"`
}

// ServiceDescV1 describes the version 1 broker service. Its handlers call a
// Broker.
var ServiceDescV1 = grpc.ServiceDesc{
	ServiceName: serviceNameV1,
	HandlerType: (*Broker)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Configure", Handler: handler("Configure", func(ctx context.Context, b Broker, req *configureRequest) (*empty, error) {
			return &empty{}, b.Configure(ctx, req.Settings)
		})},
		{MethodName: "Catalog", Handler: handler("Catalog", func(ctx context.Context, b Broker, _ *empty) (*Catalog, error) {
			return b.Catalog(ctx)
		})},
		{MethodName: "Provision", Handler: handler("Provision", func(ctx context.Context, b Broker, req *ProvisionRequest) (*ProvisionResponse, error) {
			return b.Provision(ctx, *req)
		})},
		{MethodName: "Deprovision", Handler: handler("Deprovision", func(ctx context.Context, b Broker, req *DeprovisionRequest) (*DeprovisionResponse, error) {
			return b.Deprovision(ctx, *req)
		})},
		{MethodName: "Bind", Handler: handler("Bind", func(ctx context.Context, b Broker, req *BindRequest) (*BindResponse, error) {
			return b.Bind(ctx, *req)
		})},
		{MethodName: "Unbind", Handler: handler("Unbind", func(ctx context.Context, b Broker, req *UnbindRequest) (*empty, error) {
			return &empty{}, b.Unbind(ctx, *req)
		})},
		{MethodName: "LastOperation", Handler: handler("LastOperation", func(ctx context.Context, b Broker, req *LastOperationRequest) (*LastOperationResponse, error) {
			return b.LastOperation(ctx, *req)
		})},
	},
	Streams:  []grpc.StreamDesc{},
	Metadata: "berth/plugins/broker",
}

type methodHandler = func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error)

// handler adapts a typed call on a Broker to a grpc.MethodDesc handler. It
// turns errors (and panics) into gRPC statuses that NewClientV1 maps back.
func handler[Req, Resp any](method string, call func(context.Context, Broker, *Req) (*Resp, error)) methodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := new(Req)
		if err := dec(req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "bad request: decoding message: %v", err)
		}
		invoke := func(ctx context.Context, r any) (resp any, err error) {
			defer recoverStatus(&err)
			out, err := call(ctx, srv.(Broker), r.(*Req))
			if err != nil {
				return nil, toStatus(err)
			}
			if out == nil {
				out = new(Resp)
			}
			return out, nil
		}
		if interceptor == nil {
			return invoke(ctx, req)
		}
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + serviceNameV1 + "/" + method}
		return interceptor(ctx, req, info, invoke)
	}
}

// ClientV1 is the host side of the version 1 service.
type ClientV1 struct {
	conn grpc.ClientConnInterface
}

// NewClientV1 returns a Broker calling the version 1 service on conn.
func NewClientV1(conn grpc.ClientConnInterface) *ClientV1 { return &ClientV1{conn: conn} }

var _ Broker = (*ClientV1)(nil)

func (c *ClientV1) invoke(ctx context.Context, method string, req, resp any) error {
	err := c.conn.Invoke(ctx, "/"+serviceNameV1+"/"+method, req, resp, grpc.CallContentSubtype(codecName))
	return fromStatus(err)
}

// Configure implements Broker.
func (c *ClientV1) Configure(ctx context.Context, settings map[string]string) error {
	return c.invoke(ctx, "Configure", &configureRequest{Settings: settings}, &empty{})
}

// Catalog implements Broker.
func (c *ClientV1) Catalog(ctx context.Context) (*Catalog, error) {
	out := new(Catalog)
	if err := c.invoke(ctx, "Catalog", &empty{}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Provision implements Broker.
func (c *ClientV1) Provision(ctx context.Context, req ProvisionRequest) (*ProvisionResponse, error) {
	out := new(ProvisionResponse)
	if err := c.invoke(ctx, "Provision", &req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Deprovision implements Broker.
func (c *ClientV1) Deprovision(ctx context.Context, req DeprovisionRequest) (*DeprovisionResponse, error) {
	out := new(DeprovisionResponse)
	if err := c.invoke(ctx, "Deprovision", &req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Bind implements Broker.
func (c *ClientV1) Bind(ctx context.Context, req BindRequest) (*BindResponse, error) {
	out := new(BindResponse)
	if err := c.invoke(ctx, "Bind", &req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Unbind implements Broker.
func (c *ClientV1) Unbind(ctx context.Context, req UnbindRequest) error {
	return c.invoke(ctx, "Unbind", &req, &empty{})
}

// LastOperation implements Broker.
func (c *ClientV1) LastOperation(ctx context.Context, req LastOperationRequest) (*LastOperationResponse, error) {
	out := new(LastOperationResponse)
	if err := c.invoke(ctx, "LastOperation", &req, out); err != nil {
		return nil, err
	}
	return out, nil
}
