package engine

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/state"
)

const edKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKVMCSepggHkRUhcbPrF23Akji6ss+C2Qioe761oKFhr me@host"

func mustUser(t *testing.T, e *Engine, email, pw string, admin bool) *Identity {
	t.Helper()
	if _, err := CreateUser(t.Context(), e.store, email, pw, admin); err != nil {
		t.Fatal(err)
	}
	return &Identity{Email: email, Admin: admin}
}

// counter is an Admit that records what it was asked and told.
type counter struct {
	accounts []string
	failed   int
	refuse   error
}

func (c *counter) admit(account string) (func(bool), error) {
	c.accounts = append(c.accounts, account)
	if c.refuse != nil {
		return nil, c.refuse
	}
	return func(f bool) {
		if f {
			c.failed++
		}
	}, nil
}

func TestCreateUserTwiceIsConflict(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	mustUser(t, e, "a@b.co", "secret1", false)
	if _, err := CreateUser(t.Context(), e.store, "a@b.co", "secret2", false); !errors.Is(err, ErrConflict) {
		t.Fatalf("the same email again: %v, want a conflict", err)
	}
	if _, err := CreateUser(t.Context(), e.store, "b@b.co", "short", false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a 5-character password: %v, want invalid", err)
	}
}

func TestRegister(t *testing.T) {
	e, _ := newTestEngine(t, func(cfg *config.Config, _ *Deps) { cfg.Admins = []string{"root@b.co"} })
	ctx := t.Context()
	var c counter
	u, err := e.Register(ctx, nil, "new@b.co", "secret1", c.admit)
	if err != nil || u.Email != "new@b.co" || u.Admin {
		t.Fatalf("open registration: %+v, %v", u, err)
	}
	if len(c.accounts) != 1 || c.accounts[0] != "new@b.co" {
		t.Errorf("an anonymous registration was not rate limited: %v", c.accounts)
	}
	// A configured admin's account is created by admins only.
	if _, err := e.Register(ctx, nil, "root@b.co", "secret1", c.admit); !errors.Is(err, ErrForbidden) {
		t.Fatalf("registering a configured admin's email: %v, want forbidden", err)
	}
	admin := &Identity{Email: "op@b.co", Admin: true}
	if _, err := e.Register(ctx, admin, "root@b.co", "secret1", c.admit); err != nil {
		t.Fatalf("an admin creating a configured admin's account: %v", err)
	}
	if len(c.accounts) != 1 {
		t.Errorf("an admin's registration was rate limited, or a refused one was counted: %v", c.accounts)
	}
	// The limit refuses.
	limited := &counter{refuse: Errorf(KindTooMany, "slow down")}
	if _, err := e.Register(ctx, nil, "other@b.co", "secret1", limited.admit); !errors.Is(err, ErrTooMany) {
		t.Fatalf("a refused registration: %v", err)
	}
	if _, _, err := state.Get[state.User](ctx, e.store, state.UserKey("other@b.co")); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("a refused registration created the account: %v", err)
	}
	// Closed registration.
	*e.cfg.Users.OpenRegistration = false
	if _, err := e.Register(ctx, nil, "late@b.co", "secret1", nil); !errors.Is(err, ErrForbidden) {
		t.Fatalf("registering while closed: %v, want forbidden", err)
	}
	if _, err := e.Register(ctx, admin, "late@b.co", "secret1", nil); err != nil {
		t.Fatalf("an admin creating an account while registration is closed: %v", err)
	}
}

