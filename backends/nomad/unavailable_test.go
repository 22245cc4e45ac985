package nomad

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
)

// wantNomadDown checks that err is a *backends.UnavailableError naming
// nomad as the scheduler, whose reason contains reason.
func wantNomadDown(t *testing.T, what string, err error, reason string) {
	t.Helper()
	var ue *backends.UnavailableError
	if !errors.As(err, &ue) || ue.Backend != "nomad" || ue.Role != "scheduler" || !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("%s: %v (%T), want a *backends.UnavailableError naming nomad", what, err, err)
	}
	if !strings.Contains(ue.Reason, reason) || strings.Contains(ue.Reason, "http://") {
		t.Errorf("%s: reason %q, want it to say %q (and no URL)", what, ue.Reason, reason)
	}
}

// TestUnreachableNomadIsUnavailable: with nothing listening at Nomad's
// address, every call the API makes through the scheduler (logs, run,
// stop, restart, health) fails as nomad unavailable, at once.
func TestUnreachableNomadIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connections are refused
	s, err := New(Config{Address: "http://" + addr, CallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	start := time.Now()
	_, err = s.Logs(ctx, "hello", backends.LogQuery{})
	wantNomadDown(t, "Logs", err, "connection refused")
	_, err = s.Run(ctx, "hello", backends.RunSpec{App: &backends.AppSpec{App: "hello"}, Proc: backends.ProcSpec{Name: "web", Type: backends.ProcWeb, Cmd: "true", CPU: 0.1, MemoryMB: 32}, ID: "r1", Command: []string{"true"}})
	wantNomadDown(t, "Run", err, "connection refused")
	wantNomadDown(t, "Stop", s.Stop(ctx, "hello"), "connection refused")
	wantNomadDown(t, "Restart", s.Restart(ctx, "hello", ""), "connection refused")
	wantNomadDown(t, "Health", s.Health(ctx), "connection refused")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refused connections took %v to fail", d)
	}
}

// TestFrozenNomadIsUnavailable: a Nomad that accepts connections and
// never answers (kill -STOP) fails each call within the call timeout, as
// nomad unavailable saying it did not answer.
func TestFrozenNomadIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	const timeout = 300 * time.Millisecond
	s, err := New(Config{Address: "http://" + ln.Addr().String(), CallTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"Logs":    func() error { _, err := s.Logs(ctx, "hello", backends.LogQuery{}); return err },
		"Stop":    func() error { return s.Stop(ctx, "hello") },
		"Restart": func() error { return s.Restart(ctx, "hello", "") },
		"Health":  func() error { return s.Health(ctx) },
	} {
		start := time.Now()
		err := call()
		wantNomadDown(t, name, err, "no answer within "+timeout.String())
		if d := time.Since(start); d > timeout+2*time.Second {
			t.Errorf("%s took %v with a %v call timeout", name, d, timeout)
		}
	}
}
