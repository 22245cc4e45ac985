package broker

import (
	"context"
	"errors"
	"fmt"

	brokerpb "github.com/berthpaas/berth/plugins/broker/proto"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ProtocolVersion is the version of the broker protocol this package
// serves: 2, the gRPC service berth.broker.v2.Broker of
// plugins/broker/proto/broker.proto.
const ProtocolVersion = 2

// Handshake is shared by Berth and every broker plugin. A plugin binary run
// by hand (without the cookie in its environment) refuses to start.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "BERTH_PLUGIN",
	MagicCookieValue: "6f1c0a5e2d7b4c39a8e1f04b9d3c72aa-berth-broker",
}

// PluginName is the key of the broker in PluginMap.
const PluginName = "broker"

// PluginMap is the map of plugins a plugin process serves (version 2).
var PluginMap = map[string]plugin.Plugin{
	PluginName: &GRPCPlugin{},
}

// VersionedPlugins is what Berth offers a plugin process: version 2, and
// version 1 (JSON over gRPC) for plugins built before version 2. go-plugin
// tells the plugin both (PLUGIN_PROTOCOL_VERSIONS=1,2) and uses the one the
// plugin answers with.
var VersionedPlugins = map[int]plugin.PluginSet{
	ProtocolVersionV1: {PluginName: &GRPCPluginV1{}},
	ProtocolVersion:   {PluginName: &GRPCPlugin{}},
}

// GRPCPlugin implements plugin.GRPCPlugin for Broker over protocol version
// 2. Impl is set on the plugin side only.
type GRPCPlugin struct {
	plugin.Plugin
	Impl Broker
}

// GRPCServer registers the broker service on the plugin's gRPC server.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("broker: GRPCPlugin.Impl is nil")
	}
	brokerpb.RegisterBrokerServer(s, NewServer(p.Impl))
	return nil
}

// GRPCClient returns a Broker that calls the plugin over conn.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return NewClient(conn), nil
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// NewServer returns the gRPC server side of b: errors become statuses with an
// ErrorDetail, panics become Internal errors.
func NewServer(b Broker) brokerpb.BrokerServer { return &server{b: b} }

type server struct {
	brokerpb.UnimplementedBrokerServer
	b Broker
}

func (s *server) Configure(ctx context.Context, req *brokerpb.ConfigureRequest) (_ *brokerpb.ConfigureResponse, err error) {
	defer recoverStatus(&err)
	if err := s.b.Configure(ctx, req.GetSettings()); err != nil {
		return nil, toStatusV2(err)
	}
	return &brokerpb.ConfigureResponse{}, nil
}

func (s *server) Catalog(ctx context.Context, _ *brokerpb.CatalogRequest) (_ *brokerpb.CatalogResponse, err error) {
	defer recoverStatus(&err)
	cat, err := s.b.Catalog(ctx)
	if err != nil {
		return nil, toStatusV2(err)
	}
	out := &brokerpb.CatalogResponse{}
	if cat == nil {
		return out, nil
	}
	for _, svc := range cat.Services {
		ps := &brokerpb.Service{Id: svc.ID, Name: svc.Name, Description: svc.Description}
		for _, p := range svc.Plans {
			ps.Plans = append(ps.Plans, &brokerpb.Plan{Id: p.ID, Name: p.Name, Description: p.Description})
		}
		out.Services = append(out.Services, ps)
	}
	return out, nil
}

func (s *server) Provision(ctx context.Context, req *brokerpb.ProvisionRequest) (_ *brokerpb.ProvisionResponse, err error) {
	defer recoverStatus(&err)
	r, err := s.b.Provision(ctx, ProvisionRequest{InstanceID: req.GetInstanceId(), ServiceID: req.GetServiceId(),
		PlanID: req.GetPlanId(), Params: nilIfEmpty(req.GetParams())})
	if err != nil {
		return nil, toStatusV2(err)
	}
	if r == nil {
		return &brokerpb.ProvisionResponse{}, nil
	}
	return &brokerpb.ProvisionResponse{Async: r.Async, Operation: r.Operation, AlreadyExisted: r.AlreadyExisted}, nil
}

func (s *server) Deprovision(ctx context.Context, req *brokerpb.DeprovisionRequest) (_ *brokerpb.DeprovisionResponse, err error) {
	defer recoverStatus(&err)
	r, err := s.b.Deprovision(ctx, DeprovisionRequest{InstanceID: req.GetInstanceId()})
	if err != nil {
		return nil, toStatusV2(err)
	}
	if r == nil {
		return &brokerpb.DeprovisionResponse{}, nil
	}
	return &brokerpb.DeprovisionResponse{Async: r.Async, Operation: r.Operation}, nil
}

func (s *server) Bind(ctx context.Context, req *brokerpb.BindRequest) (_ *brokerpb.BindResponse, err error) {
	defer recoverStatus(&err)
	r, err := s.b.Bind(ctx, BindRequest{InstanceID: req.GetInstanceId(), BindingID: req.GetBindingId(),
		AppName: req.GetAppName(), Params: nilIfEmpty(req.GetParams())})
	if err != nil {
		return nil, toStatusV2(err)
	}
	if r == nil {
		return &brokerpb.BindResponse{}, nil
	}
	return &brokerpb.BindResponse{Credentials: r.Credentials, AlreadyExisted: r.AlreadyExisted}, nil
}