func TestLoginAndLogout(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := t.Context()
	mustUser(t, e, "a@b.co", "secret1", false)
	var c counter
	for _, try := range []struct{ email, pw string }{{"a@b.co", "wrong-pw"}, {"nobody@b.co", "secret1"}} {
		_, err := e.Login(ctx, try.email, try.pw, c.admit)
		if !errors.Is(err, ErrUnauthenticated) || !errors.Is(err, ErrWrongPassword) || err.Error() != "wrong email or password" {
			t.Fatalf("login %s with %s: %v, want the same wrong-password answer", try.email, try.pw, err)
		}
	}
	if c.failed != 2 {
		t.Errorf("%d failed logins counted, want 2", c.failed)
	}
	if _, err := e.Login(ctx, "a@b.co", "", c.admit); !errors.Is(err, ErrInvalid) {
		t.Errorf("no password: %v, want invalid", err)
	}
	l, err := e.Login(ctx, "a@b.co", "secret1", c.admit)
	if err != nil || l.Token == "" || l.Admin {
		t.Fatalf("login: %+v, %v", l, err)
	}
	if c.failed != 2 {
		t.Errorf("a successful login was counted as failed")
	}
	id, err := e.Authenticate(ctx, l.Token)
	if err != nil || id == nil || id.Email != "a@b.co" || id.AppToken {
		t.Fatalf("the login's token: %+v, %v", id, err)
	}
	limited := &counter{refuse: Errorf(KindTooMany, "slow down")}
	if _, err := e.Login(ctx, "a@b.co", "secret1", limited.admit); !errors.Is(err, ErrTooMany) {
		t.Fatalf("a login refused by the limit: %v", err)
	}
	if err := e.Logout(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Authenticate(ctx, l.Token); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a token after logout: %v, want unauthenticated", err)
	}
	if id, err := e.Authenticate(ctx, ""); id != nil || err != nil {
		t.Fatalf("no token: %+v, %v, want anonymous", id, err)
	}
}

func TestChangePassword(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := t.Context()
	id := mustUser(t, e, "a@b.co", "secret1", false)
	var c counter
	err := e.ChangePassword(ctx, id, "wrong-pw", "secret2", c.admit)
	if !errors.Is(err, ErrForbidden) || !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("a wrong old password: %v, want forbidden", err)
	}
	if c.failed != 1 || len(c.accounts) != 1 || c.accounts[0] != "a@b.co" {
		t.Errorf("the wrong old password was not counted against the account: %+v", c)
	}
	if err := e.ChangePassword(ctx, &Identity{Email: "a@b.co", AppToken: true, App: "x"}, "secret1", "secret2", c.admit); !errors.Is(err, ErrForbidden) || errors.Is(err, ErrWrongPassword) {
		t.Fatalf("an app token changing the password: %v", err)
	}
	if err := e.ChangePassword(ctx, id, "secret1", "abc", c.admit); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a too short new password: %v", err)
	}
	if err := e.ChangePassword(ctx, id, "secret1", "secret2", c.admit); err != nil {
		t.Fatal(err)
	}
	if c.failed != 1 {
		t.Errorf("the right old password was counted as failed")
	}
	if _, err := e.Login(ctx, "a@b.co", "secret1", nil); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("the old password still logs in: %v", err)
	}
	if _, err := e.Login(ctx, "a@b.co", "secret2", nil); err != nil {
		t.Errorf("the new password: %v", err)
	}
}

