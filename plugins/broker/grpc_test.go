package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/berthpaas/berth/names"
	brokerpb "github.com/berthpaas/berth/plugins/broker/proto"
)

// errBroker returns a configured error from every call, so the test can
// check that each sentinel crosses a real gRPC connection intact.
type errBroker struct {
	err      error
	settings map[string]string
	state    string // LastOperation's answer
}

func (b *errBroker) Configure(_ context.Context, s map[string]string) error {
	b.settings = s
	return b.err
}
func (b *errBroker) Catalog(context.Context) (*Catalog, error) {
	if b.err != nil {
		return nil, b.err
	}
	return &Catalog{Services: []Service{{ID: "s", Name: "svc", Plans: []Plan{{ID: "p", Name: "plan"}}}}}, nil
}
func (b *errBroker) Provision(_ context.Context, r ProvisionRequest) (*ProvisionResponse, error) {
	if b.err != nil {
		return nil, b.err
	}
	return &ProvisionResponse{AlreadyExisted: r.Params["again"] == "yes"}, nil
}
func (b *errBroker) Deprovision(context.Context, DeprovisionRequest) (*DeprovisionResponse, error) {
	return nil, b.err
}
func (b *errBroker) Bind(_ context.Context, r BindRequest) (*BindResponse, error) {
	if r.AppName == "panic" {
		panic("boom")
	}
	if b.err != nil {
		return nil, b.err
	}
	return &BindResponse{Credentials: map[string]string{"APP": r.AppName}}, nil
}
func (b *errBroker) Unbind(context.Context, UnbindRequest) error { return b.err }
func (b *errBroker) LastOperation(context.Context, LastOperationRequest) (*LastOperationResponse, error) {
	if b.err != nil {
		return nil, b.err
	}
	return &LastOperationResponse{State: b.state, Description: "about " + b.state}, nil
}

// serve serves impl over protocol version 2 on a real gRPC connection.
func serve(t *testing.T, impl Broker) Broker { return serveVersion(t, impl, ProtocolVersion) }

// serveVersion serves impl over the given protocol version and returns the
// host's client of that version.
func serveVersion(t *testing.T, impl Broker, version int) Broker {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	var p plugin.GRPCPlugin
	switch version {
	case ProtocolVersionV1:
		p = &GRPCPluginV1{Impl: impl}
	case ProtocolVersion:
		p = &GRPCPlugin{Impl: impl}
	default:
		t.Fatalf("no protocol version %d", version)
	}
	if err := p.GRPCServer(nil, srv); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := p.GRPCClient(context.Background(), nil, conn)
	if err != nil {
		t.Fatal(err)
	}
	return c.(Broker)
}

var versions = []int{ProtocolVersionV1, ProtocolVersion}

func TestSentinelsSurviveGRPC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, version := range versions {
		for _, sentinel := range []error{ErrGone, ErrConflict, ErrNotFound, ErrBadRequest, ErrUnavailable} {
			t.Run(fmt.Sprintf("v%d/%s", version, sentinel), func(t *testing.T) {
				c := serveVersion(t, &errBroker{err: fmt.Errorf("%w: instance x: details", sentinel)}, version)
				err := c.Unbind(ctx, UnbindRequest{InstanceID: "x", BindingID: "y"})
				if !errors.Is(err, sentinel) {
					t.Fatalf("Unbind error = %v, want errors.Is %v", err, sentinel)
				}
				if want := sentinel.Error() + ": instance x: details"; err.Error() != want {
					t.Fatalf("message = %q, want %q", err.Error(), want)
				}
				for _, other := range []error{ErrGone, ErrConflict, ErrNotFound, ErrBadRequest, ErrUnavailable} {
					if other != sentinel && errors.Is(err, other) {
						t.Fatalf("error %v also matches %v", err, other)
					}
				}
				if IsTransport(err) {
					t.Fatalf("the broker's own error %v is marked as a transport error", err)
				}
			})
		}
	}
}

