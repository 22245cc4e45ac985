package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// currentRelease is the release the app is deployed at.
func (s *Engine) currentRelease(ctx context.Context, a *state.App) (*state.Release, error) {
	rel, _, err := state.Get[state.Release](ctx, s.store, state.ReleaseKey(a.Name, a.MetaVersion))
	if errors.Is(err, state.ErrNotFound) {
		return nil, conflict("release %s of app %q is missing", a.MetaVersion, a.Name)
	}
	return rel, err
}

// findProc validates a proc name and finds it in the app's current
// release.
func (s *Engine) findProc(ctx context.Context, a *state.App, name string) (*release.Proc, error) {
	if err := names.Proc(name); err != nil {
		return nil, invalid(err)
	}
	rel, err := s.currentRelease(ctx, a)
	if err != nil {
		return nil, err
	}
	p := rel.Spec.Proc(name)
	if p == nil {
		return nil, notFound("app %q has no proc %q in release %s", a.Name, name, a.MetaVersion)
	}
	return p, nil
}

// loadProc loads a deployed app for act and checks that proc is in its
// current release.
func (s *Engine) loadProc(ctx context.Context, id *Identity, app, proc string, act Action) (*state.App, error) {
	a, err := s.loadDeployed(ctx, id, app, act)
	if err != nil {
		return nil, err
	}
	if _, err := s.findProc(ctx, a, proc); err != nil {
		return nil, err
	}
	return a, nil
}

// GetProc is one proc of a deployed app the caller may read.
func (s *Engine) GetProc(ctx context.Context, id *Identity, app, proc string) (*ProcStatus, error) {
	a, err := s.loadProc(ctx, id, app, proc, ActAppRead)
	if err != nil {
		return nil, err
	}
	v, err := s.deployed(ctx, a)
	if err != nil {
		return nil, err
	}
	for i := range v.Procs {
		if v.Procs[i].Proc.Name == proc {
			return &v.Procs[i], nil
		}
	}
	return nil, notFound("proc %q not found", proc)
}

func setOverride(a *state.App, proc string, o state.ProcOverride) {
	if a.Procs == nil {
		a.Procs = map[string]state.ProcOverride{}
	}
	a.Procs[proc] = o
}

// DeployProc deploys again a proc that was undeployed (or failed); its
// instances are restarted.
func (s *Engine) DeployProc(ctx context.Context, id *Identity, app, proc string) (*Change, error) {
	a, err := s.loadProc(ctx, id, app, proc, ActProcDeploy)
	if err != nil {
		return nil, err
	}
	na, d, err := s.changeApp(ctx, id, a.Name, "deploy proc "+proc, func(x *state.App) error {
		o := x.Procs[proc]
		o.Undeployed = false
		setOverride(x, proc, o)
		x.RestartGen++
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Change{App: na, Deploy: d, Proc: proc}, nil
}

// ProcSize is a change of a proc's size: its number of instances, or its
// CPU and/or memory (a value release.MemoryValue accepts: "64m", 64...).
// Nil fields are left alone.
type ProcSize struct {
	NumInstances *int
	CPU          *float64
	Memory       any
}

// ResizeProc scales a proc (NumInstances) or resizes it (CPU, Memory).
// The two kinds cannot take effect together: with both, NumInstances is
// applied and CPU/Memory are not, and Change.Ignored names them.
func (s *Engine) ResizeProc(ctx context.Context, id *Identity, app, proc string, in ProcSize) (*Change, error) {
	a, err := s.loadProc(ctx, id, app, proc, ActProcPatch)
	if err != nil {
		return nil, err
	}
	if in.NumInstances == nil && in.CPU == nil && in.Memory == nil {
		return nil, badRequest("send num_instances, or cpu and/or memory")
	}
	ignored := []string{}
	var op string
	var apply func(o *state.ProcOverride)
	if in.NumInstances != nil {
		if err := release.CheckInstances(*in.NumInstances); err != nil {
			return nil, invalid(err)
		}
		n := *in.NumInstances
		op = fmt.Sprintf("scale %s to %d", proc, n)
		apply = func(o *state.ProcOverride) { o.NumInstances = &n }
		if in.CPU != nil {
			ignored = append(ignored, "cpu")
		}
		if in.Memory != nil {
			ignored = append(ignored, "memory")
		}
	} else {
		var cpu *float64
		var mem *int
		if in.CPU != nil {
			if err := release.CheckCPU(*in.CPU); err != nil {
				return nil, invalid(err)
			}
			c := *in.CPU
			cpu = &c
		}
		if in.Memory != nil {
			m, err := release.MemoryValue(in.Memory)
			if err != nil {
				return nil, invalid(err)
			}
			mem = &m
		}
		op = "resize " + proc
		apply = func(o *state.ProcOverride) {
			if cpu != nil {
				o.CPU = cpu
			}
			if mem != nil {
				o.MemoryMB = mem
			}
		}
	}
	na, d, err := s.changeApp(ctx, id, a.Name, op, func(x *state.App) error {
		o := x.Procs[proc]
		apply(&o)
		setOverride(x, proc, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	c := &Change{App: na, Deploy: d, Proc: proc}
	if len(ignored) > 0 {
		sort.Strings(ignored)
		c.Ignored = ignored
	}
	return c, nil
}

// UndeployProc stops one proc of a deployed app.
func (s *Engine) UndeployProc(ctx context.Context, id *Identity, app, proc string) (*Change, error) {
	a, err := s.loadProc(ctx, id, app, proc, ActProcUndeploy)
	if err != nil {
		return nil, err
	}
	na, d, err := s.changeApp(ctx, id, a.Name, "undeploy proc "+proc, func(x *state.App) error {
		o := x.Procs[proc]
		if o.Undeployed {
			return notFound("proc %q of app %q is not deployed", proc, x.Name)
		}
		o.Undeployed = true
		setOverride(x, proc, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Change{App: na, Deploy: d, Proc: proc}, nil
}
