package e2e

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// quota reads GET /quota/<email> as u.
func quotaOf(t testing.TB, b *Berth, u *User, email string) (items, available int) {
	t.Helper()
	r := b.do(t, "GET", "/quota/"+email, u, nil).want(t, http.StatusOK)
	if len(r.Obj()) != 2 || r.Num("items") < 0 || r.Num("available") < 0 {
		t.Fatalf("quota body is not {\"items\",\"available\"}: %s", r)
	}
	return int(r.Num("items")), int(r.Num("available"))
}

func testQuota(t *testing.T, b *Berth) {
	// default_quota = 2 in this scenario's config.
	u := b.newUser(t, "wolverine")
	other := b.newUser(t, "other")
	if i, a := quotaOf(t, b, u, u.Email); i != 2 || a != 2 {
		t.Fatalf("a new user's quota: items %d available %d, want 2 2", i, a)
	}
	b.do(t, "POST", "/apps", u, map[string]any{"name": "q-one"}).want(t, http.StatusOK)
	if _, a := quotaOf(t, b, u, u.Email); a != 1 {
		t.Errorf("available after one app: %d", a)
	}
	b.createApp(t, u, "q-two") // the LAIN surface counts against the same quota
	if i, a := quotaOf(t, b, u, u.Email); i != 2 || a != 0 {
		t.Errorf("quota after two apps: items %d available %d", i, a)
	}
	// Beyond the quota: 403 on both surfaces, and nothing is created.
	r := b.do(t, "POST", "/apps", u, map[string]any{"name": "q-three"}).want(t, http.StatusForbidden)
	if !strings.Contains(r.Str("error"), "quota") {
		t.Errorf("the refusal does not say why: %s", r)
	}
	b.do(t, "POST", "/api/v1/repos/", u, map[string]any{"appname": "q-three"}).want(t, http.StatusForbidden)
	b.do(t, "GET", "/apps/q-three", b.Admin, nil).want(t, http.StatusNotFound)
	if i, a := quotaOf(t, b, u, u.Email); i != 2 || a != 0 {
		t.Errorf("quota after refused creates: items %d available %d", i, a)
	}
	// Removing an app gives the quota back.
	b.do(t, "DELETE", "/apps/q-one", u, nil).want(t, http.StatusOK)
	if _, a := quotaOf(t, b, u, u.Email); a != 1 {
		t.Errorf("available after removing an app: %d", a)
	}
	b.do(t, "POST", "/apps", u, map[string]any{"name": "q-three"}).want(t, http.StatusOK)

	// Others' quotas are for admins only; unknown users are 404.
	b.do(t, "GET", "/quota/"+u.Email, other, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/quota/"+u.Email, nil, nil).want(t, http.StatusUnauthorized)
	b.do(t, "GET", "/quota/ghost@e2e.test", b.Admin, nil).want(t, http.StatusNotFound)
	b.do(t, "GET", "/quota/not-an-email", b.Admin, nil).want(t, http.StatusBadRequest)
	if i, a := quotaOf(t, b, b.Admin, u.Email); i != 2 || a != 0 {
		t.Errorf("the admin's view of the quota: %d %d", i, a)
	}
	// Admins raise it; users may not.
	b.do(t, "PUT", "/quota/"+u.Email, u, map[string]any{"limit": 100}).want(t, http.StatusForbidden)
	b.do(t, "PUT", "/quota/"+u.Email, b.Admin, map[string]any{"limit": -1}).want(t, http.StatusBadRequest)
	b.setQuota(t, u.Email, 5)
	if i, a := quotaOf(t, b, u, u.Email); i != 5 || a != 3 {
		t.Errorf("quota after the admin raised it: items %d available %d, want 5 3", i, a)
	}

	// Concurrent creates never exceed the quota: 8 at once, 3 fit.
	codes := make([]int, 8)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := b.try("POST", "/apps", u, map[string]any{"name": "race-" + string(rune('a'+i))}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			codes[i] = r.Code
		}(i)
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusOK:
			ok++
		case http.StatusForbidden:
			refused++
		}
	}
	if ok != 3 || refused != 5 {
		t.Errorf("8 concurrent creates with 3 apps of quota left: %d created, %d refused (codes %v)", ok, refused, codes)
	}
	if i, a := quotaOf(t, b, u, u.Email); i != 5 || a != 0 {
		t.Errorf("quota after the race: items %d available %d", i, a)
	}
	r = b.do(t, "GET", "/apps", u, nil).want(t, http.StatusOK)
	if len(r.List()) != 5 {
		t.Errorf("the user owns %d apps, want 5: %s", len(r.List()), r)
	}
}