func (s *server) Unbind(ctx context.Context, req *brokerpb.UnbindRequest) (_ *brokerpb.UnbindResponse, err error) {
	defer recoverStatus(&err)
	if err := s.b.Unbind(ctx, UnbindRequest{InstanceID: req.GetInstanceId(), BindingID: req.GetBindingId()}); err != nil {
		return nil, toStatusV2(err)
	}
	return &brokerpb.UnbindResponse{}, nil
}

func (s *server) LastOperation(ctx context.Context, req *brokerpb.LastOperationRequest) (_ *brokerpb.LastOperationResponse, err error) {
	defer recoverStatus(&err)
	r, err := s.b.LastOperation(ctx, LastOperationRequest{InstanceID: req.GetInstanceId(), Operation: req.GetOperation()})
	if err != nil {
		return nil, toStatusV2(err)
	}
	if r == nil {
		return nil, status.Error(codes.Internal, "broker reported no operation state")
	}
	state, ok := stateToPB[r.State]
	if !ok {
		return nil, status.Errorf(codes.Internal, "broker reported the unknown operation state %q (want %q, %q or %q)",
			r.State, StateInProgress, StateSucceeded, StateFailed)
	}
	return &brokerpb.LastOperationResponse{State: state, Description: r.Description}, nil
}

var stateToPB = map[string]brokerpb.OperationState{
	StateInProgress: brokerpb.OperationState_OPERATION_STATE_IN_PROGRESS,
	StateSucceeded:  brokerpb.OperationState_OPERATION_STATE_SUCCEEDED,
	StateFailed:     brokerpb.OperationState_OPERATION_STATE_FAILED,
}

// nilIfEmpty keeps the Go types' convention that absent parameters are nil
// (proto3 cannot tell an empty map from an absent one).
func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// Client is the host side of the broker service (version 2): a Broker that
// calls a plugin over a gRPC connection.
type Client struct {
	c brokerpb.BrokerClient
}

// NewClient returns a Broker calling the version 2 service on conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: brokerpb.NewBrokerClient(conn)}
}

var _ Broker = (*Client)(nil)

// Configure implements Broker.
func (c *Client) Configure(ctx context.Context, settings map[string]string) error {
	_, err := c.c.Configure(ctx, &brokerpb.ConfigureRequest{Settings: settings})
	return fromStatus(err)
}

// Catalog implements Broker.
func (c *Client) Catalog(ctx context.Context) (*Catalog, error) {
	r, err := c.c.Catalog(ctx, &brokerpb.CatalogRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	out := &Catalog{}
	for _, s := range r.GetServices() {
		svc := Service{ID: s.GetId(), Name: s.GetName(), Description: s.GetDescription()}
		for _, p := range s.GetPlans() {
			svc.Plans = append(svc.Plans, Plan{ID: p.GetId(), Name: p.GetName(), Description: p.GetDescription()})
		}
		out.Services = append(out.Services, svc)
	}
	return out, nil
}

// Provision implements Broker.
func (c *Client) Provision(ctx context.Context, req ProvisionRequest) (*ProvisionResponse, error) {
	r, err := c.c.Provision(ctx, &brokerpb.ProvisionRequest{InstanceId: req.InstanceID, ServiceId: req.ServiceID,
		PlanId: req.PlanID, Params: req.Params})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &ProvisionResponse{Async: r.GetAsync(), Operation: r.GetOperation(), AlreadyExisted: r.GetAlreadyExisted()}, nil
}

// Deprovision implements Broker.
func (c *Client) Deprovision(ctx context.Context, req DeprovisionRequest) (*DeprovisionResponse, error) {
	r, err := c.c.Deprovision(ctx, &brokerpb.DeprovisionRequest{InstanceId: req.InstanceID})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &DeprovisionResponse{Async: r.GetAsync(), Operation: r.GetOperation()}, nil
}

// Bind implements Broker.
func (c *Client) Bind(ctx context.Context, req BindRequest) (*BindResponse, error) {
	r, err := c.c.Bind(ctx, &brokerpb.BindRequest{InstanceId: req.InstanceID, BindingId: req.BindingID,
		AppName: req.AppName, Params: req.Params})
	if err != nil {
		return nil, fromStatus(err)
	}
	creds := r.GetCredentials()
	if creds == nil {
		creds = map[string]string{}
	}
	return &BindResponse{Credentials: creds, AlreadyExisted: r.GetAlreadyExisted()}, nil
}

// Unbind implements Broker.
func (c *Client) Unbind(ctx context.Context, req UnbindRequest) error {
	_, err := c.c.Unbind(ctx, &brokerpb.UnbindRequest{InstanceId: req.InstanceID, BindingId: req.BindingID})
	return fromStatus(err)
}

// LastOperation implements Broker.
func (c *Client) LastOperation(ctx context.Context, req LastOperationRequest) (*LastOperationResponse, error) {
	r, err := c.c.LastOperation(ctx, &brokerpb.LastOperationRequest{InstanceId: req.InstanceID, Operation: req.Operation})
	if err != nil {
		return nil, fromStatus(err)
	}
	out := &LastOperationResponse{Description: r.GetDescription()}
	switch r.GetState() {
	case brokerpb.OperationState_OPERATION_STATE_IN_PROGRESS:
		out.State = StateInProgress
	case brokerpb.OperationState_OPERATION_STATE_SUCCEEDED:
		out.State = StateSucceeded
	case brokerpb.OperationState_OPERATION_STATE_FAILED:
		out.State = StateFailed
	default:
		return nil, &RemoteError{Msg: fmt.Sprintf("broker: LastOperation on %q answered the operation state %v", req.InstanceID, r.GetState())}
	}
	return out, nil
}
