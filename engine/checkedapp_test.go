package engine

import (
	"errors"
	"testing"
)

// The app the HTTP layer loaded for a request is handed to the first
// LoadApp of it (no second read), once, and the action LoadApp asks for is
// still checked on it.
func TestLoadAppTakesCheckedAppOnce(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := t.Context()
	a := mustUser(t, e, "a@b.co", "secret1", false)
	b := mustUser(t, e, "b@b.co", "secret1", false)
	if _, err := e.RegisterApp(ctx, a, NewApp{Name: "hello"}); err != nil {
		t.Fatal(err)
	}
	checked, err := e.LoadApp(ctx, a, "hello", ActAppRead)
	if err != nil {
		t.Fatal(err)
	}
	rctx := WithCheckedApp(ctx, checked)
	if got, err := e.LoadApp(rctx, a, "other", ActAppRead); err == nil || got == checked {
		t.Fatalf("a load of another app got %v, %v", got, err)
	}
	first, err := e.LoadApp(rctx, a, "hello", ActAppRead)
	if err != nil || first != checked {
		t.Fatalf("the first load did not take the checked record: %p vs %p, %v", first, checked, err)
	}
	second, err := e.LoadApp(rctx, a, "hello", ActAppRead)
	if err != nil || second == checked || second.Name != "hello" {
		t.Fatalf("the second load shares the record: %p, %v", second, err)
	}
	// Someone without a role on the app is refused, checked record or not.
	if _, err := e.LoadApp(WithCheckedApp(ctx, checked), b, "hello", ActAppRemove); !errors.Is(err, ErrForbidden) && !errors.Is(err, ErrNotFound) {
		t.Fatalf("another user's load of the checked app: %v, want forbidden", err)
	}
}
