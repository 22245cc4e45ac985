package e2e

// Accounts (issue 8): logins and password resets do not tell which emails
// have accounts; failed logins, reset requests and registrations are rate
// limited (429 with Retry-After, and no bcrypt work for a refused attempt);
// reset mails are throttled per account. Secrets stay secret: notifier URLs
// are masked for non-admins; /metrics can require an admin token.

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fromIP is an HTTP client whose connections come from ip (a loopback
// address such as 127.0.0.2), so that tests can act as several clients.
func fromIP(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// doFrom sends a JSON request through client.
func (b *Berth) doFrom(t testing.TB, client *http.Client, method, path string, body any) *Resp {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		b.harvestRequest(body)
		rd = bytes.NewReader(data)
	} else {
		rd = bytes.NewReader(nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, b.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	_, _ = raw.ReadFrom(resp.Body)
	r := &Resp{Method: method, Path: path, Code: resp.StatusCode, Header: resp.Header, Raw: raw.Bytes()}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		r.jsonErr = json.Unmarshal(r.Raw, &r.JSON)
	}
	b.harvestResponse(r)
	return r
}

// cpuTime is the server process's CPU time so far (user + system).
func (b *Berth) cpuTime(t testing.TB) time.Duration {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(b.cmd.Process.Pid) + "/stat")
	if err != nil {
		t.Skipf("no /proc to measure the server's CPU time: %v", err)
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ is 100 on Linux
}

func loginPath(email string) string { return "/users/" + url.PathEscape(email) + "/tokens" }

func TestLoginDoesNotTellAccounts(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.newUser(t, "known")
	unknown := "nobody-" + randHex(4) + "@e2e.test"

	wrong := b.do(t, "POST", loginPath(u.Email), nil, map[string]any{"password": "not-the-password"}).want(t, http.StatusUnauthorized)
	none := b.do(t, "POST", loginPath(unknown), nil, map[string]any{"password": "not-the-password"}).want(t, http.StatusUnauthorized)
	if wrong.Str("error") != none.Str("error") {
		t.Errorf("a wrong password and an unknown email get different messages: %q vs %q", wrong.Str("error"), none.Str("error"))
	}
	if strings.Contains(wrong.Str("error"), u.Email) {
		t.Errorf("the 401 names the account: %s", wrong)
	}
	// The same work: an unknown email is not answered much faster (it is
	// compared against a dummy bcrypt hash).
	timeIt := func(email string) time.Duration {
		var total time.Duration
		for i := 0; i < 5; i++ {
			start := time.Now()
			b.do(t, "POST", loginPath(email), nil, map[string]any{"password": "not-the-password"}).want(t, http.StatusUnauthorized)
			total += time.Since(start)
		}
		return total / 5
	}
	tw, tn := timeIt(u.Email), timeIt(unknown)
	t.Logf("login with a wrong password: %v; with an unknown email: %v (mean of 5)", tw, tn)
	if tn < tw/3 {
		t.Errorf("an unknown email is answered in %v, a wrong password in %v: the difference tells accounts apart", tn, tw)
	}
	b.login(t, u.Email, u.Password)
}

func TestResetDoesNotTellAccounts(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.newUser(t, "resetter")
	unknown := "nobody-" + randHex(4) + "@e2e.test"

	known := b.do(t, "POST", "/users/"+u.Email+"/password", nil, nil).want(t, http.StatusOK)
	none := b.do(t, "POST", "/users/"+unknown+"/password", nil, nil).want(t, http.StatusOK)
	if strings.ReplaceAll(string(known.Raw), u.Email, "X") != strings.ReplaceAll(string(none.Raw), unknown, "X") {
		t.Errorf("a reset answers differently for a known and an unknown email:\n%s\n%s", known.Raw, none.Raw)
	}
	if n := len(b.outbox(t, u.Email)); n != 1 {
		t.Errorf("want 1 reset mail for the known account, got %d", n)
	}
	if n := len(b.outbox(t, unknown)); n != 0 {
		t.Errorf("a reset for an unknown email mailed %d messages", n)
	}
	tok := "?token=" + strings.Repeat("ab", 20)
	kt := b.do(t, "POST", "/users/"+u.Email+"/password"+tok, nil, nil).want(t, http.StatusForbidden)
	nt := b.do(t, "POST", "/users/"+unknown+"/password"+tok, nil, nil).want(t, http.StatusForbidden)
	if kt.Str("error") != nt.Str("error") {
		t.Errorf("a wrong reset token answers differently for a known and an unknown email: %q vs %q", kt.Str("error"), nt.Str("error"))
	}
}

// TestAccountRateLimits: failed logins are limited per client IP and per
// account, successful logins are not, a refused attempt costs no bcrypt,
// and resets and registrations are limited too.
func TestAccountRateLimits(t *testing.T) {
	b := startBerth(t, Options{Limits: `
login_ip_burst      = 5
login_ip_every      = "1h"
login_account_burst = 3
login_account_every = "1h"
reset_ip_burst      = 3
reset_ip_every      = "1h"
reset_mail_burst    = 2
reset_mail_every    = "1h"
register_ip_burst   = 1000
register_ip_every   = "1h"
`})
	victim := b.newUser(t, "victim") // logged in from 127.0.0.1
	attacker := fromIP("127.0.0.2")

	t.Run("per account", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			b.doFrom(t, attacker, "POST", loginPath(victim.Email), map[string]any{"password": "guess-" + strconv.Itoa(i)}).want(t, http.StatusUnauthorized)
		}
		r := b.doFrom(t, attacker, "POST", loginPath(victim.Email), map[string]any{"password": "guess-x"}).want(t, http.StatusTooManyRequests)
		if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("a 429 without a Retry-After in seconds: %q", r.Header.Get("Retry-After"))
		}
		// Even the right password is refused from there now: the attempt
		// is not evaluated at all.
		b.doFrom(t, attacker, "POST", loginPath(victim.Email), map[string]any{"password": victim.Password}).want(t, http.StatusTooManyRequests)
		// The owner, from the client it logged in from before, still gets in.
		b.login(t, victim.Email, victim.Password)
		// From a new client the account is locked until the limit refills.
		b.doFrom(t, fromIP("127.0.0.3"), "POST", loginPath(victim.Email), map[string]any{"password": victim.Password}).want(t, http.StatusTooManyRequests)
	})

	t.Run("per client IP", func(t *testing.T) {
		c := fromIP("127.0.0.4")
		for i := 0; i < 5; i++ {
			b.doFrom(t, c, "POST", loginPath("spray-"+strconv.Itoa(i)+"@e2e.test"), map[string]any{"password": "guess"}).want(t, http.StatusUnauthorized)
		}
		r := b.doFrom(t, c, "POST", loginPath("spray-9@e2e.test"), map[string]any{"password": "guess"}).want(t, http.StatusTooManyRequests)
		if r.Header.Get("Retry-After") == "" || r.Num("retry_after") < 1 {
			t.Errorf("a 429 without Retry-After: %s", r)
		}
		// Successful logins do not count against an IP: 127.0.0.1 logged in
		// several times above and below.
		for i := 0; i < 8; i++ {
			b.login(t, victim.Email, victim.Password)
		}
	})

	t.Run("no bcrypt work when limited", func(t *testing.T) {
		// Evaluated attempts (each a bcrypt comparison), from fresh IPs...
		before := b.cpuTime(t)
		start := time.Now()
		for i := 0; i < 10; i++ {
			c := fromIP("127.0.1." + strconv.Itoa(i+1))
			b.doFrom(t, c, "POST", loginPath("cpu-"+strconv.Itoa(i)+"@e2e.test"), map[string]any{"password": "guess"}).want(t, http.StatusUnauthorized)
		}
		evalCPU, evalWall := b.cpuTime(t)-before, time.Since(start)
		// ...and as many refused ones from an exhausted IP.
		c := fromIP("127.0.0.4")
		before = b.cpuTime(t)
		start = time.Now()
		for i := 0; i < 10; i++ {
			b.doFrom(t, c, "POST", loginPath("cpu-"+strconv.Itoa(i)+"@e2e.test"), map[string]any{"password": "guess"}).want(t, http.StatusTooManyRequests)
		}
		limCPU, limWall := b.cpuTime(t)-before, time.Since(start)
		t.Logf("10 evaluated failed logins: %v CPU, %v wall; 10 refused by the limit: %v CPU, %v wall", evalCPU, evalWall, limCPU, limWall)
		if limCPU*3 > evalCPU {
			t.Errorf("refused logins cost %v of CPU, evaluated ones %v: the refused ones still do bcrypt work", limCPU, evalCPU)
		}
	})

	t.Run("reset", func(t *testing.T) {
		c := fromIP("127.0.0.5")
		for i := 0; i < 3; i++ {
			b.doFrom(t, c, "POST", "/users/"+victim.Email+"/password", nil).want(t, http.StatusOK)
		}
		r := b.doFrom(t, c, "POST", "/users/"+victim.Email+"/password", nil).want(t, http.StatusTooManyRequests)
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("a 429 without Retry-After: %s", r)
		}
		// Mails per account: 2, whoever asks.
		for i := 0; i < 3; i++ {
			b.doFrom(t, fromIP("127.0.0."+strconv.Itoa(10+i)), "POST", "/users/"+victim.Email+"/password", nil).want(t, http.StatusOK)
		}
		if n := len(b.outbox(t, victim.Email)); n != 2 {
			t.Errorf("6 reset requests mailed %s %d times, want 2 (reset_mail_burst)", victim.Email, n)
		}
	})

	t.Run("password change", func(t *testing.T) {
		// A stolen token is no way around the account limit: wrong old
		// passwords count against it.
		u := b.newUser(t, "changer")
		for i := 0; i < 3; i++ {
			b.do(t, "PUT", "/users/password", u, map[string]any{"old": "guess-" + strconv.Itoa(i), "new": "pw-" + randHex(8)}).want(t, http.StatusForbidden)
		}
		b.do(t, "PUT", "/users/password", u, map[string]any{"old": u.Password, "new": "pw-" + randHex(8)}).want(t, http.StatusTooManyRequests)
		b.login(t, u.Email, u.Password) // unchanged, and the owner's client still logs in
	})

	t.Run("registration", func(t *testing.T) {
		b2 := startBerth(t, Options{Limits: "register_ip_burst = 2\nregister_ip_every = \"1h\"\n"})
		for i := 0; i < 2; i++ {
			b2.do(t, "POST", "/users", nil, map[string]any{"email": b2.unique("reg") + "@e2e.test", "password": "pw-" + randHex(8)}).want(t, http.StatusOK)
		}
		b2.do(t, "POST", "/users", nil, map[string]any{"email": b2.unique("reg") + "@e2e.test", "password": "pw-" + randHex(8)}).want(t, http.StatusTooManyRequests)
		// Admins are not limited.
		b2.do(t, "POST", "/users", b2.Admin, map[string]any{"email": b2.unique("reg") + "@e2e.test", "password": "pw-" + randHex(8)}).want(t, http.StatusOK)
	})
}