// lastMail returns the body of the newest message to to in the outbox.
func lastMail(t *testing.T, e *Engine, to string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(e.cfg.DataDir, "outbox", "*-"+to+".eml"))
	if len(files) == 0 {
		return ""
	}
	b, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPasswordReset(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := t.Context()
	mustUser(t, e, "a@b.co", "secret1", false)
	old, err := e.Login(ctx, "a@b.co", "secret1", nil)
	if err != nil {
		t.Fatal(err)
	}
	// No mail for an unknown account, nor when throttled; no error either.
	if err := e.RequestPasswordReset(ctx, "nobody@b.co", true); err != nil {
		t.Fatal(err)
	}
	if err := e.RequestPasswordReset(ctx, "a@b.co", false); err != nil {
		t.Fatal(err)
	}
	if lastMail(t, e, "nobody@b.co") != "" || lastMail(t, e, "a@b.co") != "" {
		t.Fatal("a reset mail was sent to an unknown or throttled address")
	}
	if err := e.RequestPasswordReset(ctx, "a@b.co", true); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`token=([0-9a-f]+)`).FindStringSubmatch(lastMail(t, e, "a@b.co"))
	if m == nil {
		t.Fatalf("no reset token in the mail: %q", lastMail(t, e, "a@b.co"))
	}
	if err := e.ResetPassword(ctx, "a@b.co", "0000"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a wrong reset token: %v", err)
	}
	if err := e.ResetPassword(ctx, "nobody@b.co", m[1]); !errors.Is(err, ErrForbidden) {
		t.Fatalf("the token for another email: %v", err)
	}
	if err := e.ResetPassword(ctx, "a@b.co", m[1]); err != nil {
		t.Fatal(err)
	}
	if err := e.ResetPassword(ctx, "a@b.co", m[1]); !errors.Is(err, ErrForbidden) {
		t.Fatalf("the reset token used twice: %v", err)
	}
	pw := regexp.MustCompile(`new password is:\s+(\S+)`).FindStringSubmatch(lastMail(t, e, "a@b.co"))
	if pw == nil {
		t.Fatalf("no new password in the mail: %q", lastMail(t, e, "a@b.co"))
	}
	if _, err := e.Login(ctx, "a@b.co", pw[1], nil); err != nil {
		t.Fatalf("the mailed password: %v", err)
	}
	if _, err := e.Authenticate(ctx, old.Token); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a token from before the reset still works: %v", err)
	}
}

func TestRemoveUser(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := t.Context()
	a := mustUser(t, e, "a@b.co", "secret1", false)
	b := mustUser(t, e, "b@b.co", "secret1", false)
	if _, err := e.RegisterApp(ctx, a, NewApp{Name: "hello"}); err != nil {
		t.Fatal(err)
	}
	if err := e.RemoveUser(ctx, a); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "own 1 app") {
		t.Fatalf("removing an app's owner: %v", err)
	}
	if _, err := e.CreateTeam(ctx, a, "t"); err != nil {
		t.Fatal(err)
	}
	if err := e.AddTeamUser(ctx, a, "t", "b@b.co"); err != nil {
		t.Fatal(err)
	}
	l, err := e.Login(ctx, "b@b.co", "secret1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.RemoveUser(ctx, &Identity{Email: "b@b.co", AppToken: true, App: "hello"}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("an app token removing its user: %v", err)
	}
	if err := e.RemoveUser(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Authenticate(ctx, l.Token); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("the removed user's token: %v", err)
	}
	if tm, err := e.Team(ctx, a, "t"); err != nil || Contains(tm.Users, "b@b.co") {
		t.Errorf("the removed user is still in its team: %+v, %v", tm, err)
	}
	if err := e.RemoveUser(ctx, b); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("removing a removed user: %v", err)
	}
}

func TestKeys(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := t.Context()
	id := mustUser(t, e, "a@b.co", "secret1", false)
	if ks, err := e.Keys(ctx, id); err != nil || ks == nil || len(ks) != 0 {
		t.Fatalf("no keys: %v, %v", ks, err)
	}
	k, err := e.AddKey(ctx, id, edKey, "")
	if err != nil || k.Name != "me@host" || !strings.HasPrefix(k.Fingerprint, "SHA256:") {
		t.Fatalf("adding a key: %+v, %v", k, err)
	}
	if _, err := e.AddKey(ctx, id, edKey, "again"); !errors.Is(err, ErrConflict) {
		t.Errorf("the same key twice: %v", err)
	}
	if _, err := e.AddKey(ctx, id, "not a key", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("garbage as a key: %v", err)
	}
	if ks, err := e.Keys(ctx, id); err != nil || len(ks) != 1 || ks[0].Fingerprint != k.Fingerprint {
		t.Fatalf("the keys: %v, %v", ks, err)
	}
	if err := e.RemoveKey(ctx, id, "", "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing an unknown key: %v", err)
	}
	if err := e.RemoveKey(ctx, id, "", "me@host"); err != nil {
		t.Fatal(err)
	}
	if ks, _ := e.Keys(ctx, id); len(ks) != 0 {
		t.Errorf("keys after removal: %v", ks)
	}
}
