package engine

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/state"
)

// TestSMTPSendStopsWithItsContext: a mail whose context ends while the
// SMTP server has not even greeted returns the context's error, and leaves
// no goroutine behind (the send used to go on in the background, blocked
// on the server for as long as it kept the connection open).
func TestSMTPSendStopsWithItsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			conns <- c // held open, silent: a relay that hangs
		}
		close(conns)
	}()
	m := &SMTPMailer{Addr: ln.Addr().String(), From: "berth@b.co"}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = m.Send(ctx, "dev@b.co", "hello", "body")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send returned %v, want the context's error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Send took %v after its context ended", took)
	}
	c, ok := <-conns
	if ok {
		defer c.Close()
	}
	// The relay still holds the connection open: nothing of the send may
	// still be running.
	goleak.VerifyNone(t)
}

// TestNotifierCloseLeavesNoGoroutines: after Close, no delivery worker
// and no connection of the webhook client is left running, though the
// receiver keeps its connections open.
func TestNotifierCloseLeavesNoGoroutines(t *testing.T) {
	var got atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
	}))
	defer ts.Close()
	before := goleak.IgnoreCurrent()
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) {})
	ctx := context.Background()
	if _, err := state.Create(ctx, e.store, state.NotifierKey(NotifyImagePush, "hook"), &state.Notifier{Type: NotifyImagePush, URL: ts.URL + "/hook"}); err != nil {
		t.Fatal(err)
	}
	e.Start()
	e.Notify(ctx, NotifyImagePush, map[string]string{"appname": "hello"})
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the webhook was not delivered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.Close()
	// The receiver's side of the connection is the test server's; the
	// Store is closed after the test.
	goleak.VerifyNone(t, before, goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
		goleak.IgnoreAnyFunction("github.com/berthpaas/berth/backends/bolt.(*Store).reaper"))
}

// TestSMTPSendDelivers: a mail sent through an SMTP relay arrives with its
// recipient, subject and body.
func TestSMTPSendDelivers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type mail struct{ from, to, data string }
	got := make(chan mail, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tp := textproto.NewConn(c)
		var m mail
		_ = tp.PrintfLine("220 relay ready")
		for {
			line, err := tp.ReadLine()
			if err != nil {
				return
			}
			cmd := strings.ToUpper(line)
			switch {
			case strings.HasPrefix(cmd, "EHLO"):
				_ = tp.PrintfLine("250 relay")
			case strings.HasPrefix(cmd, "MAIL FROM:"):
				m.from = line[len("MAIL FROM:"):]
				_ = tp.PrintfLine("250 ok")
			case strings.HasPrefix(cmd, "RCPT TO:"):
				m.to = line[len("RCPT TO:"):]
				_ = tp.PrintfLine("250 ok")
			case cmd == "DATA":
				_ = tp.PrintfLine("354 go on")
				b, err := tp.ReadDotBytes()
				if err != nil {
					return
				}
				m.data = string(b)
				_ = tp.PrintfLine("250 queued")
			case cmd == "QUIT":
				_ = tp.PrintfLine("221 bye")
				got <- m
				return
			default:
				_ = tp.PrintfLine("502 not here")
			}
		}
	}()
	m := &SMTPMailer{Addr: ln.Addr().String(), From: "berth@b.co"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Send(ctx, "dev@b.co", "Reset your password", "follow this link"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.from != "<berth@b.co>" || r.to != "<dev@b.co>" || !strings.Contains(r.data, "Subject: Reset your password") || !strings.Contains(r.data, "follow this link") {
			t.Errorf("the relay got from %s to %s:\n%s", r.from, r.to, r.data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relay got no mail")
	}
}
