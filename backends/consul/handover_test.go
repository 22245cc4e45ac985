package consul

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/devagent"
	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// cutProxy forwards TCP to addr until cut; then it drops every
// connection and accepts new ones without ever answering (a holder cut
// off from Consul).
type cutProxy struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, to: strings.TrimPrefix(to, "http://")}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) Addr() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		cut := p.cut
		p.mu.Unlock()
		if cut {
			continue // held open, never answered
		}
		up, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(up, c); up.Close() }()
		go func() { defer p.wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
	}
}

// Cut closes every connection made so far; later ones are never answered.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// freeze stops a holder's renewals and watch without releasing anything:
// the holder killed outright (kill -9), its session left to Consul.
func freeze(l backends.Leadership) {
	ld := l.(*leadership)
	ld.cancel()
	ld.wg.Wait()
}

// A holder killed outright is handed over through its heartbeat, not
// through Consul's session TTL: here the dead holder's session is kept
// alive by the test (Consul would never invalidate it), and the contender
// still takes the lock, having ended that session.
func TestElectDeadHolderHandedOverByHeartbeat(t *testing.T) {
	a := newStore(t)
	b := storeOn(t, a)
	o := backends.ElectOptions{TTL: 2 * time.Second, LockDelay: 200 * time.Millisecond}
	la, err := elect(t, context.Background(), a, "a", o)
	if err != nil {
		t.Fatal(err)
	}
	_, sess := holderOf(t, a)
	freeze(la)

	// Keep the dead holder's session renewed, as Consul's TTL would
	// keep it for up to twice the TTL.
	stop := make(chan struct{})
	renewed := make(chan int, 1)
	go func() {
		n := 0
		defer func() { renewed <- n }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			e, _, err := a.client.Session().Renew(sess, nil)
			if err != nil || e == nil {
				return // ended (by the contender)
			}
			n++
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lb, err := b.Elect(ctx, "locks/leader", []byte("b"), o)
	close(stop)
	n := <-renewed
	if err != nil {
		t.Fatalf("a contender did not take the lock of a holder whose heartbeat stopped (its session still renewed): %v", err)
	}
	defer release(t, lb)
	if v, s := holderOf(t, a); v != "b" || s == sess {
		t.Errorf("the key holds %q of session %s, want b's", v, s)
	}
	if e, _, err := a.client.Session().Info(sess, nil); err != nil || e != nil {
		t.Errorf("the dead holder's session is still known (%v, %v): the contender should have ended it", e, err)
	}
	if n == 0 {
		t.Error("the dead holder's session was never renewed by the test: the hand-over proves nothing")
	}
	select {
	case <-lb.Lost():
		t.Error("the new holder lost the lock at once")
	default:
	}
}

// A holder cut off from Consul stops (Lost) before any contender can take
// the lock through the heartbeat.
func TestElectCutOffHolderStopsBeforeHandOver(t *testing.T) {
	direct := newStore(t)
	px := newCutProxy(t, devagent.Consul(t))
	a, err := New(Config{Address: px.Addr(), Prefix: direct.prefix, CallTimeout: 500 * time.Millisecond}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	o := backends.ElectOptions{TTL: 2 * time.Second, LockDelay: 200 * time.Millisecond}
	la, err := elect(t, context.Background(), a, "a", o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = la.Release(ctx)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	px.Cut()
	lb, err := direct.Elect(ctx, "locks/leader", []byte("b"), o)
	if err != nil {
		t.Fatalf("the contender did not take the lock of a holder cut off from Consul: %v", err)
	}
	defer release(t, lb)
	select {
	case <-la.Lost():
	default:
		t.Fatal("a contender took the lock while the holder cut off from Consul had not yet stopped")
	}
	if v, _ := holderOf(t, direct); v != "b" {
		t.Errorf("the key holds %q, want b", v)
	}
}

// A holder that writes no heartbeat (`consul lock`, api.Lock) is left to
// Consul's session TTL: a Berth contender does not end its session.
func TestElectAPILockHolderNotEnded(t *testing.T) {
	a := newStore(t)
	lk, err := a.client.LockOpts(&api.LockOptions{Key: a.prefix + "locks/leader", SessionTTL: "30s"})
	if err != nil {
		t.Fatal(err)
	}
	lost, err := lk.Lock(nil)
	if err != nil || lost == nil {
		t.Fatalf("api.Lock: %v", err)
	}
	defer func() { _ = lk.Unlock() }()
	// Wait out several of the contender's TTLs.
	o := backends.ElectOptions{TTL: time.Second, LockDelay: 100 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	if lb, err := elect(t, ctx, a, "b", o); err == nil {
		release(t, lb)
		t.Fatal("a Berth contender took a lock api.Lock holds")
	}
	select {
	case <-lost:
		t.Fatal("api.Lock lost its lock to a Berth contender")
	default:
	}
}
