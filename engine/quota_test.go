package engine

import (
	"errors"
	"testing"
)

func TestQuota(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := t.Context()
	a := mustUser(t, e, "a@b.co", "secret1", false)
	mustUser(t, e, "b@b.co", "secret1", false)
	admin := &Identity{Email: "op@b.co", Admin: true}
	def := *e.cfg.Users.DefaultQuota
	if _, err := e.RegisterApp(ctx, a, NewApp{Name: "hello"}); err != nil {
		t.Fatal(err)
	}
	q, err := e.Quota(ctx, a, "a@b.co")
	if err != nil || q.Limit != def || q.Available != def-1 {
		t.Fatalf("own quota: %+v, %v (default %d, one app)", q, err, def)
	}
	if _, err := e.Quota(ctx, a, "b@b.co"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("another user's quota: %v", err)
	}
	if _, err := e.Quota(ctx, admin, "nobody@b.co"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an unknown user's quota: %v", err)
	}
	zero := 0
	if err := e.SetQuota(ctx, a, "a@b.co", &zero); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a user setting its own quota: %v", err)
	}
	neg := -1
	if err := e.SetQuota(ctx, admin, "a@b.co", &neg); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a negative quota: %v", err)
	}
	if err := e.SetQuota(ctx, admin, "nobody@b.co", &zero); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an unknown user's quota: %v", err)
	}
	if err := e.SetQuota(ctx, admin, "a@b.co", &zero); err != nil {
		t.Fatal(err)
	}
	zero = 5 // the engine keeps its own copy
	if q, err := e.Quota(ctx, admin, "a@b.co"); err != nil || q.Limit != 0 || q.Available != 0 {
		t.Fatalf("after setting 0 (one app owned): %+v, %v", q, err)
	}
}
