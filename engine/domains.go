package engine

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// MaxDomains is the most custom domains one app may have.
const MaxDomains = 32

// Custom domains (tsuru's cname) are extra host names in an app's Routes:
// the scheduler's router (local) or the Consul service tags (Nomad) send
// them to the app's web proc. Each has a record (state.DomainKey) naming
// its app, created with check-and-set in the transaction that writes the
// app record, so a host name belongs to one app only. Host names under the
// apps domain (config apps.domain) are the apps' own and cannot be added.

// Domains answers an app's routes and, of them, its custom domains.
func (s *Engine) Domains(ctx context.Context, id *Identity, app string) (routes, custom []string, err error) {
	a, err := s.LoadApp(ctx, id, app, ActAppRead)
	if err != nil {
		return nil, nil, err
	}
	return append([]string{}, a.Routes...), s.CustomDomains(a), nil
}

// CustomDomains are the routes of a that are not under the apps domain.
func (s *Engine) CustomDomains(a *state.App) []string {
	out := []string{}
	for _, r := range a.Routes {
		if !s.underAppsDomain(r) {
			out = append(out, r)
		}
	}
	return out
}

func (s *Engine) underAppsDomain(host string) bool {
	d := strings.ToLower(strings.TrimSuffix(s.cfg.Apps.Domain, "."))
	return d != "" && (host == d || strings.HasSuffix(host, "."+d))
}

// normalizeHosts lowercases the host names, drops a trailing dot and
// duplicates, and checks each is a DNS host name outside the apps domain.
func (s *Engine) normalizeHosts(hosts []string) ([]string, error) {
	if len(hosts) == 0 {
		return nil, badRequest("name the host names: {\"cname\": [\"www.example.com\"]}")
	}
	var out []string
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if err := names.Host(h); err != nil {
			return nil, invalid(err)
		}
		if !strings.Contains(h, ".") {
			return nil, InvalidField("cname", "host name %q must have at least two labels (e.g. www.example.com)", h)
		}
		if s.underAppsDomain(h) {
			return nil, InvalidField("cname", "host name %q is under the apps domain %s, whose names belong to the apps themselves", h, s.cfg.Apps.Domain)
		}
		if !Contains(out, h) {
			out = append(out, h)
		}
	}
	return out, nil
}

// AddDomains gives an app extra host names. A host name another app has
// is a conflict naming that app. A deployed app's routes are redeployed
// through its lease (the Change); an undeployed one gets them on its next
// deploy (the Change has no Deploy). Hosts the app already has are left
// as they are.
func (s *Engine) AddDomains(ctx context.Context, id *Identity, app string, hosts []string) (*Change, error) {
	a, err := s.LoadApp(ctx, id, app, ActAppDomainAdd)
	if err != nil {
		return nil, err
	}
	hosts, err = s.normalizeHosts(hosts)
	if err != nil {
		return nil, err
	}
	by := id.Name()
	return s.domainChange(ctx, id, a.Name, "add domain "+strings.Join(hosts, " "), func(x *state.App) ([]backends.TxnOp, error) {
		var ops []backends.TxnOp
		for _, h := range hosts {
			if Contains(x.Routes, h) {
				continue
			}
			p, _, err := s.store.Get(ctx, state.DomainKey(h), nil)
			if err != nil {
				return nil, err
			}
			var index uint64
			if p != nil {
				owner, err := s.domainOwner(ctx, h, p)
				if err != nil {
					return nil, err
				}
				if owner != "" && owner != x.Name {
					return nil, conflict("host name %q is a domain of app %q", h, owner)
				}
				index = p.ModifyIndex
			}
			b, err := json.Marshal(&state.Domain{Host: h, App: x.Name, By: by, Added: time.Now().UTC()})
			if err != nil {
				return nil, err
			}
			ops = append(ops, backends.TxnOp{Verb: backends.TxnCAS, Key: state.DomainKey(h), Value: b, Index: index})
			x.Routes = append(x.Routes, h)
		}
		if len(s.CustomDomains(x)) > MaxDomains {
			return nil, InvalidField("cname", "an app may have at most %d custom domains", MaxDomains)
		}
		return ops, nil
	})
}

// domainOwner answers the app that has host among its routes, given its
// record p: the app p names, or (when that app no longer has it: it was
// removed, or its routes were swapped) any app with it; "" when none has
// it and the record is stale.
func (s *Engine) domainOwner(ctx context.Context, host string, p *backends.KVPair) (string, error) {
	var d state.Domain
	if err := json.Unmarshal(p.Value, &d); err != nil {
		return "", err
	}
	a, err := state.GetApp(ctx, s.store, d.App)
	if err == nil && Contains(a.Routes, host) {
		return a.Name, nil
	}
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return "", err
	}
	apps, err := state.List[state.App](ctx, s.store, state.AppsPrefix)
	if err != nil {
		return "", err
	}
	for _, a := range apps {
		if Contains(a.Routes, host) {
			return a.Name, nil
		}
	}
	return "", nil
}