func testAppTokens(t *testing.T, b *Berth) {
	owner := b.newUser(t, "owner")
	dev := b.newUser(t, "dev")
	b.createApp(t, owner, "tok-app")
	b.createApp(t, owner, "tok-other")
	b.addMaintainer(t, owner, "tok-app", dev.Email, "developer")

	r := b.do(t, "POST", "/tokens", owner, map[string]any{"appname": "tok-app"}).want(t, http.StatusOK)
	for _, k := range []string{"Token", "Creation", "Expires", "AppName"} {
		if _, ok := r.Obj()[k]; !ok {
			t.Errorf("app token answer lacks %q: %s", k, r)
		}
	}
	if r.Str("AppName") != "tok-app" || len(r.Str("Token")) < 32 || r.Num("Expires") <= 0 {
		t.Errorf("app token answer: %s", r)
	}
	if _, err := time.Parse(time.RFC3339, r.Str("Creation")); err != nil {
		t.Errorf("Creation %q is not a time: %v", r.Str("Creation"), err)
	}
	app := &User{Email: owner.Email, Token: r.Str("Token"), App: "tok-app"}

	// It acts on that one app only.
	b.do(t, "GET", "/apps/tok-app", app, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/api/v1/repos/tok-app/", app, nil).want(t, http.StatusOK)
	b.do(t, "POST", "/api/v1/repos/tok-app/push/", app, pushBody(metaVersion(), 1)).want(t, http.StatusCreated)
	b.do(t, "GET", "/apps/tok-other", app, nil).want(t, http.StatusForbidden)
	b.do(t, "POST", "/api/v1/repos/tok-other/push/", app, pushBody(metaVersion(), 1)).want(t, http.StatusForbidden)
	r = b.do(t, "GET", "/apps", app, nil).want(t, http.StatusOK)
	if l := r.List(); len(l) != 1 || l[0].(map[string]any)["Name"] != "tok-app" {
		t.Errorf("an app token lists: %s", r)
	}
	r = b.do(t, "GET", "/users/info", app, nil).want(t, http.StatusOK)
	if r.Obj()["app_token"] != true || r.Str("app") != "tok-app" {
		t.Errorf("/users/info for an app token: %s", r)
	}
	// And never as its creator's account.
	b.do(t, "DELETE", "/apps/tok-app", app, nil).want(t, http.StatusForbidden)
	b.do(t, "POST", "/apps", app, map[string]any{"name": "from-token"}).want(t, http.StatusForbidden)
	b.do(t, "POST", "/tokens", app, map[string]any{"appname": "tok-app"}).want(t, http.StatusForbidden)
	b.do(t, "POST", "/api/v1/repos/tok-app/maintainers/", app, map[string]any{"username": dev.Email, "role": "admin"}).want(t, http.StatusForbidden)
	b.do(t, "PUT", "/users/password", app, map[string]any{"old": "x12345", "new": "y12345"}).want(t, http.StatusForbidden)
	b.do(t, "GET", "/quota/"+owner.Email, app, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/apps/tok-app", owner, nil).want(t, http.StatusOK)

	// Who may make one: app admins and owners; not developers or strangers.
	b.do(t, "POST", "/tokens", dev, map[string]any{"appname": "tok-app"}).want(t, http.StatusForbidden)
	b.do(t, "POST", "/tokens", owner, map[string]any{"appname": "no-such-app"}).want(t, http.StatusNotFound)
	b.do(t, "POST", "/tokens", owner, map[string]any{}).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/tokens", owner, map[string]any{"appname": "tok-app", "expires": -5}).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/tokens", nil, map[string]any{"appname": "tok-app"}).want(t, http.StatusUnauthorized)

	// A short-lived token expires.
	r = b.do(t, "POST", "/tokens", owner, map[string]any{"appname": "tok-app", "expires": 1}).want(t, http.StatusOK)
	if r.Num("Expires") > 1 {
		t.Errorf("a token asked for 1s expires in %v", r.Num("Expires"))
	}
	short := &User{Token: r.Str("Token"), App: "tok-app"}
	eventually(t, 5*time.Second, "a 1s app token to expire", func() bool {
		return b.do(t, "GET", "/apps/tok-app", short, nil).Code == http.StatusUnauthorized
	})
	// Removing the app revokes its tokens.
	b.do(t, "DELETE", "/apps/tok-app", owner, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/apps/tok-app", app, nil).check(t, http.StatusUnauthorized)
}

func testApps(t *testing.T, b *Berth) {
	u := b.newUser(t, "dev")
	other := b.newUser(t, "other")
	// The seed's answer: {"status":"success", "repository_url": ...}.
	r := b.do(t, "POST", "/apps", u, map[string]any{"name": "ble", "platform": "python"}).want(t, http.StatusOK)
	if r.Str("status") != "success" || r.Str("repository_url") != "git@git.berth.local:ble.git" || len(r.Obj()) != 2 {
		t.Errorf("POST /apps answered %s", r)
	}
	b.do(t, "POST", "/apps", other, map[string]any{"name": "ble"}).want(t, http.StatusConflict)
	b.do(t, "POST", "/apps", u, map[string]any{"name": "cobol-app", "platform": "cobol"}).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/apps", u, map[string]any{"name": "orphan", "teamOwner": "no-such-team"}).want(t, http.StatusNotFound)

	// Info (the seed's fields).
	r = b.do(t, "GET", "/apps/ble", u, nil).want(t, http.StatusOK)
	o := r.Obj()
	if o["Name"] != "ble" || o["Platform"] != "python" || o["Framework"] != "python" || o["Repository"] != "git@git.berth.local:ble.git" || o["Owner"] != u.Email {
		t.Errorf("GET /apps/ble: %s", r)
	}
	if units, ok := o["Units"].([]any); !ok || len(units) != 0 {
		t.Errorf("a registered, undeployed app's Units: %s", r)
	}
	if _, ok := o["Teams"].([]any); !ok {
		t.Errorf("Teams is not a list: %s", r)
	}
	// List: the caller's apps.
	r = b.do(t, "GET", "/apps", u, nil).want(t, http.StatusOK)
	if l := r.List(); len(l) != 1 || l[0].(map[string]any)["Name"] != "ble" {
		t.Errorf("GET /apps: %s", r)
	}
	if r := b.do(t, "GET", "/apps", other, nil).want(t, http.StatusOK); len(r.List()) != 0 {
		t.Errorf("another user's GET /apps: %s", r)
	}
	if r := b.do(t, "GET", "/apps", b.Admin, nil).want(t, http.StatusOK); len(r.List()) != 1 {
		t.Errorf("the admin's GET /apps: %s", r)
	}
	b.do(t, "GET", "/apps/ble", other, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/apps/nope", u, nil).want(t, http.StatusNotFound)
	r = b.do(t, "GET", "/platforms", u, nil).want(t, http.StatusOK)
	if l := r.List(); len(l) != 3 || l[0].(map[string]any)["Name"] != "go" {
		t.Errorf("GET /platforms: %s", r)
	}

	// One model: the app is the LAIN surface's repo, and the other way round.
	r = b.do(t, "GET", "/api/v1/repos/ble/", u, nil).want(t, http.StatusOK)
	if r.Str("appname") != "ble" || r.Str("giturl") != "git@git.berth.local:ble.git" || r.Str("owner") != u.Email {
		t.Errorf("the tsuru app seen as a LAIN repo: %s", r)
	}
	b.createApp(t, u, "lainapp")
	r = b.do(t, "GET", "/apps/lainapp", u, nil).want(t, http.StatusOK)
	if r.Str("Name") != "lainapp" || r.Str("Repository") != "git@git.berth.local:lainapp.git" {
		t.Errorf("the LAIN repo seen as a tsuru app: %s", r)
	}

	// Remove: 403 for non-owners, then 200 and gone everywhere.
	b.do(t, "DELETE", "/apps/ble", other, nil).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/apps/ble", u, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/apps/ble", u, nil).want(t, http.StatusNotFound)
	b.do(t, "GET", "/api/v1/repos/ble/", u, nil).want(t, http.StatusNotFound)
	b.do(t, "DELETE", "/apps/ble", u, nil).want(t, http.StatusNotFound)
	// The name is free again.
	b.do(t, "POST", "/apps", other, map[string]any{"name": "ble"}).want(t, http.StatusOK)
}