func TestNotifierURLsMasked(t *testing.T) {
	b := startBerth(t, Options{})
	secret := "tok-" + randHex(12)
	hook := "https://hooks.example.com/services/" + secret + "?token=" + secret
	b.do(t, "POST", "/api/v1/notify/imagepush/", b.Admin, map[string]any{"notify_url": hook}).want(t, http.StatusCreated)

	u := b.newUser(t, "peeker")
	b.createApp(t, u, "peek-app")
	for _, who := range []*User{u, b.appToken(t, u, "peek-app")} {
		r := b.do(t, "GET", "/api/v1/notify/imagepush/", who, nil).want(t, http.StatusOK)
		if strings.Contains(string(r.Raw), secret) {
			t.Errorf("%s sees a notifier URL with its token: %s", who, r)
		}
		l := r.List()
		if len(l) != 1 {
			t.Fatalf("%s: want 1 notifier, got %s", who, r)
		}
		if got := l[0].(map[string]any)["notify_url"]; got != "https://hooks.example.com/…" {
			t.Errorf("%s sees notify_url %q, want the masked https://hooks.example.com/…", who, got)
		}
	}
	r := b.do(t, "GET", "/api/v1/notify/imagepush/", b.Admin, nil).want(t, http.StatusOK)
	if l := r.List(); len(l) != 1 || l[0].(map[string]any)["notify_url"] != hook {
		t.Errorf("the admin does not see the notifier URL whole: %s", r)
	}
}

func TestMetricsAccess(t *testing.T) {
	// Public by default, like /healthz.
	b := startBerth(t, Options{})
	if r := b.do(t, "GET", "/metrics", nil, nil); r.Code != http.StatusOK || !strings.Contains(string(r.Raw), "berth_http_requests_total") {
		t.Errorf("GET /metrics by default: %d", r.Code)
	}
	// With metrics.token_required: only admins.
	b2 := startBerth(t, Options{ExtraHCL: "metrics {\n  token_required = true\n}\n"})
	b2.do(t, "GET", "/metrics", nil, nil).want(t, http.StatusUnauthorized)
	b2.do(t, "GET", "/metrics", b2.newUser(t, "metrics"), nil).want(t, http.StatusForbidden)
	if r := b2.do(t, "GET", "/metrics/", b2.Admin, nil); r.Code != http.StatusOK || !strings.Contains(string(r.Raw), "berth_http_requests_total") {
		t.Errorf("GET /metrics as an admin: %d", r.Code)
	}
}
