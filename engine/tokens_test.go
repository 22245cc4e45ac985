package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/berthpaas/berth/engine/state"
)

// An app token is bound to the app it was issued for: even if removing the
// app did not revoke it, an app registered later under the same name does
// not accept it.
func TestAppTokenBoundToAppIncarnation(t *testing.T) {
	s, _ := newTestEngine(t, nil)
	ctx := t.Context()
	for _, e := range []string{"first@b.co", "second@b.co"} {
		if _, err := CreateUser(ctx, s.store, e, "password", false); err != nil {
			t.Fatal(err)
		}
	}
	first := &Identity{Email: "first@b.co"}
	app, err := s.RegisterApp(ctx, first, NewApp{Name: "reused"})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.issueAppToken(ctx, first.Email, app, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	auth := func() (*Identity, error) { return s.Authenticate(ctx, tok) }
	if id, err := auth(); err != nil || !id.AppToken || id.App != "reused" {
		t.Fatalf("a fresh app token: %+v, %v", id, err)
	}

	// Remove the app without revoking its tokens, and register it again.
	if err := s.unregisterApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	if _, err := s.RegisterApp(ctx, &Identity{Email: "second@b.co"}, NewApp{Name: "reused"}); err != nil {
		t.Fatal(err)
	}
	id, err := auth()
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("the token of a removed app acts on a new app of the same name: %+v, %v", id, err)
	}
}

// Tokens issued before they recorded their app's creation time are
// accepted only if they are younger than the app.
func TestLegacyAppTokenIncarnation(t *testing.T) {
	app := &state.App{Name: "a", Created: time.Date(2024, 5, 1, 10, 0, 0, 500, time.UTC)}
	for created, want := range map[string]bool{
		"2024-05-01T10:00:00Z": true,
		"2024-05-01T11:00:00Z": true,
		"2024-05-01T09:59:59Z": false,
		"garbage":              false,
	} {
		if got := sameIncarnation(map[string]string{"created": created}, app); got != want {
			t.Errorf("token created %s, app created %s: %v, want %v", created, app.Created, got, want)
		}
	}
	if !sameIncarnation(map[string]string{"app_created": app.Created.Format(time.RFC3339Nano)}, app) {
		t.Error("a token bound to the app is refused")
	}
	if sameIncarnation(map[string]string{"app_created": app.Created.Add(time.Second).Format(time.RFC3339Nano), "created": "2024-05-01T11:00:00Z"}, app) {
		t.Error("a token bound to another incarnation is accepted")
	}
}

func TestCreateAppToken(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := t.Context()
	a := mustUser(t, e, "a@b.co", "secret1", false)
	b := mustUser(t, e, "b@b.co", "secret1", false)
	if _, err := e.RegisterApp(ctx, a, NewApp{Name: "hello"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateAppToken(ctx, a, "", 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no app: %v", err)
	}
	if _, err := e.CreateAppToken(ctx, b, "hello", 0); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a user with no role on the app: %v", err)
	}
	if _, err := e.CreateAppToken(ctx, a, "nope", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an unknown app: %v", err)
	}
	if _, err := e.CreateAppToken(ctx, a, "hello", int64(e.cfg.Users.MaxTokenTTLDur/time.Second)+1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("longer than users.max_token_ttl: %v", err)
	}
	tok, err := e.CreateAppToken(ctx, a, "hello", 60)
	if err != nil || tok.App != "hello" || time.Until(tok.Expires) > time.Minute || time.Until(tok.Expires) < 50*time.Second {
		t.Fatalf("an app token for a minute: %+v, %v", tok, err)
	}
	id, err := e.Authenticate(ctx, tok.Token)
	if err != nil || !id.AppToken || id.App != "hello" || id.Email != "a@b.co" || id.Admin {
		t.Fatalf("the app token's identity: %+v, %v", id, err)
	}
	if _, err := e.CreateAppToken(ctx, id, "hello", 0); !errors.Is(err, ErrForbidden) {
		t.Fatalf("an app token creating a token: %v", err)
	}
	if err := e.Logout(ctx, id); !errors.Is(err, ErrForbidden) {
		t.Fatalf("an app token logging out: %v", err)
	}
	if _, err := e.Authenticate(ctx, "x"+tok.Token); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("an unknown token: %v", err)
	}
}
