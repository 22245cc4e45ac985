package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func testHealthAndMetrics(t *testing.T, b *Berth) {
	r := b.do(t, "GET", "/healthz", nil, nil).want(t, http.StatusOK)
	if r.Str("status") != "ok" {
		t.Errorf("healthz status: %s", r)
	}
	be, _ := r.Obj()["backends"].(map[string]any)
	wantStore, wantSecrets := "bolt", "sealed"
	if b.Opts.Consul != "" {
		wantStore = "consul"
	}
	if b.Opts.Vault != "" {
		wantSecrets = "vault"
	}
	for role, want := range map[string]string{"store": wantStore, "secrets": wantSecrets, "scheduler": "local"} {
		h, _ := be[role].(map[string]any)
		if h["backend"] != want || h["ok"] != true {
			t.Errorf("healthz %s = %v, want backend %q ok", role, h, want)
		}
	}
	b.do(t, "GET", "/healthz/", nil, nil).want(t, http.StatusOK)

	// Metrics count the requests made so far, by route and status code.
	b.do(t, "GET", "/apps", nil, nil).want(t, http.StatusUnauthorized)
	m := b.do(t, "GET", "/metrics", nil, nil).want(t, http.StatusOK)
	text := string(m.Raw)
	for _, want := range []string{
		`berth_http_requests_total{code="200",method="GET",route="/healthz"}`,
		`berth_http_requests_total{code="401",method="GET",route="/apps"}`,
		"berth_http_request_duration_seconds_bucket",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	b.do(t, "GET", "/metrics/", nil, nil).want(t, http.StatusOK)
	// Unknown paths and methods are JSON errors too (their request_id: see bugs_test.go).
	for _, r := range []*Resp{b.do(t, "GET", "/no/such/endpoint", nil, nil), b.do(t, "PATCH", "/apps", nil, nil)} {
		if (r.Code != http.StatusNotFound && r.Code != http.StatusMethodNotAllowed) || r.Str("error") == "" || int(r.Num("status")) != r.Code {
			t.Errorf("an unknown endpoint: %s", r)
		}
	}
}

func testUsers(t *testing.T, b *Berth) {
	// The seed's example: {"email":..., "password":"123456"} -> 200.
	r := b.do(t, "POST", "/users", nil, rawBody(`{"email":"wolverine@xmen.example","password":"123456"}`)).want(t, http.StatusOK)
	if r.Str("email") != "wolverine@xmen.example" {
		t.Errorf("created user: %s", r)
	}
	// 409 if the email exists (in any letter case).
	b.do(t, "POST", "/users", nil, rawBody(`{"email":"wolverine@xmen.example","password":"123456"}`)).want(t, http.StatusConflict)
	b.do(t, "POST", "/users", nil, rawBody(`{"email":"Wolverine@XMEN.example","password":"654321"}`)).want(t, http.StatusConflict)
	// 400 if the JSON is invalid, the email is invalid, or the password is
	// shorter than 6 or longer than 50 characters.
	for _, body := range []string{
		`{"email":"storm@xmen.example","password":"123456"`,
		`not json`,
		`{"email":"storm","password":"123456"}`,
		`{"email":"","password":"123456"}`,
		`{"email":"storm@xmen.example","password":"12345"}`,
		`{"email":"storm@xmen.example","password":""}`,
		`{"email":"storm@xmen.example","password":"` + strings.Repeat("x", 51) + `"}`,
		`{"email":"storm@xmen.example"}`,
	} {
		b.do(t, "POST", "/users", nil, rawBody(body)).want(t, http.StatusBadRequest)
	}
	// Exactly 6 and exactly 50 characters are fine.
	b.do(t, "POST", "/users", nil, rawBody(`{"email":"six@xmen.example","password":"abcdef"}`)).want(t, http.StatusOK)
	b.do(t, "POST", "/users", nil, rawBody(`{"email":"fifty@xmen.example","password":"`+strings.Repeat("y", 50)+`"}`)).want(t, http.StatusOK)
	// The rejected ones were not created.
	// (An unknown account answers 401 like a wrong password, not the seed's
	// 404: logins do not tell which emails have accounts.)
	b.do(t, "POST", "/users/storm@xmen.example/tokens", nil, rawBody(`{"password":"123456"}`)).want(t, http.StatusUnauthorized)

	// Login: the seed's body -> 200 {"token"}.
	r = b.do(t, "POST", "/users/wolverine@xmen.example/tokens", nil, rawBody(`{"password":"123456"}`)).want(t, http.StatusOK)
	tok := r.Str("token")
	if !regexp.MustCompile(`^[0-9a-f]{40,}$`).MatchString(tok) {
		t.Fatalf("login token: %s", r)
	}
	if r.Obj()["is_admin"] != false {
		t.Errorf("a new user is_admin: %s", r)
	}
	if exp, err := time.Parse(time.RFC3339, r.Str("expires")); err != nil || !exp.After(time.Now()) {
		t.Errorf("login expires %q is not a future time", r.Str("expires"))
	}
	// 400 invalid JSON, 400 empty or missing password, 401 unknown user (not
	// the seed's 404: it would tell which emails have accounts).
	b.do(t, "POST", "/users/wolverine@xmen.example/tokens", nil, rawBody(`{"password":`)).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/users/wolverine@xmen.example/tokens", nil, rawBody(`{"password":""}`)).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/users/wolverine@xmen.example/tokens", nil, rawBody(`{"password":null}`)).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/users/wolverine@xmen.example/tokens", nil, rawBody(`{}`)).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/users/nobody@xmen.example/tokens", nil, rawBody(`{"password":"123456"}`)).want(t, http.StatusUnauthorized)
	// A wrong password gets no token.
	r = b.do(t, "POST", "/users/wolverine@xmen.example/tokens", nil, rawBody(`{"password":"1234567"}`))
	if r.Code < 400 || r.Code >= 500 || r.Str("token") != "" {
		t.Errorf("login with a wrong password: %s", r)
	}

	// The token works in both headers, on both surfaces.
	wolverine := &User{Email: "wolverine@xmen.example", Password: "123456", Token: tok}
	who := b.do(t, "GET", "/users/info", wolverine, nil).want(t, http.StatusOK)
	if who.Str("email") != "wolverine@xmen.example" || who.Obj()["is_admin"] != false {
		t.Errorf("/users/info: %s", who)
	}
	viaHeader := &User{Email: wolverine.Email, Token: tok, AccessTokenHeader: true}
	b.do(t, "GET", "/users/info", viaHeader, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/api/v1/repos/", viaHeader, nil).want(t, http.StatusOK)
	b.doHeaders(t, "GET", "/users/info", nil, nil, map[string]string{"Authorization": "Bearer " + tok}).want(t, http.StatusOK)
	// A bad token is a 401, never anonymous access.
	b.doHeaders(t, "GET", "/users/info", nil, nil, map[string]string{"Authorization": "bearer " + strings.Repeat("0", 64)}).want(t, http.StatusUnauthorized)
	b.doHeaders(t, "GET", "/users/info", nil, nil, map[string]string{"Authorization": "Basic " + tok}).want(t, http.StatusUnauthorized)
	b.doHeaders(t, "GET", "/users/info", nil, nil, map[string]string{"access-token": tok[:len(tok)-1]}).want(t, http.StatusUnauthorized)
	b.do(t, "GET", "/users/info", nil, nil).want(t, http.StatusUnauthorized)

	// Logout: that token stops working at once; another token of the same
	// user keeps working.
	second := &User{Email: wolverine.Email, Token: b.login(t, wolverine.Email, "123456")}
	b.do(t, "DELETE", "/users/tokens", wolverine, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/users/info", wolverine, nil).want(t, http.StatusUnauthorized)
	b.do(t, "GET", "/apps", viaHeader, nil).want(t, http.StatusUnauthorized)
	b.do(t, "DELETE", "/users/tokens", wolverine, nil).want(t, http.StatusUnauthorized)
	b.do(t, "GET", "/users/info", second, nil).want(t, http.StatusOK)
	b.do(t, "DELETE", "/users/tokens", nil, nil).want(t, http.StatusUnauthorized)

	// Change password: the seed's body shape {"old","new"}.
	pw := "pw-" + randHex(10)
	b.do(t, "PUT", "/users/password", second, rawBody(`{"old":"123456"`)).want(t, http.StatusBadRequest)
	b.do(t, "PUT", "/users/password", second, map[string]any{"old": "", "new": pw}).want(t, http.StatusBadRequest)
	b.do(t, "PUT", "/users/password", second, map[string]any{"old": "123456"}).want(t, http.StatusBadRequest)
	b.do(t, "PUT", "/users/password", second, map[string]any{"old": "123456", "new": "12345"}).want(t, http.StatusBadRequest)
	b.do(t, "PUT", "/users/password", second, map[string]any{"old": "123456", "new": strings.Repeat("z", 51)}).want(t, http.StatusBadRequest)
	b.do(t, "PUT", "/users/password", second, map[string]any{"old": "wrong-old", "new": pw}).want(t, http.StatusForbidden)
	b.do(t, "PUT", "/users/password", nil, map[string]any{"old": "123456", "new": pw}).want(t, http.StatusUnauthorized)
	// None of those changed it.
	b.login(t, wolverine.Email, "123456")
	// The seed's own body.
	b.do(t, "PUT", "/users/password", second, rawBody(`{"old":"123456","new":"654321"}`)).want(t, http.StatusOK)
	r = b.do(t, "POST", "/users/wolverine@xmen.example/tokens", nil, rawBody(`{"password":"123456"}`))
	if r.Code < 400 || r.Str("token") != "" {
		t.Errorf("the old password still logs in after the change: %s", r)
	}
	b.login(t, wolverine.Email, "654321")
	b.do(t, "PUT", "/users/password", second, map[string]any{"old": "654321", "new": pw}).want(t, http.StatusOK)
	b.login(t, wolverine.Email, pw)
}

func testClosedRegistration(t *testing.T, b *Berth) {
	body := map[string]any{"email": "walkin@e2e.test", "password": "pw-" + randHex(8)}
	b.do(t, "POST", "/users", nil, body).want(t, http.StatusForbidden)
	b.do(t, "POST", "/users/walkin@e2e.test/tokens", nil, map[string]any{"password": body["password"]}).want(t, http.StatusUnauthorized)
	// Admins still create accounts, and those log in.
	r := b.do(t, "POST", "/users", b.Admin, body).want(t, http.StatusOK)
	if r.Str("email") != "walkin@e2e.test" {
		t.Errorf("the admin's POST /users: %s", r)
	}
	u := &User{Email: "walkin@e2e.test", Token: b.login(t, "walkin@e2e.test", body["password"].(string))}
	// A user may not create others.
	b.do(t, "POST", "/users", u, map[string]any{"email": "friend@e2e.test", "password": "pw-" + randHex(8)}).want(t, http.StatusForbidden)
}

func testPasswordReset(t *testing.T, b *Berth) {
	u := b.newUser(t, "forgetful")
	// Unknown user: the same answers as for a known one (200 without a
	// token, 403 with a wrong one; not the seed's 404, which tells accounts
	// apart), and nothing is mailed.
	b.do(t, "POST", "/users/nobody@e2e.test/password", nil, nil).want(t, http.StatusOK)
	b.do(t, "POST", "/users/nobody@e2e.test/password?token=1234", nil, nil).want(t, http.StatusForbidden)
	if m := b.outbox(t, "nobody@e2e.test"); len(m) != 0 {
		t.Errorf("a reset for an unknown user mailed %d messages", len(m))
	}

	// Without a token: a reset token is mailed; the password is unchanged.
	b.do(t, "POST", "/users/"+u.Email+"/password", nil, nil).want(t, http.StatusOK)
	mails := b.outbox(t, u.Email)
	if len(mails) != 1 {
		t.Fatalf("want 1 reset mail for %s, got %d", u.Email, len(mails))
	}
	m := regexp.MustCompile(`token=([0-9a-f]{16,})`).FindStringSubmatch(mails[0])
	if m == nil {
		t.Fatalf("the reset mail has no token:\n%s", mails[0])
	}
	reset := m[1]
	b.remember(reset, "the password-reset token")
	b.login(t, u.Email, u.Password)
	b.do(t, "GET", "/users/info", u, nil).want(t, http.StatusOK)

	// A wrong token changes nothing.
	r := b.do(t, "POST", "/users/"+u.Email+"/password?token="+strings.Repeat("ab", 20), nil, nil)
	if r.Code < 400 || r.Code >= 500 {
		t.Errorf("reset with a wrong token: %s", r)
	}
	checkErrorBody(t, r)
	// The token is for this user only.
	other := b.newUser(t, "bystander")
	r = b.do(t, "POST", "/users/"+other.Email+"/password?token="+reset, nil, nil)
	if r.Code < 400 || r.Code >= 500 {
		t.Errorf("reset of another user with this user's token: %s", r)
	}
	b.login(t, other.Email, other.Password)
	if len(b.outbox(t, other.Email)) != 0 {
		t.Errorf("a refused reset mailed %s", other.Email)
	}

	// With the token: a new random password is mailed; the old one stops
	// working and so do the user's login tokens.
	b.do(t, "POST", "/users/"+u.Email+"/password?token="+reset, nil, nil).want(t, http.StatusOK)
	mails = b.outbox(t, u.Email)
	if len(mails) != 2 {
		t.Fatalf("want 2 mails for %s, got %d", u.Email, len(mails))
	}
	pm := regexp.MustCompile(`(?m)password is:\s+(\S+)`).FindStringSubmatch(mails[1])
	if pm == nil {
		t.Fatalf("the second mail has no new password:\n%s", mails[1])
	}
	newPw := pm[1]
	b.remember(newPw, "the password mailed by a reset")
	r = b.do(t, "POST", "/users/"+u.Email+"/tokens", nil, map[string]any{"password": u.Password})
	if r.Code < 400 || r.Str("token") != "" {
		t.Errorf("the old password still logs in after a reset: %s", r)
	}
	b.do(t, "GET", "/users/info", u, nil).want(t, http.StatusUnauthorized)
	b.login(t, u.Email, newPw)
	// The token works once.
	r = b.do(t, "POST", "/users/"+u.Email+"/password?token="+reset, nil, nil)
	if r.Code < 400 || r.Code >= 500 {
		t.Errorf("a reset token worked twice: %s", r)
	}
	b.login(t, u.Email, newPw)
}

// newSSHKey returns a fresh ed25519 public key in authorized_keys form and its fingerprint.
func newSSHKey(t testing.TB, comment string) (authorized, fingerprint string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
	if comment != "" {
		line += " " + comment
	}
	return line, ssh.FingerprintSHA256(pk)
}

func testSSHKeys(t *testing.T, b *Berth) {
	u := b.newUser(t, "keyholder")
	other := b.newUser(t, "other")
	key1, fp1 := newSSHKey(t, "me@laptop")
	key2, fp2 := newSSHKey(t, "")

	r := b.do(t, "GET", "/users/keys", u, nil).want(t, http.StatusOK)
	if r.List() == nil || len(r.List()) != 0 {
		t.Errorf("a new user's keys: %s", r)
	}
	r = b.do(t, "POST", "/users/keys", u, map[string]any{"key": key1}).want(t, http.StatusOK)
	if r.Str("fingerprint") != fp1 || r.Str("name") != "me@laptop" {
		t.Errorf("adding a key answered %s; want fingerprint %s, name me@laptop", r, fp1)
	}
	b.do(t, "POST", "/users/keys/", u, map[string]any{"key": key2, "name": "desktop"}).want(t, http.StatusOK)
	// 409 for the same key again (even with another comment or name).
	b.do(t, "POST", "/users/keys", u, map[string]any{"key": key1}).want(t, http.StatusConflict)
	b.do(t, "POST", "/users/keys", u, map[string]any{"key": strings.TrimSuffix(key1, " me@laptop") + " other@host", "name": "x"}).want(t, http.StatusConflict)
	// 400 for garbage.
	for _, garbage := range []string{"my-key", "", "ssh-ed25519 AAAAnotbase64!!", "ssh-rsa AAAAB3NzaC1yc2E=", key1 + "\n" + key2, strings.Repeat("A", 20000)} {
		b.do(t, "POST", "/users/keys", u, map[string]any{"key": garbage}).want(t, http.StatusBadRequest)
	}
	r = b.do(t, "GET", "/users/keys", u, nil).want(t, http.StatusOK)
	got := map[string]string{}
	for _, k := range r.List() {
		m, _ := k.(map[string]any)
		f, _ := m["fingerprint"].(string)
		n, _ := m["name"].(string)
		got[f] = n
	}
	if len(got) != 2 || got[fp1] != "me@laptop" || got[fp2] != "desktop" {
		t.Errorf("keys after adding two: %s", r)
	}
	// Another user's keys are their own.
	if r := b.do(t, "GET", "/users/keys", other, nil).want(t, http.StatusOK); len(r.List()) != 0 {
		t.Errorf("another user sees keys: %s", r)
	}
	b.do(t, "DELETE", "/users/keys", other, map[string]any{"key": key1}).want(t, http.StatusNotFound)
	// The same key may belong to another user too? It is theirs to add.
	// Remove by key, then by name.
	b.do(t, "DELETE", "/users/keys", u, map[string]any{"key": key1}).want(t, http.StatusOK)
	b.do(t, "DELETE", "/users/keys", u, map[string]any{"key": key1}).want(t, http.StatusNotFound)
	b.do(t, "DELETE", "/users/keys", u, map[string]any{"key": "garbage"}).want(t, http.StatusBadRequest)
	b.do(t, "DELETE", "/users/keys/", u, map[string]any{"name": "desktop"}).want(t, http.StatusOK)
	if r := b.do(t, "GET", "/users/keys", u, nil).want(t, http.StatusOK); len(r.List()) != 0 {
		t.Errorf("keys after removing both: %s", r)
	}
	b.do(t, "POST", "/users/keys", nil, map[string]any{"key": key1}).want(t, http.StatusUnauthorized)
}

func testRemoveUser(t *testing.T, b *Berth) {
	u := b.newUser(t, "leaver")
	team := b.unique("leavers")
	b.do(t, "POST", "/teams", u, map[string]any{"name": team}).want(t, http.StatusOK)
	stay := b.newUser(t, "stayer")
	b.do(t, "PUT", "/teams/"+team+"/"+stay.Email, u, nil).want(t, http.StatusOK)

	// Refused while the user owns an app; nothing changes.
	app := b.unique("owned")
	b.createApp(t, u, app)
	b.do(t, "DELETE", "/users", u, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/users/info", u, nil).want(t, http.StatusOK)
	b.do(t, "DELETE", "/apps/"+app, u, nil).want(t, http.StatusOK)

	second := &User{Email: u.Email, Token: b.login(t, u.Email, u.Password)}
	b.do(t, "DELETE", "/users", u, nil).want(t, http.StatusOK)
	// Every token of the user stops working, login is 401, the user left its teams.
	b.do(t, "GET", "/users/info", u, nil).want(t, http.StatusUnauthorized)
	b.do(t, "GET", "/users/info", second, nil).want(t, http.StatusUnauthorized)
	b.do(t, "POST", "/users/"+u.Email+"/tokens", nil, map[string]any{"password": u.Password}).want(t, http.StatusUnauthorized)
	r := b.do(t, "GET", "/teams/"+team, stay, nil).want(t, http.StatusOK)
	if users, _ := r.Obj()["users"].([]any); len(users) != 1 || users[0] != stay.Email {
		t.Errorf("team after its member was removed: %s", r)
	}
	// The email can be registered again, as a new account.
	b.register(t, u.Email)
	b.do(t, "DELETE", "/users", nil, nil).want(t, http.StatusUnauthorized)
}

func testTeams(t *testing.T, b *Berth) {
	owner := b.newUser(t, "lead")
	mate := b.newUser(t, "mate")
	stranger := b.newUser(t, "stranger")

	r := b.do(t, "POST", "/teams", owner, rawBody(`{"name": "cobrateam"}`)).want(t, http.StatusOK)
	if r.Str("name") != "cobrateam" {
		t.Errorf("created team: %s", r)
	}
	if us, _ := r.Obj()["users"].([]any); len(us) != 1 || us[0] != owner.Email {
		t.Errorf("the creator is not the first member: %s", r)
	}
	b.do(t, "POST", "/teams", stranger, map[string]any{"name": "cobrateam"}).want(t, http.StatusConflict)
	for _, bad := range []string{"", "../x", "a/b", strings.Repeat("t", 300), "ünïcode", "Upper", "-x"} {
		b.do(t, "POST", "/teams", owner, map[string]any{"name": bad}).want(t, http.StatusBadRequest)
	}

	// The seed's list shape [{"name": ...}], only the caller's teams.
	r = b.do(t, "GET", "/teams", owner, nil).want(t, http.StatusOK)
	if l := r.List(); len(l) != 1 || l[0].(map[string]any)["name"] != "cobrateam" {
		t.Errorf("owner's teams: %s", r)
	}
	if r := b.do(t, "GET", "/teams", stranger, nil).want(t, http.StatusOK); len(r.List()) != 0 {
		t.Errorf("a stranger sees teams: %s", r)
	}
	if r := b.do(t, "GET", "/teams", b.Admin, nil).want(t, http.StatusOK); len(r.List()) != 1 {
		t.Errorf("the admin's view of teams: %s", r)
	}
	// Info: {"name", "users"}; non-members 403; unknown 404.
	b.do(t, "GET", "/teams/cobrateam", stranger, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/teams/nosuchteam", owner, nil).want(t, http.StatusNotFound)

	// Add a user (the seed's PUT /teams/<team>/<user>).
	b.do(t, "PUT", "/teams/cobrateam/"+mate.Email, owner, nil).want(t, http.StatusOK)
	b.do(t, "PUT", "/teams/cobrateam/"+mate.Email, owner, nil).want(t, http.StatusConflict)
	b.do(t, "PUT", "/teams/cobrateam/ghost@e2e.test", owner, nil).want(t, http.StatusNotFound)
	b.do(t, "PUT", "/teams/cobrateam/"+stranger.Email, stranger, nil).want(t, http.StatusForbidden)
	b.do(t, "PUT", "/teams/cobrateam/not-an-email", owner, nil).want(t, http.StatusBadRequest)
	r = b.do(t, "GET", "/teams/cobrateam", mate, nil).want(t, http.StatusOK)
	if us, _ := r.Obj()["users"].([]any); len(us) != 2 {
		t.Errorf("team after adding mate: %s", r)
	}

	// Apps owned by the team: members act on them as developers.
	b.do(t, "POST", "/apps", owner, map[string]any{"name": "cobra-app", "teamOwner": "cobrateam"}).want(t, http.StatusOK)
	b.do(t, "POST", "/apps", stranger, map[string]any{"name": "sneaky", "teamOwner": "cobrateam"}).want(t, http.StatusForbidden)
	b.do(t, "GET", "/apps/sneaky", b.Admin, nil).want(t, http.StatusNotFound)
	r = b.do(t, "GET", "/apps/cobra-app", mate, nil).want(t, http.StatusOK)
	if ts, _ := r.Obj()["Teams"].([]any); len(ts) != 1 || ts[0] != "cobrateam" {
		t.Errorf("app Teams: %s", r)
	}
	if r := b.do(t, "GET", "/api/v1/repos/cobra-app/roles/", mate, nil).want(t, http.StatusOK); r.Str("role") != "developer" {
		t.Errorf("a team member's role: %s", r)
	}
	b.do(t, "GET", "/apps/cobra-app", stranger, nil).want(t, http.StatusForbidden)
	// A team with apps cannot be removed.
	b.do(t, "DELETE", "/teams/cobrateam", owner, nil).want(t, http.StatusForbidden)

	// Remove a user; the last member cannot leave.
	b.do(t, "DELETE", "/teams/cobrateam/"+mate.Email, owner, nil).want(t, http.StatusOK)
	b.do(t, "DELETE", "/teams/cobrateam/"+mate.Email, owner, nil).want(t, http.StatusNotFound)
	b.do(t, "GET", "/teams/cobrateam", mate, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/apps/cobra-app", mate, nil).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/teams/cobrateam/"+owner.Email, owner, nil).want(t, http.StatusForbidden)

	b.do(t, "DELETE", "/apps/cobra-app", owner, nil).want(t, http.StatusOK)
	b.do(t, "DELETE", "/teams/cobrateam", stranger, nil).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/teams/cobrateam", owner, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/teams/cobrateam", owner, nil).want(t, http.StatusNotFound)
	b.do(t, "DELETE", "/teams/cobrateam", owner, nil).want(t, http.StatusNotFound)
	b.do(t, "GET", "/teams", nil, nil).want(t, http.StatusUnauthorized)
}
