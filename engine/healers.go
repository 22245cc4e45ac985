package engine

import (
	"context"
	"sort"
)

// healers are the named repairs an admin can run now.
var healers = map[string]string{
	"reconcile": "reconcile every app against the scheduler now (resubmit lost apps, stop orphans)",
	"services":  "repair drift between service instances and their brokers (orphaned instances, missing binding credentials)",
}

// Healer is a named repair and what it does.
type Healer struct {
	Name        string
	Description string
}

// Healers lists the repairs RunHealer runs, by name.
func (s *Engine) Healers() []Healer {
	out := make([]Healer, 0, len(healers))
	for k, v := range healers {
		out = append(out, Healer{Name: k, Description: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// HealerResult is what a healer did: the "services" healer names what it
// repaired, the "reconcile" healer answers its reconciler pass.
type HealerResult struct {
	Name     string
	Repaired []string    // "services"
	Pass     *PassResult // "reconcile"
}

// RunHealer runs a named repair now (site admins only).
func (s *Engine) RunHealer(ctx context.Context, id *Identity, name string) (*HealerResult, error) {
	if err := s.Allowed(ctx, id, ActHealerRun, nil); err != nil {
		return nil, err
	}
	if _, ok := healers[name]; !ok {
		return nil, notFound("no healer %q; see GET /healers", name)
	}
	if name == "services" {
		repaired := s.ServiceSweep(ctx)
		if repaired == nil {
			repaired = []string{}
		}
		return &HealerResult{Name: name, Repaired: repaired}, nil
	}
	if s.sched == nil {
		return nil, Unavailable("no scheduler is configured")
	}
	res, err := s.heal(ctx)
	if err != nil {
		return nil, err
	}
	return &HealerResult{Name: name, Pass: res}, nil
}