// TestErrorDetailOnTheWire checks what a plugin in another language must
// send, and what a host in another language would read: version 2 errors
// are gRPC statuses with the documented code and one brokerpb.ErrorDetail
// naming the kind.
func TestErrorDetailOnTheWire(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		err  error
		code codes.Code
		kind brokerpb.ErrorKind
	}{
		{ErrGone, codes.NotFound, brokerpb.ErrorKind_ERROR_KIND_GONE},
		{ErrNotFound, codes.NotFound, brokerpb.ErrorKind_ERROR_KIND_NOT_FOUND},
		{ErrConflict, codes.AlreadyExists, brokerpb.ErrorKind_ERROR_KIND_CONFLICT},
		{ErrBadRequest, codes.InvalidArgument, brokerpb.ErrorKind_ERROR_KIND_BAD_REQUEST},
		{ErrUnavailable, codes.Unavailable, brokerpb.ErrorKind_ERROR_KIND_UNAVAILABLE},
	} {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		brokerpb.RegisterBrokerServer(srv, NewServer(&errBroker{err: fmt.Errorf("%w: binding y", tc.err)}))
		go func() { _ = srv.Serve(lis) }()
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = brokerpb.NewBrokerClient(conn).Unbind(ctx, &brokerpb.UnbindRequest{InstanceId: "x", BindingId: "y"})
		conn.Close()
		srv.Stop()
		st := status.Convert(err)
		if st.Code() != tc.code || st.Message() != tc.err.Error()+": binding y" {
			t.Errorf("%v: status = %v %q, want %v %q", tc.err, st.Code(), st.Message(), tc.code, tc.err.Error()+": binding y")
		}
		details := st.Details()
		if len(details) != 1 {
			t.Errorf("%v: %d details, want 1 ErrorDetail: %v", tc.err, len(details), details)
			continue
		}
		if d, ok := details[0].(*brokerpb.ErrorDetail); !ok || d.GetKind() != tc.kind {
			t.Errorf("%v: detail = %T %v, want ErrorDetail kind %v", tc.err, details[0], details[0], tc.kind)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, version := range versions {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			impl := &errBroker{}
			c := serveVersion(t, impl, version)
			if err := c.Configure(ctx, map[string]string{"addr": "127.0.0.1:1"}); err != nil {
				t.Fatal(err)
			}
			if impl.settings["addr"] != "127.0.0.1:1" {
				t.Fatalf("settings not delivered: %v", impl.settings)
			}
			cat, err := c.Catalog(ctx)
			if err != nil || len(cat.Services) != 1 || cat.Services[0].Plans[0].ID != "p" || cat.Services[0].Name != "svc" {
				t.Fatalf("Catalog = %+v, %v", cat, err)
			}
			pr, err := c.Provision(ctx, ProvisionRequest{InstanceID: "a", Params: map[string]string{"again": "yes"}})
			if err != nil || !pr.AlreadyExisted {
				t.Fatalf("Provision = %+v, %v", pr, err)
			}
			br, err := c.Bind(ctx, BindRequest{InstanceID: "a", BindingID: "b", AppName: "hello"})
			if err != nil || br.Credentials["APP"] != "hello" {
				t.Fatalf("Bind = %+v, %v", br, err)
			}
			// A nil response with a nil error arrives as an empty response.
			dr, err := c.Deprovision(ctx, DeprovisionRequest{InstanceID: "a"})
			if err != nil || dr == nil || dr.Async {
				t.Fatalf("Deprovision = %+v, %v", dr, err)
			}
			// A panicking broker answers with an error instead of dying.
			if _, err := c.Bind(ctx, BindRequest{InstanceID: "a", BindingID: "b", AppName: "panic"}); err == nil || !strings.Contains(err.Error(), "boom") {
				t.Fatalf("Bind that panicked returned %v", err)
			}
			for _, state := range []string{StateInProgress, StateSucceeded, StateFailed} {
				impl.state = state
				lo, err := c.LastOperation(ctx, LastOperationRequest{InstanceID: "a"})
				if err != nil || lo.State != state || lo.Description != "about "+state {
					t.Fatalf("LastOperation = %+v, %v; want state %q", lo, err, state)
				}
			}
		})
	}
}

// TestUnknownOperationState: version 2 carries the state as an enum, so a
// Go broker's misspelt state is an error instead of a state the host does
// not know.
func TestUnknownOperationState(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := serve(t, &errBroker{state: "done"})
	lo, err := c.LastOperation(ctx, LastOperationRequest{InstanceID: "a"})
	if err == nil || !strings.Contains(err.Error(), `unknown operation state "done"`) {
		t.Fatalf("LastOperation = %+v, %v; want an error naming the unknown state", lo, err)
	}
}

func TestDeadlineCrossesBoundary(t *testing.T) {
	c := serve(t, &errBroker{err: context.DeadlineExceeded})
	err := c.Unbind(context.Background(), UnbindRequest{InstanceID: "x", BindingID: "y"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}

func TestCheckID(t *testing.T) {
	for id, ok := range map[string]bool{
		"a": true, "my-db-1": true, "": false, "A": false, "a_b": false, "a/b": false, "..": false,
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123":  true,
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234": false,
		// What Berth sends: instance names and binding IDs "b-<hex>".
		"mymysql": true, "b-0123456789abcdef01234567": true,
		// The rule of every other name (names.Label): no leading digit
		// or hyphen, no trailing hyphen, no dot, no upper case, ASCII.
		"1abc": false, "-a": false, "a-": false, "a.b": false, "myDB": false, "bäd": false,
		"6c4f0c4e-1f2e-4d3c-9b8a-7f6e5d4c3b2a": false,
	} {
		err := CheckID("instance_id", id)
		if (err == nil) != ok || ValidID(id) != ok {
			t.Errorf("CheckID(%q) = %v, ValidID = %v, want ok=%v", id, err, ValidID(id), ok)
		}
		if err == nil {
			continue
		}
		var ne *names.Error
		if !errors.Is(err, ErrBadRequest) || !errors.As(err, &ne) || ne.Kind != "instance_id" || ne.Value != id {
			t.Errorf("CheckID(%q) error %v is not ErrBadRequest and a *names.Error of kind instance_id", id, err)
		}
		if want := fmt.Sprintf("bad request: invalid instance_id %q: ", id); !strings.HasPrefix(err.Error(), want) {
			t.Errorf("CheckID(%q) = %q, want it to start %q", id, err, want)
		}
	}
}

func TestTransportErrorsAreMarked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The broker's own "unavailable" (its server is down) is not a transport error.
	own := serve(t, &errBroker{err: fmt.Errorf("%w: mysql is down", ErrUnavailable)})
	err := own.Unbind(ctx, UnbindRequest{InstanceID: "x", BindingID: "y"})
	if !errors.Is(err, ErrUnavailable) || IsTransport(err) {
		t.Fatalf("broker's ErrUnavailable: err = %v, IsTransport = %v", err, IsTransport(err))
	}
	// A connection to nothing is.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = NewClient(conn).Unbind(ctx, UnbindRequest{InstanceID: "x", BindingID: "y"})
	if !errors.Is(err, ErrUnavailable) || !IsTransport(err) {
		t.Fatalf("dead connection: err = %v, IsTransport = %v", err, IsTransport(err))
	}
}
