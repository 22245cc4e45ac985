// Package devagent starts real Consul and Vault development agents for tests.
//
// Each test binary gets at most one agent of each kind, started on first use
// on free loopback ports with temporary directories, shared by every test of
// the package, and stopped by Shutdown (call it from TestMain after m.Run).
// On Linux the agents also die with the test binary (Pdeathsig).
//
// The binaries are looked up in $BERTH_CONSUL_BIN / $BERTH_VAULT_BIN, else in
// ${BERTH_CACHE:-$HOME/.cache/berth}/bin/{consul,vault}, where
// tools/agents/build.sh puts them. When a binary is missing the test is
// skipped with a message naming the missing file and the command that builds
// it. When CONSUL_HTTP_ADDR (or VAULT_ADDR with VAULT_TOKEN) is set, that
// external server is used instead and nothing is started.
package devagent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// StartTimeout bounds how long an agent may take to become ready.
const StartTimeout = 60 * time.Second

// agent is one running (or failed) development agent.
type agent struct {
	once  sync.Once
	name  string
	err   error
	skip  string // non-empty: the reason tests using this agent skip
	addr  string // http://127.0.0.1:port
	token string
	cmd   *exec.Cmd
	done  chan struct{} // closed when the process has exited
	dir   string        // temporary directory removed at Shutdown
	log   *bytes.Buffer
	logMu *sync.Mutex
}

var (
	mu     sync.Mutex
	consul = &agent{name: "consul"}
	vault  = &agent{name: "vault"}
)

// CacheDir is ${BERTH_CACHE:-$HOME/.cache/berth}.
func CacheDir() string {
	if d := os.Getenv("BERTH_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), "berth-cache")
	}
	return filepath.Join(home, ".cache", "berth")
}

// BinaryPath is where the agent binary named name ("consul" or "vault") is
// looked for: $BERTH_<NAME>_BIN if set, else CacheDir()/bin/<name>.
func BinaryPath(name string) string {
	if p := os.Getenv("BERTH_" + strings.ToUpper(name) + "_BIN"); p != "" {
		return p
	}
	return filepath.Join(CacheDir(), "bin", name)
}

// Consul returns the HTTP address (http://127.0.0.1:port) of a Consul dev
// agent, starting one for this test binary if needed. It skips the test when
// the binary is missing and fails it when the agent cannot start.
func Consul(t testing.TB) (addr string) {
	t.Helper()
	if a := os.Getenv("CONSUL_HTTP_ADDR"); a != "" {
		return normalizeAddr(a)
	}
	consul.once.Do(func() { consul.start(startConsul) })
	consul.check(t)
	return consul.addr
}

// Vault returns the address and root token of a Vault dev server (KV v2
// mounted at "secret/"), starting one for this test binary if needed. It
// skips the test when the binary is missing and fails it when the server
// cannot start.
func Vault(t testing.TB) (addr, rootToken string) {
	t.Helper()
	if a := os.Getenv("VAULT_ADDR"); a != "" && os.Getenv("VAULT_TOKEN") != "" {
		return normalizeAddr(a), os.Getenv("VAULT_TOKEN")
	}
	vault.once.Do(func() { vault.start(startVault) })
	vault.check(t)
	return vault.addr, vault.token
}

// Shutdown stops every agent this process started (returning once they
// have exited) and removes their temporary directories. It is safe to call
// more than once and when nothing was started.
func Shutdown() {
	mu.Lock()
	defer mu.Unlock()
	for _, a := range []*agent{consul, vault} {
		a.stop()
	}
	probeTransport.CloseIdleConnections()
}

// RunThenShutdown wraps m: its Run runs the tests, then Shutdown. Give it
// to goleak.VerifyTestMain, whose leak check follows Run, so that the
// agents (and the goroutines waiting on them) are gone by then:
//
//	func TestMain(m *testing.M) {
//		goleak.VerifyTestMain(devagent.RunThenShutdown(m))
//	}
func RunThenShutdown(m *testing.M) interface{ Run() int } { return runThenShutdown{m} }

type runThenShutdown struct{ m *testing.M }

func (r runThenShutdown) Run() int {
	code := r.m.Run()
	Shutdown()
	return code
}

func (a *agent) check(t testing.TB) {
	t.Helper()
	if a.skip != "" {
		t.Skip(a.skip)
	}
	if a.err != nil {
		t.Fatalf("devagent: %v", a.err)
	}
}

func (a *agent) start(fn func(a *agent, bin string) error) {
	bin := BinaryPath(a.name)
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		a.skip = fmt.Sprintf("%s agent binary not found at %s: build it with `bash tools/agents/build.sh %s` "+
			"(or set BERTH_%s_BIN to a %s binary)", a.name, bin, a.name, strings.ToUpper(a.name), a.name)
		return
	}
	mu.Lock()
	defer mu.Unlock()
	// Ports are picked free and then released, so another process can take
	// one in between: retry a few times on failure.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = fn(a, bin); err == nil {
			return
		}
		a.stop()
	}
	a.err = err
}

func (a *agent) stop() {
	if a.cmd != nil && a.cmd.Process != nil {
		_ = a.cmd.Process.Signal(os.Interrupt)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.done
		}
		a.cmd = nil
	}
	if a.dir != "" {
		_ = os.RemoveAll(a.dir)
		a.dir = ""
	}
}

