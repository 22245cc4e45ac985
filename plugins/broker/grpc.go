package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

// Handshake is shared by Berth and every broker plugin. A plugin binary run
// by hand (without the cookie in its environment) refuses to start.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BERTH_PLUGIN",
	MagicCookieValue: "6f1c0a5e2d7b4c39a8e1f04b9d3c72aa-berth-broker",
}

// PluginName is the key of the broker in PluginMap.
const PluginName = "broker"

// PluginMap is the map of plugins Berth dispenses from a plugin process.
var PluginMap = map[string]plugin.Plugin{
	PluginName: &GRPCPlugin{},
}

// GRPCPlugin implements plugin.GRPCPlugin for Broker. Impl is set on the
// plugin side only.
type GRPCPlugin struct {
	plugin.Plugin
	Impl Broker
}

// GRPCServer registers the broker service on the plugin's gRPC server.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("broker: GRPCPlugin.Impl is nil")
	}
	s.RegisterService(&ServiceDesc, p.Impl)
	return nil
}

// GRPCClient returns a Broker that calls the plugin over conn.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return NewClient(conn), nil
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// codecName is the gRPC content-subtype of the broker service: messages are
// the JSON encoding of this package's Go types.
const codecName = "berthjson"

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return codecName }

func init() { encoding.RegisterCodec(jsonCodec{}) }

// serviceName is the fully qualified gRPC service name.
const serviceName = "berth.broker.v1.Broker"

type empty struct{}

type configureRequest struct {
	Settings map[string]string `json:"settings"`
}

// ServiceDesc describes the broker gRPC service. Its handlers call a Broker.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
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
// turns errors (and panics) into gRPC statuses that NewClient maps back.
func handler[Req, Resp any](method string, call func(context.Context, Broker, *Req) (*Resp, error)) methodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := new(Req)
		if err := dec(req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "bad request: decoding message: %v", err)
		}
		invoke := func(ctx context.Context, r any) (resp any, err error) {
			defer func() {
				if p := recover(); p != nil {
					resp, err = nil, status.Errorf(codes.Internal, "broker panicked: %v", p)
				}
			}()
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
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + serviceName + "/" + method}
		return interceptor(ctx, req, info, invoke)
	}
}

// Reasons carried in an ErrorInfo detail so that sentinels sharing a gRPC
// code stay distinct.
const (
	errorDomain       = "berth.broker"
	reasonGone        = "GONE"
	reasonNotFound    = "NOT_FOUND"
	reasonConflict    = "CONFLICT"
	reasonBadRequest  = "BAD_REQUEST"
	reasonUnavailable = "UNAVAILABLE"
)

var sentinels = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{ErrGone, codes.NotFound, reasonGone},
	{ErrNotFound, codes.NotFound, reasonNotFound},
	{ErrConflict, codes.AlreadyExists, reasonConflict},
	{ErrBadRequest, codes.InvalidArgument, reasonBadRequest},
	{ErrUnavailable, codes.Unavailable, reasonUnavailable},
}

// toStatus converts a broker's error to a gRPC status error.
func toStatus(err error) error {
	if _, ok := status.FromError(err); ok && !isSentinel(err) {
		return err
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			st := status.New(s.code, err.Error())
			if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: s.reason, Domain: errorDomain}); derr == nil {
				st = d
			}
			return st.Err()
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return true
		}
	}
	return false
}

// RemoteError is an error returned by a broker across the plugin boundary.
// errors.Is matches the sentinel it was made from (ErrGone, ...), or
// context.DeadlineExceeded / context.Canceled.
type RemoteError struct {
	Msg  string
	Kind error // a sentinel, context.DeadlineExceeded, context.Canceled, or nil
	// Transport is set when the error did not come from the broker's code
	// but from the connection (e.g. the plugin process died mid-call).
	Transport bool
}

// IsTransport reports whether err is a failure of the connection to the
// plugin rather than an answer from the broker.
func IsTransport(err error) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Transport
}

func (e *RemoteError) Error() string { return e.Msg }
func (e *RemoteError) Unwrap() error { return e.Kind }

// fromStatus maps a gRPC error from the client side back to a sentinel.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == errorDomain {
			for _, s := range sentinels {
				if s.reason == info.Reason {
					return &RemoteError{Msg: msg, Kind: s.err}
				}
			}
		}
	}
	switch st.Code() {
	case codes.Unavailable:
		return &RemoteError{Msg: fmt.Sprintf("%v: %s", ErrUnavailable, msg), Kind: ErrUnavailable, Transport: true}
	case codes.DeadlineExceeded:
		return &RemoteError{Msg: "broker call timed out: " + msg, Kind: context.DeadlineExceeded}
	case codes.Canceled:
		return &RemoteError{Msg: "broker call canceled: " + msg, Kind: context.Canceled}
	case codes.InvalidArgument:
		return &RemoteError{Msg: msg, Kind: ErrBadRequest}
	}
	return &RemoteError{Msg: "broker: " + msg}
}

// Client is the host side of the broker service: a Broker that calls a
// plugin over a gRPC connection.
type Client struct {
	conn grpc.ClientConnInterface
}

// NewClient returns a Broker calling the service on conn.
func NewClient(conn grpc.ClientConnInterface) *Client { return &Client{conn: conn} }

var _ Broker = (*Client)(nil)

func (c *Client) invoke(ctx context.Context, method string, req, resp any) error {
	err := c.conn.Invoke(ctx, "/"+serviceName+"/"+method, req, resp, grpc.CallContentSubtype(codecName))
	return fromStatus(err)
}

// Configure implements Broker.
func (c *Client) Configure(ctx context.Context, settings map[string]string) error {
	return c.invoke(ctx, "Configure", &configureRequest{Settings: settings}, &empty{})
}

// Catalog implements Broker.
func (c *Client) Catalog(ctx context.Context) (*Catalog, error) {
	out := new(Catalog)
	if err := c.invoke(ctx, "Catalog", &empty{}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Provision implements Broker.
func (c *Client) Provision(ctx context.Context, req ProvisionRequest) (*ProvisionResponse, error) {
	out := new(ProvisionResponse)
	if err := c.invoke(ctx, "Provision", &req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Deprovision implements Broker.
func (c *Client) Deprovision(ctx context.Context, req DeprovisionRequest) (*DeprovisionResponse, error) {
	out := new(DeprovisionResponse)
	if err := c.invoke(ctx, "Deprovision", &req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Bind implements Broker.
func (c *Client) Bind(ctx context.Context, req BindRequest) (*BindResponse, error) {
	out := new(BindResponse)
	if err := c.invoke(ctx, "Bind", &req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Unbind implements Broker.
func (c *Client) Unbind(ctx context.Context, req UnbindRequest) error {
	return c.invoke(ctx, "Unbind", &req, &empty{})
}

// LastOperation implements Broker.
func (c *Client) LastOperation(ctx context.Context, req LastOperationRequest) (*LastOperationResponse, error) {
	out := new(LastOperationResponse)
	if err := c.invoke(ctx, "LastOperation", &req, out); err != nil {
		return nil, err
	}
	return out, nil
}
