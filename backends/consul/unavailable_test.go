package consul

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
)

// silentAgent is a listener that accepts connections and never answers,
// as a frozen agent (kill -STOP) does.
func silentAgent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// closedPort is an address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestUnreachableConsulIsUnavailable: an agent that is down, or that does
// not answer, fails each call within the call timeout as a
// *backends.UnavailableError naming consul.
func TestUnreachableConsulIsUnavailable(t *testing.T) {
	for name, addr := range map[string]string{"down": closedPort(t), "silent": silentAgent(t)} {
		t.Run(name, func(t *testing.T) {
			s, err := New(Config{Address: "http://" + addr, Prefix: "berth", CallTimeout: 300 * time.Millisecond}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			_, _, gerr := s.Get(ctx, "apps/hello", nil)
			_, cerr := s.Txn(ctx, []backends.TxnOp{{Verb: backends.TxnSet, Key: "apps/hello", Value: []byte("{}")}})
			herr := s.Health(ctx)
			for what, err := range map[string]error{"get": gerr, "txn": cerr, "health": herr} {
				var ue *backends.UnavailableError
				if !errors.As(err, &ue) || !errors.Is(err, backends.ErrUnavailable) || ue.Backend != "consul" || ue.Role != "store" {
					t.Fatalf("%s: %v, want an UnavailableError of consul", what, err)
				}
				if errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s: %v matches DeadlineExceeded (it would be answered 504)", what, err)
				}
				if name == "silent" && ue.Reason != "no answer within 300ms" {
					t.Errorf("%s: reason %q", what, ue.Reason)
				}
				if name == "down" && (!strings.Contains(ue.Reason, "connection refused") || strings.Contains(ue.Reason, "http://")) {
					t.Errorf("%s: reason %q, want the transport's error without the URL", what, ue.Reason)
				}
			}
			// The caller's own deadline stays the caller's.
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, _, err := s.Get(cctx, "apps/hello", nil); errors.Is(err, backends.ErrUnavailable) {
				t.Errorf("a caller's cancelled request: %v, want no unavailability", err)
			}
		})
	}
}