// launch starts bin with args in a fresh temporary directory (also its HOME)
// and collects its output.
func (a *agent) launch(bin string, args ...string) error {
	dir, err := os.MkdirTemp("", "berth-devagent-"+a.name+"-")
	if err != nil {
		return err
	}
	a.dir = dir
	a.log = new(bytes.Buffer)
	a.logMu = new(sync.Mutex)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), "HOME="+dir)
	w := &lockedWriter{mu: a.logMu, w: a.log}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", a.name, err)
	}
	a.cmd = cmd
	a.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(a.done) }()
	return nil
}

// cleanEnv is the environment without the variables that would point an
// agent at another server or configuration.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CONSUL_") || strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// output is the tail of the agent's combined output, for error messages.
func (a *agent) output() string {
	if a.log == nil {
		return ""
	}
	a.logMu.Lock()
	defer a.logMu.Unlock()
	s := a.log.String()
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

// waitReady polls ready until it reports true, the process exits or the
// StartTimeout passes.
func (a *agent) waitReady(ready func(ctx context.Context) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready(ctx) {
			return nil
		}
		select {
		case <-a.done:
			return fmt.Errorf("%s exited before it was ready (%v); output:\n%s", a.name, a.cmd.ProcessState, a.output())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v; output:\n%s", a.name, StartTimeout, a.output())
		case <-tick.C:
		}
	}
}

func startConsul(a *agent, bin string) error {
	ports, err := freePorts(4, false)
	if err != nil {
		return err
	}
	httpPort, serfLAN, serfWAN, server := ports[0], ports[1], ports[2], ports[3]
	err = a.launch(bin, "agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1", "-advertise", "127.0.0.1",
		"-http-port", strconv.Itoa(httpPort),
		"-serf-lan-port", strconv.Itoa(serfLAN),
		"-serf-wan-port", strconv.Itoa(serfWAN),
		"-server-port", strconv.Itoa(server),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-node", "berth-dev", "-log-level", "warn",
		// Session TTLs from 1s (Consul's default minimum is 10s), so
		// that tests of session locks hand a lock over in seconds.
		"-hcl", `session_ttl_min = "1s"`,
		// Many Berth servers of parallel tests share this agent, each
		// holding a blocking query per Store directory (the read
		// replica's watches): more than Consul's default of 200 HTTP
		// connections per client address.
		"-hcl", `limits { http_max_conns_per_client = 4096 }`,
	)
	if err != nil {
		return err
	}
	a.addr = "http://127.0.0.1:" + strconv.Itoa(httpPort)
	// Ready when a leader is elected and the KV store answers.
	return a.waitReady(func(ctx context.Context) bool {
		body, code := httpGet(ctx, a.addr+"/v1/status/leader", "")
		if code != http.StatusOK || len(bytes.Trim(body, "\" \n")) == 0 {
			return false
		}
		_, code = httpGet(ctx, a.addr+"/v1/kv/berth-devagent-probe", "")
		return code == http.StatusNotFound || code == http.StatusOK
	})
}

func startVault(a *agent, bin string) error {
	// Vault binds PORT for the API and PORT+1 for its cluster listener.
	ports, err := freePorts(1, true)
	if err != nil {
		return err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	a.token = "root-" + hex.EncodeToString(tok)
	err = a.launch(bin, "server", "-dev",
		"-dev-listen-address", "127.0.0.1:"+strconv.Itoa(ports[0]),
		"-dev-root-token-id", a.token,
		"-dev-no-store-token",
		"-log-level", "warn",
	)
	if err != nil {
		return err
	}
	a.addr = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	// Ready when unsealed and active, and the KV v2 mount answers.
	return a.waitReady(func(ctx context.Context) bool {
		if _, code := httpGet(ctx, a.addr+"/v1/sys/health", ""); code != http.StatusOK {
			return false
		}
		_, code := httpGet(ctx, a.addr+"/v1/secret/config", a.token)
		return code == http.StatusOK
	})
}

// The readiness probes' client: its own transport, whose idle connections
// Shutdown closes (rather than leaving them in http.DefaultTransport).
var (
	probeTransport = &http.Transport{MaxIdleConnsPerHost: 2}
	probeClient    = &http.Client{Transport: probeTransport}
)

func httpGet(ctx context.Context, url, token string) ([]byte, int) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return nil, 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return body, resp.StatusCode
}

// freePorts finds n distinct free TCP ports on 127.0.0.1 (each also free for
// UDP, as Serf uses both). With pair set, port+1 must be free as well.
func freePorts(n int, pair bool) ([]int, error) {
	var ports []int
	var held []io.Closer
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	for tries := 0; len(ports) < n && tries < 100; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		cs := []io.Closer{l}
		ok := true
		if u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			cs = append(cs, u)
		} else {
			ok = false
		}
		if ok && pair {
			if l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1)); err == nil {
				cs = append(cs, l2)
			} else {
				ok = false
			}
		}
		held = append(held, cs...)
		if ok {
			ports = append(ports, port)
		}
	}
	if len(ports) < n {
		return nil, errors.New("devagent: could not find free loopback ports")
	}
	return ports, nil
}

func normalizeAddr(a string) string {
	if strings.Contains(a, "://") {
		return strings.TrimRight(a, "/")
	}
	return "http://" + a
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

// maxLog bounds the agent output kept in memory for error messages.
const maxLog = 1 << 20

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.w.(*bytes.Buffer); ok && b.Len()+len(p) > maxLog {
		// Keep the newer half: the tail is what explains a failure.
		keep := append([]byte(nil), b.Bytes()[b.Len()/2:]...)
		b.Reset()
		b.Write(keep)
	}
	return l.w.Write(p)
}
