package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
)

// An app token is bound to the app it was issued for: even if removing the
// app did not revoke it, an app registered later under the same name does
// not accept it.
func TestAppTokenBoundToAppIncarnation(t *testing.T) {
	s, _ := newTestServer(t, nil)
	ctx := t.Context()
	for _, e := range []string{"first@b.co", "second@b.co"} {
		if _, err := CreateUser(ctx, s.store, e, "password", false); err != nil {
			t.Fatal(err)
		}
	}
	first := &engine.Identity{Email: "first@b.co"}
	app, err := s.eng.RegisterApp(ctx, first, engine.NewApp{Name: "reused"})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.eng.IssueAppToken(ctx, first.Email, app, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	auth := func() (*engine.Identity, error) {
		r := httptest.NewRequest("GET", "/apps/reused", nil)
		r.Header.Set("Authorization", "bearer "+tok)
		return s.eng.Authenticate(r)
	}
	if id, err := auth(); err != nil || !id.AppToken || id.App != "reused" {
		t.Fatalf("a fresh app token: %+v, %v", id, err)
	}

	// Remove the app without revoking its tokens, and register it again.
	if err := s.eng.UnregisterApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	if _, err := s.eng.RegisterApp(ctx, &engine.Identity{Email: "second@b.co"}, engine.NewApp{Name: "reused"}); err != nil {
		t.Fatal(err)
	}
	id, err := auth()
	if status, _ := errorStatus(err); err == nil || status != http.StatusUnauthorized {
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
		if got := engine.SameIncarnation(map[string]string{"created": created}, app); got != want {
			t.Errorf("token created %s, app created %s: %v, want %v", created, app.Created, got, want)
		}
	}
	if !engine.SameIncarnation(map[string]string{"app_created": app.Created.Format(time.RFC3339Nano)}, app) {
		t.Error("a token bound to the app is refused")
	}
	if engine.SameIncarnation(map[string]string{"app_created": app.Created.Add(time.Second).Format(time.RFC3339Nano), "created": "2024-05-01T11:00:00Z"}, app) {
		t.Error("a token bound to another incarnation is accepted")
	}
}
