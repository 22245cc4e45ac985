package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/berthpaas/berth/names"
)

// errBroker returns a configured error from every call, so the test can
// check that each sentinel crosses a real gRPC connection intact.
type errBroker struct {
	err      error
	settings map[string]string
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
	return &LastOperationResponse{State: StateSucceeded}, nil
}

func serve(t *testing.T, impl Broker) *Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	if err := (&GRPCPlugin{Impl: impl}).GRPCServer(nil, srv); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return NewClient(conn)
}

func TestSentinelsSurviveGRPC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, sentinel := range []error{ErrGone, ErrConflict, ErrNotFound, ErrBadRequest, ErrUnavailable} {
		t.Run(sentinel.Error(), func(t *testing.T) {
			c := serve(t, &errBroker{err: fmt.Errorf("%w: instance x: details", sentinel)})
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
		})
	}
}

func TestRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	impl := &errBroker{}
	c := serve(t, impl)
	if err := c.Configure(ctx, map[string]string{"addr": "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	if impl.settings["addr"] != "127.0.0.1:1" {
		t.Fatalf("settings not delivered: %v", impl.settings)
	}
	cat, err := c.Catalog(ctx)
	if err != nil || len(cat.Services) != 1 || cat.Services[0].Plans[0].ID != "p" {
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
	if _, err := c.Bind(ctx, BindRequest{InstanceID: "a", BindingID: "b", AppName: "panic"}); err == nil {
		t.Fatal("Bind that panicked returned no error")
	}
	lo, err := c.LastOperation(ctx, LastOperationRequest{InstanceID: "a"})
	if err != nil || lo.State != StateSucceeded {
		t.Fatalf("LastOperation = %+v, %v", lo, err)
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
