package engine

import (
	"errors"
	"testing"

	"github.com/berthpaas/berth/config"
)

func TestUsersListIsForSiteAdmins(t *testing.T) {
	e, _ := newTestEngine(t, func(cfg *config.Config, _ *Deps) { cfg.Admins = []string{"root@b.co"} })
	ctx := t.Context()
	for _, em := range []string{"zed@b.co", "ann@b.co", "root@b.co"} {
		if _, err := CreateUser(ctx, e.store, em, "secret1", false); err != nil {
			t.Fatal(err)
		}
	}
	ann := &Identity{Email: "ann@b.co"}
	if _, err := e.CreateTeam(ctx, ann, "alpha"); err != nil {
		t.Fatal(err)
	}
	limit := 3
	if err := e.SetQuota(ctx, &Identity{Email: "root@b.co", Admin: true}, "zed@b.co", &limit); err != nil {
		t.Fatal(err)
	}
	// Others are refused: a user, an app token, no identity.
	for name, id := range map[string]*Identity{"user": ann, "app token": {Email: "root@b.co", AppToken: true, App: "x"}} {
		if _, err := e.Users(ctx, id); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s listing users: %v, want forbidden", name, err)
		}
	}
	if _, err := e.Users(ctx, nil); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("listing users anonymously: %v, want unauthenticated", err)
	}
	us, err := e.Users(ctx, &Identity{Email: "root@b.co", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 3 || us[0].Email != "ann@b.co" || us[1].Email != "root@b.co" || us[2].Email != "zed@b.co" {
		t.Fatalf("users = %+v, want ann, root, zed", us)
	}
	if len(us[0].Teams) != 1 || us[0].Teams[0] != "alpha" || us[0].Admin {
		t.Errorf("ann = %+v, want team alpha, not admin", us[0])
	}
	if !us[1].Admin {
		t.Errorf("root (a configured admin) = %+v, want admin", us[1])
	}
	if us[2].Quota.Limit != 3 || us[2].Quota.Available != 3 {
		t.Errorf("zed's quota = %+v, want 3 of 3", us[2].Quota)
	}
}