// RemoveDomains takes custom host names from an app (each must be one of
// its custom domains), redeploying its routes as AddDomains does.
func (s *Engine) RemoveDomains(ctx context.Context, id *Identity, app string, hosts []string) (*Change, error) {
	a, err := s.LoadApp(ctx, id, app, ActAppDomainRemove)
	if err != nil {
		return nil, err
	}
	if len(hosts) == 0 {
		return nil, badRequest("name the host names to remove: ?cname=HOST or {\"cname\": [...]}")
	}
	var list []string
	for _, h := range hosts {
		if h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), "."); !Contains(list, h) {
			list = append(list, h)
		}
	}
	hosts = list
	return s.domainChange(ctx, id, a.Name, "remove domain "+strings.Join(hosts, " "), func(x *state.App) ([]backends.TxnOp, error) {
		var ops []backends.TxnOp
		for _, h := range hosts {
			if !Contains(s.CustomDomains(x), h) {
				return nil, notFound("app %q has no custom domain %q", x.Name, h)
			}
			p, _, err := s.store.Get(ctx, state.DomainKey(h), nil)
			if err != nil {
				return nil, err
			}
			if p != nil {
				// A record naming another app (the host came with a swap of
				// routes) is stale: this app has the host, so it goes too.
				ops = append(ops, backends.TxnOp{Verb: backends.TxnDeleteCAS, Key: state.DomainKey(h), Index: p.ModifyIndex})
			}
			out := x.Routes[:0]
			for _, r := range x.Routes {
				if r != h {
					out = append(out, r)
				}
			}
			x.Routes = out
		}
		return ops, nil
	})
}

// domainChange applies fn to the app record and writes it with the
// domain records fn answers, in one transaction (check-and-set on every
// record, retried on a concurrent change). A deployed app is changed
// through its lease, as changeApp does: the generation is bumped, the
// pending deploy recorded and the reconciler kicked. The Change has the
// app as written; its Deploy is nil for an undeployed app, or when fn
// changed nothing.
func (s *Engine) domainChange(ctx context.Context, id *Identity, name, op string, fn func(a *state.App) ([]backends.TxnOp, error)) (*Change, error) {
	cur, err := state.GetApp(ctx, s.store, name)
	if err != nil {
		return nil, err
	}
	holder := id.Name()
	locked := cur.Deployed
	if locked {
		if err := s.lockApp(ctx, name, holder, op, cur.Generation+1); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*Change, error) {
		if locked {
			s.UnlockApp(ctx, name, -1)
		}
		return nil, err
	}
	for attempt := 0; attempt < 64; attempt++ {
		a, idx, err := state.Get[state.App](ctx, s.store, state.AppKey(name))
		if errors.Is(err, state.ErrNotFound) {
			return fail(notFound("app %q not found", name))
		}
		if err != nil {
			return fail(err)
		}
		if a.Deployed != locked {
			return fail(conflict("app %q was deployed or undeployed meanwhile; try again", name))
		}
		before := append([]string(nil), a.Routes...)
		extra, err := fn(a)
		if err != nil {
			return fail(err)
		}
		if sameStrings(before, a.Routes) && len(extra) == 0 {
			_, err := fail(nil)
			return &Change{App: a}, err
		}
		ab, err := json.Marshal(a)
		if err != nil {
			return fail(err)
		}
		ops := []backends.TxnOp{{Verb: backends.TxnCAS, Key: state.AppKey(name), Value: ab, Index: idx}}
		var d *state.Deploy
		if locked {
			prev, didx, err := s.getDeployIndex(ctx, name)
			if err != nil {
				return fail(err)
			}
			a.Generation++
			ab, err = json.Marshal(a)
			if err != nil {
				return fail(err)
			}
			ops[0].Value = ab
			d = &state.Deploy{App: name, Generation: a.Generation, Operation: op, MetaVersion: a.MetaVersion, State: state.DeployPending, By: holder, Updated: time.Now().UTC()}
			if prev != nil {
				d.LastRunning = prev.LastRunning
			}
			l := &state.Lock{Holder: holder, Operation: op, Generation: a.Generation, Expires: time.Now().Add(s.cfg.Reconcile.LockTTLDur).UTC()}
			db, _ := json.Marshal(d)
			lb, _ := json.Marshal(l)
			ops = append(ops,
				backends.TxnOp{Verb: backends.TxnCAS, Key: state.DeployKey(name), Value: db, Index: didx},
				backends.TxnOp{Verb: backends.TxnSet, Key: state.LockKey(name), Value: lb})
		}
		ops = append(ops, extra...)
		if len(ops) > backends.MaxTxnOps {
			return fail(badRequest("too many host names in one request"))
		}
		_, err = s.store.Txn(ctx, ops)
		if errors.Is(err, backends.ErrCASConflict) {
			if err := ctx.Err(); err != nil {
				return fail(err)
			}
			time.Sleep(time.Duration(attempt) * time.Millisecond)
			continue
		}
		if err != nil {
			return fail(err)
		}
		if !locked {
			return &Change{App: a}, nil
		}
		s.Kick(name)
		return &Change{App: a, Deploy: d}, nil
	}
	return fail(conflict("too many concurrent changes; try again"))
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
