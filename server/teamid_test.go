package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/julienschmidt/httprouter"

	"github.com/berthpaas/berth/backends/storetest"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
)

func callAs(ctx context.Context, email string) *call {
	return &call{r: httptest.NewRequest("GET", "/", nil).WithContext(ctx), id: &engine.Identity{Email: email}, log: hclog.NewNullLogger()}
}

// A maintainer role given to a user (POST .../maintainers) while DELETE
// /users removes the account must not survive it: whoever registers the
// email next would inherit it. The account is deleted behind the check
// that the user exists; the grant then fails (404) instead. (The engine's
// tests cover the same race for team membership.)
func TestGrantRacesUserRemoval(t *testing.T) {
	s, _ := newTestServer(t, nil)
	ctx := t.Context()
	for _, e := range []string{"o@b.co"} {
		if _, err := engine.CreateUser(ctx, s.eng.Store(), e, "password", false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.eng.RegisterApp(ctx, &engine.Identity{Email: "o@b.co"}, engine.NewApp{Name: "kept"}); err != nil {
		t.Fatal(err)
	}
	for _, grant := range []struct {
		name string
		run  func(c *call) (any, error)
		ps   httprouter.Params
		body string
	}{
		{"maintainer", s.addMaintainer, httprouter.Params{{Key: "app", Value: "kept"}}, `{"username":"leaver@b.co","role":"admin"}`},
	} {
		if _, err := engine.CreateUser(ctx, s.eng.Store(), "leaver@b.co", "password", false); err != nil {
			t.Fatal(err)
		}
		var rmErr error
		hooked := &storetest.Hooked{Store: s.eng.Store(), Hooks: map[string]func(){"get:" + state.UserKey("leaver@b.co"): func() {
			_, rmErr = s.removeUser(callAs(ctx, "leaver@b.co"))
		}}}
		s.eng.ReplaceStore(hooked)
		c := &call{r: httptest.NewRequest("POST", "/", strings.NewReader(grant.body)).WithContext(ctx), ps: grant.ps, id: &engine.Identity{Email: "o@b.co"}, log: hclog.NewNullLogger()}
		_, err := grant.run(c)
		s.eng.ReplaceStore(hooked.Store)
		if rmErr != nil {
			t.Fatalf("%s: removing the user: %v", grant.name, rmErr)
		}
		if status, _ := errorStatus(err); status != http.StatusNotFound {
			t.Errorf("%s: granted to a user removed meanwhile: %v (want 404)", grant.name, err)
		}
		// The email registered again has no role and is in no team.
		if _, err := engine.CreateUser(ctx, s.eng.Store(), "leaver@b.co", "password", false); err != nil {
			t.Fatal(err)
		}
		app, _ := state.GetApp(ctx, s.eng.Store(), "kept")
		if err := s.eng.Allowed(ctx, &engine.Identity{Email: "leaver@b.co"}, engine.ActAppRead, app); err == nil {
			t.Errorf("%s: the re-registered email has a role on the app (maintainers %v)", grant.name, app.Maintainers)
		}
		if _, err := s.removeUser(callAs(ctx, "leaver@b.co")); err != nil {
			t.Fatal(err)
		}
	}
}
