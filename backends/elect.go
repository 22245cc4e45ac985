package backends

import (
	"context"
	"time"
)

// Elector is implemented by a Store that several servers share and that
// can elect one of them to do a job only one may do at a time (Consul: a
// session lock, the algorithm of github.com/hashicorp/consul/api.Lock).
// A Store only one server uses (bolt) does not implement it.
type Elector interface {
	// Elect blocks until the caller holds the lock on key, or ctx ends
	// (then it returns ctx's error). value is stored in the lock's key
	// while it is held (who holds it). The lock is held until Release,
	// or until it is lost: then the Leadership's Lost channel is closed.
	Elect(ctx context.Context, key string, value []byte, o ElectOptions) (Leadership, error)
}

// ElectOptions shape an election.
type ElectOptions struct {
	// TTL is how long a holder that stopped renewing (killed, cut off)
	// keeps the lock: the session's TTL. Consul takes TTLs from 10s
	// (its session_ttl_min) and invalidates a session not renewed within
	// twice its TTL; the holder's heartbeat lets contenders end a dead
	// holder's session after one TTL (then the lock delay). The holder
	// itself gives up (Lost) once it could not renew for TTL, before
	// anyone else can take the lock.
	TTL time.Duration
	// LockDelay is how long after a holder lost its session (not after a
	// Release) nobody may take the lock: time for a holder cut off to
	// notice and stop before another starts.
	LockDelay time.Duration
	// Name names the session (what Consul's UI shows).
	Name string
}

// Leadership is a lock Elect took.
type Leadership interface {
	// Lost is closed when the lock is no longer held: lost (session
	// invalidated, key taken, the Store unreachable for the TTL) or
	// released.
	Lost() <-chan struct{}
	// Release gives the lock up at once (no lock delay for the next
	// holder) and ends its session; its goroutines have stopped when it
	// returns. It may be called more than once.
	Release(ctx context.Context) error
}
