package engine

import (
	"context"
	"sync"
	"time"
)

// BackendHealth is one backend's health.
type BackendHealth struct {
	// Backend is the implementation, e.g. "bolt", "consul".
	Backend string
	OK      bool
	// Err is why its health check failed.
	Err string
}

// Health checks each backend (store, secrets, and the scheduler when there
// is one) at once, each for at most 5 seconds, and reports them by role.
func (s *Engine) Health(ctx context.Context) map[string]BackendHealth {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	checks := map[string]func(context.Context) error{
		"store":   s.store.Health,
		"secrets": s.secrets.Health,
	}
	if s.sched != nil {
		checks["scheduler"] = s.sched.Health
	}
	out := map[string]BackendHealth{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for role, check := range checks {
		wg.Add(1)
		go func(role string, check func(context.Context) error) {
			defer wg.Done()
			h := BackendHealth{Backend: s.names[role], OK: true}
			if err := check(ctx); err != nil {
				h.OK, h.Err = false, err.Error()
			}
			mu.Lock()
			out[role] = h
			mu.Unlock()
		}(role, check)
	}
	wg.Wait()
	return out
}
