package server

import (
	"container/list"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/berthpaas/berth/config"
)

// keyedLimiter is a token bucket per key (a client IP, an account) in a
// bounded LRU table: at most max keys are tracked; the least recently used
// is dropped first. A dropped key starts again with a full bucket, so the
// table's bound trades a little precision for bounded memory.
//
// An attempt takes a ticket before doing its work and says at the end
// whether it counts (a failed login) or not (a successful one). Tickets in
// flight hold a token each, so concurrent attempts cannot overrun the bucket
// (at most burst of them do bcrypt work at once per key).
type keyedLimiter struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	max   int
	ll    *list.List // of *limEntry, most recent first
	m     map[string]*list.Element
}

type limEntry struct {
	key      string
	lim      *rate.Limiter
	inflight int
}

func newKeyedLimiter(every time.Duration, burst, max int) *keyedLimiter {
	return &keyedLimiter{limit: rate.Every(every), burst: burst, max: max, ll: list.New(), m: map[string]*list.Element{}}
}

// entry returns key's entry; k.mu is held.
func (k *keyedLimiter) entry(key string) *limEntry {
	if e, ok := k.m[key]; ok {
		k.ll.MoveToFront(e)
		return e.Value.(*limEntry)
	}
	for k.ll.Len() >= k.max {
		last := k.ll.Back()
		k.ll.Remove(last)
		delete(k.m, last.Value.(*limEntry).key)
	}
	le := &limEntry{key: key, lim: rate.NewLimiter(k.limit, k.burst)}
	k.m[key] = k.ll.PushFront(le)
	return le
}

// ticket is one attempt admitted by a keyedLimiter.
type ticket struct {
	k    *keyedLimiter
	e    *limEntry
	once sync.Once
}

// done ends the attempt; counted takes its token from the bucket.
func (t *ticket) done(counted bool) {
	t.once.Do(func() {
		t.k.mu.Lock()
		defer t.k.mu.Unlock()
		t.e.inflight--
		if counted {
			t.e.lim.ReserveN(time.Now(), 1) // always takes the token
		}
	})
}

// admit lets an attempt for key go ahead when a token is left (counting
// the attempts in flight), or returns how long until one is.
func (k *keyedLimiter) admit(key string) (*ticket, time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.entry(key)
	now := time.Now()
	if short := 1 + float64(e.inflight) - e.lim.TokensAt(now); short > 0 {
		wait := time.Duration(short / float64(k.limit) * float64(time.Second))
		if k.limit <= 0 || wait <= 0 {
			wait = time.Second
		}
		return nil, wait
	}
	e.inflight++
	return &ticket{k: k, e: e}, 0
}

// take admits an attempt that always counts (a reset request, a
// registration).
func (k *keyedLimiter) take(key string) (bool, time.Duration) {
	t, wait := k.admit(key)
	if t == nil {
		return false, wait
	}
	t.done(true)
	return true, 0
}

// lruSet remembers keys for a while, in a bounded LRU table.
type lruSet struct {
	mu  sync.Mutex
	ttl time.Duration
	max int
	ll  *list.List // of *setEntry
	m   map[string]*list.Element
}

type setEntry struct {
	key  string
	seen time.Time
}

func newLRUSet(ttl time.Duration, max int) *lruSet {
	return &lruSet{ttl: ttl, max: max, ll: list.New(), m: map[string]*list.Element{}}
}

func (s *lruSet) add(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		e.Value.(*setEntry).seen = time.Now()
		s.ll.MoveToFront(e)
		return
	}
	for s.ll.Len() >= s.max {
		last := s.ll.Back()
		s.ll.Remove(last)
		delete(s.m, last.Value.(*setEntry).key)
	}
	s.m[key] = s.ll.PushFront(&setEntry{key: key, seen: time.Now()})
}

func (s *lruSet) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok {
		return false
	}
	if time.Since(e.Value.(*setEntry).seen) > s.ttl {
		s.ll.Remove(e)
		delete(s.m, key)
		return false
	}
	return true
}

// accountLimits are the rate limits of the anonymous account endpoints
// (see config.Limits).
type accountLimits struct {
	loginIP, loginAccount *keyedLimiter // failed logins
	resetIP, resetMail    *keyedLimiter // reset requests; reset mails
	registerIP            *keyedLimiter // anonymous registrations
	// known holds "<email> <ip>" pairs that logged in successfully lately:
	// the per-account limit does not apply to them, so that an attack on an
	// account from elsewhere does not lock its owner out of a client it
	// already used (the per-IP limit still does).
	known *lruSet
}

func newAccountLimits(l *config.Limits) *accountLimits {
	return &accountLimits{
		loginIP:      newKeyedLimiter(l.LoginIPEveryDur, l.LoginIPBurst, l.Tracked),
		loginAccount: newKeyedLimiter(l.LoginAccountEveryDur, l.LoginAccountBurst, l.Tracked),
		resetIP:      newKeyedLimiter(l.ResetIPEveryDur, l.ResetIPBurst, l.Tracked),
		resetMail:    newKeyedLimiter(l.ResetMailEveryDur, l.ResetMailBurst, l.Tracked),
		registerIP:   newKeyedLimiter(l.RegisterIPEveryDur, l.RegisterIPBurst, l.Tracked),
		known:        newLRUSet(30*24*time.Hour, l.Tracked),
	}
}

// clientIP is the connection's remote address. X-Forwarded-For is not
// trusted: behind a proxy every client shares the proxy's address.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// tooMany is the 429 answer, with Retry-After in whole seconds.
func tooMany(c *call, wait time.Duration, what string) error {
	secs := int((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	c.w.Header().Set("Retry-After", strconv.Itoa(secs))
	e := errStatus(http.StatusTooManyRequests, "too many %s: try again in %d seconds", what, secs)
	e.Extra = map[string]any{"retry_after": secs}
	return e
}
