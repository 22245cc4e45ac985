package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/berthpaas/berth/backends"
)

// SchedulerStale says that the scheduler did not answer a read: the state
// shown is the last one it reported (of AsOf; none when AsOf is zero), and
// it has not answered since Since.
type SchedulerStale struct {
	Since time.Time // when the scheduler stopped answering about the app
	AsOf  time.Time // when the state shown was read; zero: none is known
	Error string    // why the last call failed
}

// lastKnown keeps the last status the scheduler reported of each app, for
// reads when the scheduler does not answer.
type lastKnown struct {
	mu   sync.Mutex
	apps map[string]*seenStatus
	// Once a call has failed, the scheduler is not asked again before
	// downUntil (reads of many apps answer at once, not one deadline
	// each); downErr is that failure.
	downUntil time.Time
	downErr   string
}

// schedulerRetryAfter is how long reads answer from the last known state
// without asking the scheduler again after a call failed.
const schedulerRetryAfter = 2 * time.Second

type seenStatus struct {
	st      *backends.AppStatus // nil: none known
	at      time.Time
	failing time.Time // when calls started failing (zero: the last one answered)
}

// schedStatus asks the scheduler about app within the scheduler deadline
// (config scheduler_timeout). The schedulers answer from memory (Nomad's
// from its view fed by the event stream, the local one from its own
// state): reading N apps makes no scheduler request per app. A
// scheduler's own stale answer (backends.StaleStatus) is shown with its
// age. When the scheduler fails or does not answer
// in time, it returns the last status it reported (nil if none), with a
// SchedulerStale saying since when; ErrNotFound is returned as is.
func (s *Engine) schedStatus(ctx context.Context, app string) (*backends.AppStatus, *SchedulerStale, error) {
	timeout := s.cfg.SchedulerTimeoutDur
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	s.known.mu.Lock()
	skip := time.Now().Before(s.known.downUntil)
	s.known.mu.Unlock()
	var st *backends.AppStatus
	var err error
	if !skip {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		st, err = s.sched.Status(cctx, app)
		cancel()
	}
	// A scheduler that answers from its own view (Nomad's event feed)
	// says itself how old a view it could not keep current is.
	var stale *backends.StaleStatus
	if !skip && errors.As(err, &stale) {
		return stale.Status, &SchedulerStale{Since: stale.Since, AsOf: stale.AsOf, Error: stale.Err.Error()}, nil
	}
	s.known.mu.Lock()
	defer s.known.mu.Unlock()
	if s.known.apps == nil {
		s.known.apps = map[string]*seenStatus{}
	}
	switch {
	case skip:
		err = errors.New(s.known.downErr)
	case err == nil:
		s.known.apps[app] = &seenStatus{st: st, at: time.Now().UTC()}
		return st, nil, nil
	case errors.Is(err, backends.ErrNotFound):
		delete(s.known.apps, app)
		return nil, nil, err
	case ctx.Err() != nil:
		return nil, nil, ctx.Err() // the caller gave up, not the scheduler
	}
	if !skip {
		s.known.downUntil, s.known.downErr = time.Now().Add(schedulerRetryAfter), err.Error()
	}
	seen := s.known.apps[app]
	if seen == nil {
		seen = &seenStatus{}
		s.known.apps[app] = seen
	}
	if seen.failing.IsZero() {
		seen.failing = time.Now().UTC()
	}
	if !skip {
		s.log.Warn("the scheduler did not answer; showing its last known state", "app", app, "since", seen.failing, "as_of", seen.at, "error", err)
	}
	return seen.st, &SchedulerStale{Since: seen.failing, AsOf: seen.at, Error: err.Error()}, nil
}
