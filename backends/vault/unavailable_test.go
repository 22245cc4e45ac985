package vault

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
)

// TestUnreachableVaultIsUnavailable: a Vault that is down, or that does
// not answer, fails each call within the call timeout as a
// *backends.UnavailableError naming vault.
func TestUnreachableVaultIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
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
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	defer func() { silent.Close(); <-done }()

	for name, addr := range map[string]string{"down": down, "silent": silent.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			s, err := New(Config{Address: "http://" + addr, Token: "t", CallTimeout: 300 * time.Millisecond}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			_, gerr := s.Get(ctx, "apps/hello/env", 0)
			_, perr := s.Put(ctx, "apps/hello/env", map[string]string{"A": "b"})
			herr := s.Health(ctx)
			for what, err := range map[string]error{"get": gerr, "put": perr, "health": herr} {
				var ue *backends.UnavailableError
				if !errors.As(err, &ue) || ue.Backend != "vault" || ue.Role != "secrets" || errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("%s: %v, want an UnavailableError of vault", what, err)
				}
				if name == "silent" && ue.Reason != "no answer within 300ms" {
					t.Errorf("%s: reason %q", what, ue.Reason)
				}
				// (Vault's client retries a refused connection: the call
				// deadline may come first.)
				if name == "down" && !strings.Contains(ue.Reason, "connection refused") && ue.Reason != "no answer within 300ms" {
					t.Errorf("%s: reason %q", what, ue.Reason)
				}
			}
		})
	}
}
