// Package e2e holds Berth's black-box end-to-end tests: they build the real
// berth binary once, start it on free loopback ports with a config written
// into a temporary directory, and drive its HTTP API as a user would.
//
// The harness (this file) is shared by every e2e test:
//
//	b := startBerth(t, Options{})          // embedded defaults (bbolt, sealed, local)
//	u := b.newUser(t, "dev")               // registered and logged in
//	r := b.do(t, "POST", "/apps", u, map[string]any{"name": "hello"})
//	r.want(t, 200)
//
// Options select the Consul Store and Vault Secrets (see backendVariants),
// add raw HCL, and change the notify backoff, quotas and the like. Every
// password and token the harness sees is remembered; when the test ends the
// server is stopped (SIGTERM) and its log and store are searched for them.
//
// Environment:
//
//	BERTH_E2E_BIN   use this berth binary instead of building one
//	BERTH_E2E_RACE  build the binary with -race (slower)
//	BERTH_E2E_LOG   print every server's log, not only those of failed tests
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends/devagent"
)

// logTail is how many lines of a failed test's server log are printed.
const logTail = 60

// berthBin is the binary under test, built by TestMain.
var berthBin string

func TestMain(m *testing.M) {
	code := func() int {
		if p := os.Getenv("BERTH_E2E_BIN"); p != "" {
			berthBin = p
			return runValidated(m)
		}
		dir, err := os.MkdirTemp("", "berth-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		berthBin = filepath.Join(dir, "berth")
		args := []string{"build", "-o", berthBin}
		if os.Getenv("BERTH_E2E_RACE") != "" {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/berth")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = ".." // the module root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: building the berth binary failed: %v\n%s", err, out)
			return 1
		}
		return runValidated(m)
	}()
	devagent.Shutdown()
	os.Exit(code)
}

// Options configure one berth server.
type Options struct {
	// Consul, when set, is the Consul HTTP address: the Store is Consul KV
	// under a prefix unique to this server.
	Consul string
	// Vault and VaultToken, when set, make Vault KV v2 the Secrets backend
	// (under a prefix unique to this server).
	Vault, VaultToken string
	// DefaultQuota is users.default_quota (0 = the default, 10).
	DefaultQuota int
	// NotifySecret is notify.secret (the HMAC key of webhook signatures).
	NotifySecret string
	// NotifyAttempts is notify.max_attempts (0 = 5).
	NotifyAttempts int
	// MaxBodyBytes is max_body_bytes (0 = the default, 1 MiB).
	MaxBodyBytes int64
	// LogLevel is log_level (default "debug", so that the secret-leak check
	// sees as much as the server can log).
	LogLevel string
	// ExtraHCL is appended to the generated config verbatim (e.g. a nomad block).
	ExtraHCL string
	// ClosedRegistration sets users.open_registration = false.
	ClosedRegistration bool
	// Limits is the body of the config's limits block (the rate limits of
	// login, reset and registration). Empty: limits loose enough for tests
	// that register and log in many users from 127.0.0.1.
	Limits string
	// Join makes this server another server of Join's cluster: the same
	// Consul and Vault prefixes (Join must use Consul; Vault too if
	// private env or services are to be shared), the same site admin (no
	// create-user), its own data dir and ports.
	Join *Berth
	// NoLeakCheck turns off the end-of-test search for secrets in the log
	// and the store (for tests that deliberately put secrets in config).
	NoLeakCheck bool
}

// Berth is one running berth server.
type Berth struct {
	URL        string // http://127.0.0.1:port
	Addr       string // 127.0.0.1:port
	RouterAddr string // the local scheduler's router
	Dir        string // the test's temporary directory
	DataDir    string
	ConfigPath string
	Opts       Options
	Admin      *User // a site admin, logged in
	// ConsulPrefix and VaultPrefix are this server's key prefixes.
	ConsulPrefix, VaultPrefix string

	http    *http.Client
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	killed  bool // killHard ended it: stop expects no clean exit
	log     *syncBuffer

	mu      sync.Mutex
	secrets map[string]string // value -> what it is
	seq     int
}

// User is someone the tests act as: a user with a login token, or an app
// token (App set). A nil *User is anonymous.
type User struct {
	Email    string
	Password string
	Token    string
	App      string // for app tokens: the app it may act on
	// AccessTokenHeader sends the token in the access-token header instead
	// of "Authorization: bearer".
	AccessTokenHeader bool
}

