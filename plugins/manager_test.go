package plugins_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/berthpaas/berth/plugins"
	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/brokertest"
	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/hashicorp/go-hclog"
)

// flaky is a broker whose calls misbehave on request: Provision with
// params {"do": "crash"} exits the process mid-call, {"do": "hang"} never
// answers, {"do": "block"} waits (so the test can kill the process).
// Bind returns the plugin's PID. Configure with {"fail": "yes"} fails and
// {"log": X} logs X.
type flaky struct {
	sdk.Defaults
	log hclog.Logger
}

func (f *flaky) Configure(_ context.Context, s map[string]string) error {
	if s["fail"] == "yes" {
		return fmt.Errorf("%w: fail=yes", broker.ErrBadRequest)
	}
	if s["log"] != "" {
		f.log.Info("configured", "marker", s["log"])
	}
	return nil
}

func (f *flaky) Catalog(context.Context) (*broker.Catalog, error) {
	return &broker.Catalog{Services: []broker.Service{{ID: "flaky", Name: "flaky", Plans: []broker.Plan{{ID: "p", Name: "p"}}}}}, nil
}

func (f *flaky) Provision(ctx context.Context, req broker.ProvisionRequest) (*broker.ProvisionResponse, error) {
	switch req.Params["do"] {
	case "crash":
		os.Exit(3)
	case "hang":
		time.Sleep(time.Hour) // ignores its context, as a wedged broker would
	case "block":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &broker.ProvisionResponse{}, nil
}

func (f *flaky) Deprovision(context.Context, broker.DeprovisionRequest) (*broker.DeprovisionResponse, error) {
	return nil, sdk.Gone("instance", "x")
}

func (f *flaky) Bind(context.Context, broker.BindRequest) (*broker.BindResponse, error) {
	return &broker.BindResponse{Credentials: map[string]string{"PID": strconv.Itoa(os.Getpid())}}, nil
}

func (f *flaky) Unbind(context.Context, broker.UnbindRequest) error { return nil }

const builtinEnv = "BERTH_TEST_SERVE_BUILTIN"

func TestMain(m *testing.M) {
	if name := os.Getenv(builtinEnv); name != "" {
		// What `berth plugin <name>` does.
		if err := plugins.ServeBuiltin(name); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(v1Env) != "" {
		serveV1(&flaky{log: sdk.Logger("flaky")})
		os.Exit(0)
	}
	brokertest.ServeChild(func() broker.Broker { return &flaky{log: sdk.Logger("flaky")} })
	goleak.VerifyTestMain(m)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func pid(t *testing.T, b broker.Broker) int {
	t.Helper()
	r, err := b.Bind(ctx(t), broker.BindRequest{InstanceID: "i", BindingID: "b"})
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	p, _ := strconv.Atoi(r.Credentials["PID"])
	if p == 0 || p == os.Getpid() {
		t.Fatalf("broker runs in pid %d (test pid %d): not a subprocess", p, os.Getpid())
	}
	return p
}

func alive(p int) bool { return syscall.Kill(p, 0) == nil }

func TestCrashDuringCallThenRestart(t *testing.T) {
	b := brokertest.Subprocess(t, "flaky", nil)
	first := pid(t, b)
	start := time.Now()
	_, err := b.Provision(ctx(t), broker.ProvisionRequest{InstanceID: "i", Params: map[string]string{"do": "crash"}})
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("call in flight when the plugin crashed: err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the failed call took %v", d)
	}
	// The next call restarts the plugin.
	second := pid(t, b)
	if second == first {
		t.Errorf("plugin was not restarted (pid %d)", first)
	}
	if _, err := b.Catalog(ctx(t)); err != nil {
		t.Errorf("Catalog after restart: %v", err)
	}
}

func TestKilledDuringCall(t *testing.T) {
	b := brokertest.Subprocess(t, "flaky", nil)
	first := pid(t, b)
	errc := make(chan error, 1)
	go func() {
		_, err := b.Provision(context.Background(), broker.ProvisionRequest{InstanceID: "i", Params: map[string]string{"do": "block"}})
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond) // let the call reach the plugin
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, broker.ErrUnavailable) {
			t.Fatalf("call in flight when the plugin was killed: err = %v, want ErrUnavailable", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("call in flight did not return after the plugin was killed")
	}
	if second := pid(t, b); second == first {
		t.Errorf("plugin was not restarted")
	}
}

func TestExitedPluginRestartedOnNextUse(t *testing.T) {
	b := brokertest.Subprocess(t, "flaky", map[string]string{"log": "x"})
	first := pid(t, b)
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && alive(first); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // go-plugin notices the exit
	// No call was in flight: the next one restarts the plugin and succeeds.
	if _, err := b.Catalog(ctx(t)); err != nil {
		t.Fatalf("Catalog after the plugin died idle: %v", err)
	}
	if pid(t, b) == first {
		t.Error("plugin was not restarted")
	}
}

func TestHungCallTimesOut(t *testing.T) {
	b, _ := brokertest.SubprocessManager(t, "flaky", nil, brokertest.Options{CallTimeout: time.Second})
	start := time.Now()
	_, err := b.Provision(ctx(t), broker.ProvisionRequest{InstanceID: "i", Params: map[string]string{"do": "hang"}})
	if !errors.Is(err, plugins.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung call: err = %v, want ErrTimeout and DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "Provision") {
		t.Errorf("error %q does not name the call", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("hung call returned after %v, want about 1s", d)
	}
	// Other calls on the same plugin still work.
	if _, err := b.Catalog(ctx(t)); err != nil {
		t.Errorf("Catalog after a hung call: %v", err)
	}
}

func TestCallerDeadlineIsNotATimeoutOfTheBroker(t *testing.T) {
	b := brokertest.Subprocess(t, "flaky", nil)
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := b.Provision(c, broker.ProvisionRequest{InstanceID: "i", Params: map[string]string{"do": "block"}})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, plugins.ErrTimeout) {
		t.Fatalf("err = %v, want the caller's DeadlineExceeded only", err)
	}
}

func TestSentinelsThroughManager(t *testing.T) {
	b := brokertest.Subprocess(t, "flaky", nil)
	if _, err := b.Deprovision(ctx(t), broker.DeprovisionRequest{InstanceID: "x"}); !errors.Is(err, broker.ErrGone) {
		t.Fatalf("err = %v, want ErrGone", err)
	}
}

func TestUnknownPlugin(t *testing.T) {
	dir := t.TempDir()
	// Not executable.
	if err := os.WriteFile(filepath.Join(dir, "berth-broker-noexec"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := plugins.NewManager(plugins.ManagerConfig{PluginDir: dir})
	defer m.Close()
	for _, name := range []string{"nosuch", "noexec", "../../bin/sh", "", "MySQL"} {
		_, err := m.Broker(ctx(t), "svc", name, nil)
		if !errors.Is(err, plugins.ErrUnknownPlugin) {
			t.Errorf("Broker(%q): err = %v, want ErrUnknownPlugin", name, err)
		}
	}
	noDir := plugins.NewManager(plugins.ManagerConfig{})
	defer noDir.Close()
	if _, err := noDir.Broker(ctx(t), "svc", "nosuch", nil); !errors.Is(err, plugins.ErrUnknownPlugin) || !strings.Contains(err.Error(), "plugin_dir") {
		t.Errorf("without plugin_dir: err = %v", err)
	}
	if err := plugins.ServeBuiltin("nosuch"); !errors.Is(err, plugins.ErrUnknownPlugin) {
		t.Errorf("ServeBuiltin(nosuch): err = %v, want ErrUnknownPlugin", err)
	}
	for _, name := range plugins.Builtins {
		if err := m.Check(name); err != nil {
			t.Errorf("Check(%q): %v", name, err)
		}
	}
}

func TestBinaryThatIsNotAPlugin(t *testing.T) {
	dir := t.TempDir()
	for name, script := range map[string]string{
		"exits": "#!/bin/sh\necho not a plugin\nexit 1\n",
		"hangs": "#!/bin/sh\nexec sleep 60\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, "berth-broker-"+name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m := plugins.NewManager(plugins.ManagerConfig{PluginDir: dir, StartTimeout: 2 * time.Second})
	defer m.Close()
	for _, name := range []string{"exits", "hangs"} {
		start := time.Now()
		_, err := m.Broker(ctx(t), "svc-"+name, name, nil)
		if !errors.Is(err, broker.ErrUnavailable) {
			t.Errorf("Broker(%q): err = %v, want ErrUnavailable", name, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Broker(%q) took %v", name, d)
		}
	}
}

func TestConfigureErrorAndSettingsChange(t *testing.T) {
	_, m := brokertest.SubprocessManager(t, "flaky", nil, brokertest.Options{})
	_, err := m.Broker(ctx(t), "svc", "flaky", map[string]string{"fail": "yes"})
	if !errors.Is(err, broker.ErrBadRequest) {
		t.Fatalf("Configure failure: err = %v", err)
	}
	b, err := m.Broker(ctx(t), "svc", "flaky", map[string]string{"fail": "no"})
	if err != nil {
		t.Fatalf("Broker with good settings after bad ones: %v", err)
	}
	if _, err := b.Catalog(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestPluginLogsReachHostLogger(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(self, filepath.Join(dir, "berth-broker-flaky")); err != nil {
		t.Fatal(err)
	}
	m := plugins.NewManager(plugins.ManagerConfig{PluginDir: dir,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "berth", Output: lockedWriter{&mu, &buf}, Level: hclog.Info})})
	defer m.Close()
	if _, err := m.Broker(ctx(t), "svc1", "flaky", map[string]string{"log": "hello-from-plugin"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		out := buf.String()
		mu.Unlock()
		if strings.Contains(out, "marker=hello-from-plugin") && strings.Contains(out, "berth.plugin.svc1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin's log line did not reach the host logger as key/value:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A plugin built with the SDK speaks the current protocol.
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, fmt.Sprintf("protocol=%d", broker.ProtocolVersion)) || strings.Contains(out, "old protocol version") {
		t.Errorf("the SDK's plugin did not negotiate protocol %d:\n%s", broker.ProtocolVersion, out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestCloseKillsPlugins(t *testing.T) {
	b, m := brokertest.SubprocessManager(t, "flaky", nil, brokertest.Options{})
	p := pid(t, b)
	m.Close()
	for i := 0; i < 100 && alive(p); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(p) {
		t.Errorf("plugin %d still alive after Close", p)
	}
	if _, err := b.Catalog(ctx(t)); !errors.Is(err, plugins.ErrClosed) {
		t.Errorf("call after Close: err = %v, want ErrClosed", err)
	}
}

// TestRunByHand: a plugin binary started without the handshake cookie
// refuses to serve and says why.
func TestRunByHand(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "BERTH_BROKERTEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("plugin run by hand exited 0: %s", out)
	}
	if !strings.Contains(string(out), "plugin") {
		t.Errorf("plugin run by hand printed %q", out)
	}
}

func TestConcurrentUse(t *testing.T) {
	b := brokertest.Subprocess(t, "flaky", nil)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Catalog(ctx(t)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestServeBuiltin starts each built-in broker the way `berth plugin <name>`
// does (this test binary standing in for berth) through the default path of
// a Manager: Command for built-in names.
func TestServeBuiltin(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	m := plugins.NewManager(plugins.ManagerConfig{
		Command: func(name string) (*exec.Cmd, error) {
			cmd := exec.Command(self, "plugin", name)
			cmd.Env = append(os.Environ(), builtinEnv+"="+name)
			return cmd, nil
		},
		CallTimeout: 20 * time.Second,
	})
	defer m.Close()
	// Settings pointing at a closed port: Configure must fail with the
	// broker's own, clear error, proving which broker answered.
	for name, s := range map[string]map[string]string{
		"mysql":   {"host": "127.0.0.1", "port": "1", "user": "root"},
		"redis":   {"addr": "127.0.0.1:1"},
		"mongodb": {"uri": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500"},
	} {
		_, err := m.Broker(ctx(t), "svc-"+name, name, s)
		if !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), name+" server") {
			t.Errorf("built-in %s with an unreachable server: err = %v, want ErrUnavailable from the %s broker", name, err, name)
		}
	}
	// Settings are checked by the broker before it connects.
	b, err := m.Broker(ctx(t), "svc-bad", "redis", map[string]string{"nope": "x"})
	if !errors.Is(err, broker.ErrBadRequest) || b != nil {
		t.Errorf("unknown setting: err = %v, want ErrBadRequest", err)
	}
}

// TestWaitForStartHasDeadline: a call waiting behind a plugin that is slow
// to start gives up when its own context ends.
func TestWaitForStartHasDeadline(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "berth-broker-slow"), []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := plugins.NewManager(plugins.ManagerConfig{PluginDir: dir, StartTimeout: 3 * time.Second})
	defer m.Close()
	first := make(chan error, 1)
	go func() {
		_, err := m.Broker(context.Background(), "svc", "slow", nil)
		first <- err
	}()
	time.Sleep(200 * time.Millisecond) // the first call is starting the plugin
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := m.Broker(c, "svc", "slow", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second call: err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second call waited %v for a start it had no time for", d)
	}
	if err := <-first; !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("first call: err = %v, want ErrUnavailable (start timed out)", err)
	}
}

// TestKilledPluginLeavesNoSocket: a plugin killed with SIGKILL cannot
// remove its socket; the Manager keeps plugin sockets in a directory of
// its own and removes it at Close, so nothing is left in the system's
// temporary directory.
func TestKilledPluginLeavesNoSocket(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	b, m := brokertest.SubprocessManager(t, "flaky", nil, brokertest.Options{})
	first := pid(t, b)
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && alive(first); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	pid(t, b) // restarted
	m.Close()
	left, err := filepath.Glob(filepath.Join(tmp, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("left in the temporary directory after Close: %v", left)
	}
}