func (u *User) String() string {
	if u == nil {
		return "anonymous"
	}
	if u.App != "" {
		return "app-token(" + u.App + ")"
	}
	return u.Email
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// randHex returns n random bytes, hex encoded.
func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func hclString(s string) string { b, _ := json.Marshal(s); return string(b) }

// startBerth creates a site admin with `berth admin create-user`, starts
// `berth server` with a config written into t.TempDir(), waits for
// /healthz, logs the admin in, and stops the server when the test ends.
// Ports are picked free just before the start; a start that loses the race
// for a port is retried.
func startBerth(t testing.TB, opts Options) *Berth {
	t.Helper()
	var last string
	for attempt := 0; attempt < 3; attempt++ {
		b, retry, msg := tryStart(t, opts)
		if b != nil {
			return b
		}
		last = msg
		if !retry {
			break
		}
	}
	t.Fatalf("berth did not start: %s", last)
	return nil
}

func tryStart(t testing.TB, opts Options) (b *Berth, retry bool, msg string) {
	t.Helper()
	dir := t.TempDir()
	appReachable(t, dir) // app procs (own uids) reach apps_dir, next to data_dir
	b = &Berth{
		Dir: dir, DataDir: filepath.Join(dir, "data"), ConfigPath: filepath.Join(dir, "config.hcl"),
		Addr: freeAddr(t), RouterAddr: freeAddr(t), Opts: opts,
		http: &http.Client{
			Transport:     validating{base: http.DefaultTransport},
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log:     &syncBuffer{},
		secrets: map[string]string{},
	}
	b.URL = "http://" + b.Addr
	if j := opts.Join; j != nil {
		if j.Opts.Consul == "" {
			t.Fatal("Options.Join: the server joined must use Consul")
		}
		b.Opts.Consul, b.Opts.Vault, b.Opts.VaultToken = j.Opts.Consul, j.Opts.Vault, j.Opts.VaultToken
		b.ConsulPrefix, b.VaultPrefix = j.ConsulPrefix, j.VaultPrefix
	}
	if err := os.WriteFile(b.ConfigPath, []byte(b.configHCL()), 0o600); err != nil {
		t.Fatal(err)
	}

	if j := opts.Join; j != nil {
		b.Admin = &User{Email: j.Admin.Email, Password: j.Admin.Password}
		b.remember(b.Admin.Password, "the admin password")
	} else {
		// The first admin, made the way an operator makes it.
		adminEmail := "admin@berth.local"
		pwFile := filepath.Join(dir, "admin-password")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, berthBin, "admin", "create-user", "-config", b.ConfigPath,
			"-email", adminEmail, "-admin", "-password-out", pwFile).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("berth admin create-user: %v\n%s", err, out)
		}
		pw, err := os.ReadFile(pwFile)
		if err != nil {
			t.Fatalf("reading the admin password: %v", err)
		}
		if strings.Contains(string(out), strings.TrimSpace(string(pw))) {
			t.Errorf("berth admin create-user -password-out printed the password on stdout: %s", out)
		}
		b.Admin = &User{Email: adminEmail, Password: strings.TrimSpace(string(pw))}
		b.remember(b.Admin.Password, "the admin password")
	}

	cmd := exec.Command(berthBin, "server", "-config", b.ConfigPath)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = b.log, b.log
	cmd.SysProcAttr = serverProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting berth: %v", err)
	}
	b.cmd = cmd
	b.exited = make(chan struct{})
	go func() { b.exitErr = cmd.Wait(); close(b.exited) }()
	t.Cleanup(func() { b.stop(t) })

	// Wait for /healthz.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-b.exited:
			log := b.log.String()
			portTaken := strings.Contains(log, "address already in use")
			return nil, portTaken, fmt.Sprintf("the server exited early (%v); its log:\n%s", b.exitErr, log)
		default:
		}
		resp, err := b.http.Get(b.URL + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/healthz answered %d: %s\nserver log:\n%s", resp.StatusCode, body, b.log.String())
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("berth did not answer /healthz within 30s: %v\nserver log:\n%s", err, b.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	watchOpenAPI(b)
	b.Admin.Token = b.login(t, b.Admin.Email, b.Admin.Password)
	return b, false, ""
}

// e2eTargetsHCL is the broker targets every test server has: this
// machine's MariaDB (as root, no password) and Redis.
const e2eTargetsHCL = `broker_target "e2e-mysql" {
  broker   = "mysql"
  settings = { host = "127.0.0.1", port = "3306", user = "root", meta_database = "berth_broker_e2e" }
}
broker_target "e2e-redis" {
  broker   = "redis"
  settings = { addr = "127.0.0.1:6379", meta_prefix = "berth:e2e-broker" }
}
`

func (b *Berth) configHCL() string {
	var c strings.Builder
	level := b.Opts.LogLevel
	if level == "" {
		level = "debug"
	}
	fmt.Fprintf(&c, "data_dir  = %s\nbind_addr = %s\nlog_level = %s\n", hclString(b.DataDir), hclString(b.Addr), hclString(level))
	if b.Opts.MaxBodyBytes > 0 {
		fmt.Fprintf(&c, "max_body_bytes = %d\n", b.Opts.MaxBodyBytes)
	}
	c.WriteString("platforms = [\"go\", \"python\", \"static\"]\n")
	fmt.Fprintf(&c, "users {\n  open_registration = %v\n", !b.Opts.ClosedRegistration)
	if b.Opts.DefaultQuota > 0 {
		fmt.Fprintf(&c, "  default_quota = %d\n", b.Opts.DefaultQuota)
	}
	c.WriteString("}\n")
	limits := b.Opts.Limits
	if limits == "" {
		limits = "login_ip_burst = 10000\nlogin_account_burst = 1000\nreset_ip_burst = 1000\nreset_mail_burst = 100\nregister_ip_burst = 10000\n"
	}
	fmt.Fprintf(&c, "limits {\n%s}\n", limits)
	fmt.Fprintf(&c, "local {\n  router_addr = %s\n  stop_timeout = \"5s\"\n}\n", hclString(b.RouterAddr))
	attempts := b.Opts.NotifyAttempts
	if attempts == 0 {
		attempts = 5
	}
	fmt.Fprintf(&c, "notify {\n  backoff = \"100ms\"\n  timeout = \"2s\"\n  max_attempts = %d\n", attempts)
	if b.Opts.NotifySecret != "" {
		fmt.Fprintf(&c, "  secret = %s\n", hclString(b.Opts.NotifySecret))
	}
	c.WriteString("}\n")
	if b.Opts.Consul != "" {
		if b.ConsulPrefix == "" {
			b.ConsulPrefix = "berth-e2e/" + randHex(6) + "/"
		}
		fmt.Fprintf(&c, "consul {\n  address = %s\n  prefix = %s\n}\n", hclString(b.Opts.Consul), hclString(b.ConsulPrefix))
	}
	if b.Opts.Vault != "" {
		if b.VaultPrefix == "" {
			b.VaultPrefix = "berth-e2e-" + randHex(6)
		}
		fmt.Fprintf(&c, "vault {\n  address = %s\n  token = %s\n  mount = \"secret\"\n  prefix = %s\n}\n",
			hclString(b.Opts.Vault), hclString(b.Opts.VaultToken), hclString(b.VaultPrefix))
	}
	// Broker targets (operator configuration): tenants' services name
	// these; only site admins give settings themselves.
	c.WriteString(e2eTargetsHCL)
	c.WriteString(b.Opts.ExtraHCL)
	return c.String()
}

// stop sends SIGTERM, waits for a clean exit (kills after 20s), prints the
// log when the test failed, and searches the log and the store for every
// secret the test used.
func (b *Berth) stop(t testing.TB) {
	t.Helper()
	if b.cmd == nil {
		return
	}
	// The audit log is an API answer that could carry secrets: read it
	// (as the admin, if the test left that token alive) for checkLeaks.
	var events []byte
	if b.Admin != nil && b.Admin.Token != "" && !b.Opts.NoLeakCheck && !b.killed {
		if r, err := b.try("GET", "/api/v1/events/?limit=1000", b.Admin, nil, nil); err == nil && r.Code == http.StatusOK {
			events = r.Raw
		}
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	clean := true
	select {
	case <-b.exited:
	case <-time.After(20 * time.Second):
		clean = false
		killGroup(b.cmd)
		<-b.exited
	}
	killGroup(b.cmd) // strays of a server that did not stop its children
	b.cmd = nil
	if !clean {
		t.Errorf("berth did not stop within 20s of SIGTERM")
	} else if b.exitErr != nil && !b.killed {
		t.Errorf("berth exited with %v after SIGTERM", b.exitErr)
	}
	if !b.Opts.NoLeakCheck {
		b.checkLeaks(t, events)
	}
	checkAnswerTypes(b.log.String())
	if os.Getenv("BERTH_E2E_LOG") != "" {
		t.Logf("berth server log (%s):\n%s", b.URL, b.log.String())
	} else if t.Failed() {
		lines := strings.Split(strings.TrimRight(b.log.String(), "\n"), "\n")
		if len(lines) > logTail {
			lines = append([]string{fmt.Sprintf("... (%d earlier lines; set BERTH_E2E_LOG=1 for all)", len(lines)-logTail)}, lines[len(lines)-logTail:]...)
		}
		t.Logf("berth server log (%s), last lines:\n%s", b.URL, strings.Join(lines, "\n"))
	}
}

// remember records a secret value that must never appear in the server's
// log or in the store. Short or low-entropy values (the seed's "123456")
// are not searched for: they occur by chance in timestamps.
func (b *Berth) remember(value, what string) {
	if len(value) < 12 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.secrets[value] = what
}

// checkLeaks searches the server's log, its store and the audit events
// for every remembered secret.
func (b *Berth) checkLeaks(t testing.TB, events []byte) {
	t.Helper()
	b.mu.Lock()
	secrets := make(map[string]string, len(b.secrets))
	for k, v := range b.secrets {
		secrets[k] = v
	}
	b.mu.Unlock()
	log := b.log.String()
	var store []byte
	storeName := ""
	if b.Opts.Consul == "" {
		storeName = "berth.db"
		data, err := os.ReadFile(filepath.Join(b.DataDir, "berth.db"))
		if err != nil {
			t.Errorf("reading the store for the secret check: %v", err)
		}
		store = data
	} else {
		storeName = "Consul KV " + b.ConsulPrefix
		store = b.consulDump(t)
	}
	for value, what := range secrets {
		if strings.Contains(log, value) {
			t.Errorf("SECRET LEAK: %s appears in the server log", what)
		}
		if bytes.Contains(store, []byte(value)) {
			t.Errorf("SECRET LEAK: %s appears in the store (%s)", what, storeName)
		}
		if bytes.Contains(events, []byte(value)) {
			t.Errorf("SECRET LEAK: %s appears in the audit events (GET /api/v1/events/)", what)
		}
	}
}

// consulDump returns every key and value under this server's Consul prefix.
func (b *Berth) consulDump(t testing.TB) []byte {
	t.Helper()
	u := strings.TrimSuffix(b.Opts.Consul, "/") + "/v1/kv/" + b.ConsulPrefix + "?recurse=true"
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Errorf("reading Consul KV: %v", err)
		return nil
	}
	defer resp.Body.Close()
	var pairs []struct {
		Key   string
		Value []byte
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&pairs); err != nil {
		t.Errorf("decoding Consul KV: %v", err)
		return nil
	}
	var all bytes.Buffer
	for _, p := range pairs {
		all.WriteString(p.Key)
		all.WriteByte('\n')
		all.Write(p.Value)
		all.WriteByte('\n')
	}
	return all.Bytes()
}

// Log returns the server's log so far.
func (b *Berth) Log() string { return b.log.String() }

// unique returns a name unique within this server: prefix-N.
func (b *Berth) unique(prefix string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	return fmt.Sprintf("%s-%d", prefix, b.seq)
}

// --- HTTP ------------------------------------------------------------------

// Resp is one answer.
type Resp struct {
	Method, Path string
	Code         int
	Header       http.Header
	Raw          []byte
	JSON         any // the decoded body (nil when not JSON)
	jsonErr      error
}

// Obj is the body as an object (empty when it is not one).
func (r *Resp) Obj() map[string]any {
	m, _ := r.JSON.(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m
}

// List is the body as an array (nil when it is not one).
func (r *Resp) List() []any {
	l, _ := r.JSON.([]any)
	return l
}

// Str is a string field of the body ("" when absent or not a string).
func (r *Resp) Str(key string) string {
	s, _ := r.Obj()[key].(string)
	return s
}

// Num is a number field of the body (-1 when absent).
func (r *Resp) Num(key string) float64 {
	n, ok := r.Obj()[key].(float64)
	if !ok {
		return -1
	}
	return n
}

func (r *Resp) String() string {
	body := string(r.Raw)
	if len(body) > 2000 {
		body = body[:2000] + "..."
	}
	return fmt.Sprintf("%s %s -> %d %s", r.Method, r.Path, r.Code, strings.TrimSpace(body))
}

// want fails the test unless the status is code; for error statuses it also
// checks the error format {"error", "status", "request_id"}.
func (r *Resp) want(t testing.TB, code int) *Resp {
	t.Helper()
	if r.Code != code {
		t.Fatalf("want %d, got %s", code, r)
	}
	if code >= 400 {
		checkErrorBody(t, r)
	}
	return r
}

// check is want without stopping the test.
func (r *Resp) check(t testing.TB, code int) bool {
	t.Helper()
	if r.Code != code {
		t.Errorf("want %d, got %s", code, r)
		return false
	}
	if code >= 400 {
		checkErrorBody(t, r)
	}
	return true
}

// checkErrorBody checks that an error answer says what went wrong in the
// documented shape.
func checkErrorBody(t testing.TB, r *Resp) {
	t.Helper()
	o := r.Obj()
	if msg, _ := o["error"].(string); strings.TrimSpace(msg) == "" {
		t.Errorf("%s: error answer without an \"error\" message", r)
	}
	if st, _ := o["status"].(float64); int(st) != r.Code {
		t.Errorf("%s: error answer's \"status\" is %v, not %d", r, o["status"], r.Code)
	}
	if id, _ := o["request_id"].(string); id == "" || id != r.Header.Get("X-Request-Id") {
		t.Errorf("%s: error answer's request_id %q does not match X-Request-Id %q", r, o["request_id"], r.Header.Get("X-Request-Id"))
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: error answer has Content-Type %q", r, ct)
	}
}

// Body kinds for do.
type (
	rawBody  []byte // sent as is with Content-Type: application/json
	yamlBody string // sent with Content-Type: text/yaml
	// typedBody is sent as is with its own Content-Type ("" = none).
	typedBody struct {
		ContentType string
		Data        []byte
	}
)

// do sends one request as u (nil = anonymous). body is nil (none), a
// rawBody, yamlBody or typedBody, or any value to be sent as JSON.
func (b *Berth) do(t testing.TB, method, path string, u *User, body any) *Resp {
	t.Helper()
	return b.doHeaders(t, method, path, u, body, nil)
}

func (b *Berth) doHeaders(t testing.TB, method, path string, u *User, body any, hdr map[string]string) *Resp {
	t.Helper()
	r, err := b.try(method, path, u, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Code >= 300 && r.Code < 400 {
		t.Errorf("%s %s answered a redirect (%d to %q): every path must answer directly", method, path, r.Code, r.Header.Get("Location"))
	}
	if r.jsonErr != nil {
		t.Errorf("%s %s: Content-Type is JSON but the body is not: %v: %q", method, path, r.jsonErr, r.Raw)
	}
	return r
}

// try is do without a testing.TB, for goroutines: transport failures and
// bodies that cannot be encoded are errors.
func (b *Berth) try(method, path string, u *User, body any, hdr map[string]string) (*Resp, error) {
	var rd io.Reader
	ct := ""
	switch v := body.(type) {
	case nil:
	case rawBody:
		rd, ct = bytes.NewReader(v), "application/json"
	case yamlBody:
		rd, ct = strings.NewReader(string(v)), "text/yaml"
	case typedBody:
		rd, ct = bytes.NewReader(v.Data), v.ContentType
	default:
		data, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encoding the request body: %w", err)
		}
		b.harvestRequest(v)
		rd, ct = bytes.NewReader(data), "application/json"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, b.URL+path, rd)
	if err != nil {
		return nil, fmt.Errorf("building %s %s: %w", method, path, err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if u != nil && u.Token != "" {
		if u.AccessTokenHeader {
			req.Header.Set("access-token", u.Token)
		} else {
			req.Header.Set("Authorization", "bearer "+u.Token)
		}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	r := &Resp{Method: method, Path: path, Code: resp.StatusCode, Header: resp.Header, Raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		r.jsonErr = json.Unmarshal(raw, &r.JSON)
	}
	b.harvestResponse(r)
	return r, nil
}

// harvestRequest remembers password fields of request bodies as secrets.
func (b *Berth) harvestRequest(v any) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for _, k := range []string{"password", "old", "new"} {
		if s, ok := m[k].(string); ok {
			b.remember(s, "a password sent as "+k)
		}
	}
}

// harvestResponse remembers tokens handed out as secrets.
func (b *Berth) harvestResponse(r *Resp) {
	for _, k := range []string{"token", "Token"} {
		if s := r.Str(k); s != "" && r.Code < 300 {
			b.remember(s, "a token issued by "+r.Method+" "+r.Path)
		}
	}
}

// --- Users -----------------------------------------------------------------

// register creates a user through POST /users with a random strong password.
func (b *Berth) register(t testing.TB, email string) *User {
	t.Helper()
	pw := "pw-" + randHex(10)
	r := b.do(t, "POST", "/users", nil, map[string]any{"email": email, "password": pw})
	r.want(t, http.StatusOK)
	if got := r.Str("email"); got != strings.ToLower(email) {
		t.Fatalf("POST /users answered email %q, want %q", got, email)
	}
	return &User{Email: strings.ToLower(email), Password: pw}
}

// login returns a fresh login token.
func (b *Berth) login(t testing.TB, email, password string) string {
	t.Helper()
	r := b.do(t, "POST", "/users/"+url.PathEscape(email)+"/tokens", nil, map[string]any{"password": password})
	r.want(t, http.StatusOK)
	tok := r.Str("token")
	if !regexp.MustCompile(`^[0-9a-f]{32,}$`).MatchString(tok) {
		t.Fatalf("login token %q is not a long random hex string", tok)
	}
	return tok
}

// newUser registers a user named <name>-N@e2e.test and logs it in.
func (b *Berth) newUser(t testing.TB, name string) *User {
	t.Helper()
	u := b.register(t, b.unique(name)+"@e2e.test")
	u.Token = b.login(t, u.Email, u.Password)
	return u
}

// createApp registers an app through POST /api/v1/repos/ as u.
func (b *Berth) createApp(t testing.TB, u *User, name string) {
	t.Helper()
	b.do(t, "POST", "/api/v1/repos/", u, map[string]any{"appname": name}).want(t, http.StatusCreated)
}

// addMaintainer grants role on app to who, as u.
func (b *Berth) addMaintainer(t testing.TB, u *User, app, who, role string) {
	t.Helper()
	b.do(t, "POST", "/api/v1/repos/"+app+"/maintainers/", u, map[string]any{"username": who, "role": role}).want(t, http.StatusCreated)
}

// appToken creates an app token for app as u.
func (b *Berth) appToken(t testing.TB, u *User, app string) *User {
	t.Helper()
	r := b.do(t, "POST", "/tokens", u, map[string]any{"appname": app}).want(t, http.StatusOK)
	return &User{Email: u.Email, Token: r.Str("Token"), App: app}
}

// setQuota changes a user's quota as the admin.
func (b *Berth) setQuota(t testing.TB, email string, limit int) {
	t.Helper()
	b.do(t, "PUT", "/quota/"+email, b.Admin, map[string]any{"limit": limit}).want(t, http.StatusOK)
}

// metaVersion returns a fresh "<unix time>-<40 hex>" release name.
func metaVersion() string {
	return strconv.FormatInt(time.Now().Unix(), 10) + "-" + randHex(20)
}

// pushBody is a release in the seed's JSON shape.
func pushBody(mv string, instances int) map[string]any {
	return map[string]any{
		"meta_version": mv,
		"web":          map[string]any{"cmd": "./hello -port $PORT", "port": 8080, "memory": "64m", "num_instances": instances},
	}
}

// --- Mail ------------------------------------------------------------------

// outbox returns the messages written to <data_dir>/outbox for to, oldest first.
func (b *Berth) outbox(t testing.TB, to string) []string {
	t.Helper()
	dir := filepath.Join(b.DataDir, "outbox")
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".eml") && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "\r\nTo: "+to+"\r\n") {
			out = append(out, string(data))
		}
	}
	return out
}

// eventually polls cond every 50ms until it is true or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// --- Backends --------------------------------------------------------------

// backendVariant is one way of running the same scenarios.
type backendVariant struct {
	name string
	// opts returns the options (it may skip the test when an agent is missing).
	opts func(t *testing.T) Options
}

var backendVariants = []backendVariant{
	{"embedded", func(t *testing.T) Options { return Options{} }},
	{"consul", func(t *testing.T) Options { return Options{Consul: devagent.Consul(t)} }},
	{"vault", func(t *testing.T) Options {
		addr, tok := devagent.Vault(t)
		return Options{Vault: addr, VaultToken: tok}
	}},
	{"consul+vault", func(t *testing.T) Options {
		c := devagent.Consul(t)
		addr, tok := devagent.Vault(t)
		return Options{Consul: c, Vault: addr, VaultToken: tok}
	}},
}

// scenario is one end-to-end story, run against every backend variant.
type scenario struct {
	name string
	opts func(*Options) // adjusts the variant's options (may be nil)
	run  func(t *testing.T, b *Berth)
}

// runValidated runs the tests, then fails the run if any request or answer
// disagreed with the server's OpenAPI document.
func runValidated(m *testing.M) int {
	code := m.Run()
	if v := openAPIVerdict(); code == 0 {
		code = v
	}
	return code
}
