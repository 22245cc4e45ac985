// Package plugins runs service brokers as go-plugin subprocesses.
//
// A Manager keeps one plugin process per key (one per service), starts it on
// first use, calls Configure with the service's settings, and restarts it on
// the next use after it died. Every call has a deadline: a hung broker gives
// an error wrapping ErrTimeout (and context.DeadlineExceeded); a crashed one
// fails the call in flight with broker.ErrUnavailable.
//
// Built-in brokers (mysql, redis, mongodb, osb) are served by the berth binary
// itself (`berth plugin <name>`, see ServeBuiltin); any other name is looked
// up as the executable <plugin_dir>/berth-broker-<name>.
package plugins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Errors returned by the Manager.
var (
	// ErrUnknownPlugin: the name is neither built in nor an executable
	// berth-broker-<name> in the plugin directory.
	ErrUnknownPlugin = errors.New("unknown broker plugin")
	// ErrTimeout: a broker did not answer within the call timeout.
	ErrTimeout = errors.New("broker call timed out")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("plugin manager closed")
	// ErrChecksumMismatch: a pinned plugin's executable does not have the
	// SHA-256 configured for it.
	ErrChecksumMismatch = errors.New("broker plugin checksum mismatch")
)

// Builtins lists the brokers served by the berth binary itself.
var Builtins = []string{"mongodb", "mysql", "osb", "redis"}

// DefaultCallTimeout bounds each broker call when ManagerConfig.CallTimeout
// is zero.
const DefaultCallTimeout = 30 * time.Second

// ExternalPrefix is the file name prefix of external broker executables.
const ExternalPrefix = "berth-broker-"

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// PluginDir holds external brokers (berth-broker-<name>); may be empty.
	PluginDir string
	// Logger receives the Manager's and the plugins' logs (plugins' under
	// "plugin.<key>"). Defaults to a null logger.
	Logger hclog.Logger
	// Command returns the command that serves a built-in broker. The default
	// re-executes this binary (os.Executable) as `berth plugin <name>`.
	Command func(name string) (*exec.Cmd, error)
	// CallTimeout bounds every broker call, including Configure.
	// Defaults to DefaultCallTimeout.
	CallTimeout time.Duration
	// StartTimeout bounds a plugin's start (handshake). Defaults to 20s.
	StartTimeout time.Duration
	// StateDir, if set, holds a pid file per running plugin process;
	// NewManager kills the processes a previous Manager on the same
	// StateDir left behind (a berth that was killed), checking each one's
	// start time so that a reused pid is never killed.
	StateDir string
	// Checksums pins external plugins: name -> hex SHA-256 of the
	// executable berth-broker-<name>. A pinned plugin whose file does not
	// match is refused on use (the error wraps ErrChecksumMismatch).
	Checksums map[string]string
}

// Manager runs broker plugin processes. It is safe for concurrent use.
type Manager struct {
	cfg ManagerConfig
	log hclog.Logger

	mu      sync.Mutex
	closed  bool
	entries map[string]*entry
	sockDir string // where plugin processes put their sockets; removed by Close
}

// entry is one plugin process, keyed by service.
type entry struct {
	mu       ctxMutex
	name     string // plugin name
	pidfile  string // "" if none was written
	client   *plugin.Client
	raw      broker.Broker
	settings map[string]string // last successfully configured settings
	broken   bool              // a call saw the process die: restart on next use
	removed  bool              // taken out of the Manager by Stop or Close: never start it again
}

// NewManager returns a Manager; it starts nothing until Broker is called.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 20 * time.Second
	}
	if cfg.Command == nil {
		cfg.Command = selfCommand
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, entries: map[string]*entry{}}
	m.reapLeftovers()
	return m
}

// selfCommand re-executes the running binary as `<self> plugin <name>`.
func selfCommand(name string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locating the berth binary: %w", err)
	}
	return exec.Command(self, "plugin", name), nil
}

// IsBuiltin reports whether name is a built-in broker.
func IsBuiltin(name string) bool {
	i := sort.SearchStrings(Builtins, name)
	return i < len(Builtins) && Builtins[i] == name
}

// command returns the command starting plugin name.
func (m *Manager) command(name string) (*exec.Cmd, error) {
	if !broker.ValidID(name) {
		return nil, fmt.Errorf("%w: invalid name %q", ErrUnknownPlugin, name)
	}
	if IsBuiltin(name) {
		return m.cfg.Command(name)
	}
	if m.cfg.PluginDir == "" {
		return nil, fmt.Errorf("%w: %q is not built in (built-ins: %s) and no plugin_dir is configured",
			ErrUnknownPlugin, name, strings.Join(Builtins, ", "))
	}
	path := filepath.Join(m.cfg.PluginDir, ExternalPrefix+name)
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("%w: %q is not built in (built-ins: %s) and %s is not an executable file",
			ErrUnknownPlugin, name, strings.Join(Builtins, ", "), path)
	}
	return exec.Command(path), nil
}

// Check reports whether pluginName names a broker this Manager can start
// (without starting it). The error wraps ErrUnknownPlugin.
func (m *Manager) Check(pluginName string) error {
	_, err := m.command(pluginName)
	return err
}

// Broker returns a client for the plugin process of key (one per service),
// starting pluginName if needed and configuring it with settings. The
// returned Broker stays usable: each call restarts the process if it died,
// and is bounded by the call timeout.
func (m *Manager) Broker(ctx context.Context, key, pluginName string, settings map[string]string) (broker.Broker, error) {
	if err := m.Check(pluginName); err != nil {
		return nil, err
	}
	b := &managed{m: m, key: key, name: pluginName, settings: copyMap(settings)}
	if _, err := m.ensure(ctx, b); err != nil {
		return nil, err
	}
	return b, nil
}

// Stop kills the plugin process of key, if any.
func (m *Manager) Stop(key string) {
	m.mu.Lock()
	e := m.entries[key]
	delete(m.entries, key)
	m.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		e.removed = true
		e.kill()
		e.mu.Unlock()
	}
}

// Close kills all plugin processes and returns once they (and the plugin
// clients' goroutines) are gone; a call waiting to start a process when
// Close began starts none. Later calls fail with ErrClosed.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	entries := m.entries
	m.entries = map[string]*entry{}
	m.mu.Unlock()
	for _, e := range entries {
		e.mu.Lock()
		e.removed = true
		e.kill()
		e.mu.Unlock()
	}
	m.mu.Lock()
	if m.sockDir != "" {
		_ = os.RemoveAll(m.sockDir)
		m.sockDir = ""
	}
	m.mu.Unlock()
}

// socketDir is the directory plugin processes create their sockets in:
// one per Manager, so that the sockets of a plugin that was killed (and
// could not remove its own) go with the Manager instead of piling up in
// the system's temporary directory.
func (m *Manager) socketDir() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sockDir == "" {
		dir, err := os.MkdirTemp("", "berth-plugins-")
		if err != nil {
			m.log.Warn("no directory for plugin sockets; they go to the system default", "error", err)
			return ""
		}
		m.sockDir = dir
	}
	return m.sockDir
}

func (e *entry) kill() {
	if e.client != nil {
		e.client.Kill()
	}
	if e.pidfile != "" {
		_ = os.Remove(e.pidfile)
	}
	e.client, e.raw, e.settings, e.broken, e.pidfile = nil, nil, nil, false, ""
}

// ensure returns the raw client of b's process, (re)starting and
// (re)configuring it as needed.
func (m *Manager) ensure(ctx context.Context, b *managed) (broker.Broker, error) {
	e, err := m.lockEntry(ctx, b)
	if err != nil {
		return nil, err
	}
	defer e.mu.Unlock()
	if e.client != nil && (e.broken || e.client.Exited() || e.name != b.name) {
		m.log.Warn("restarting broker plugin", "key", b.key, "plugin", e.name,
			"exited", e.client.Exited(), "broken", e.broken)
		e.kill()
	}
	if e.client == nil {
		if err := m.start(e, b.key, b.name); err != nil {
			return nil, err
		}
	}
	if e.settings == nil || !broker.EqualParams(e.settings, b.settings) {
		callerFirst := callerDeadlineFirst(ctx, m.cfg.CallTimeout)
		cctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
		err := e.raw.Configure(cctx, b.settings)
		cancel()
		if err != nil {
			err = m.callError(callerFirst, b, "Configure", err)
			if errors.Is(err, broker.ErrUnavailable) || errors.Is(err, ErrTimeout) {
				e.kill()
			}
			return nil, err
		}
		e.settings = copyMap(b.settings)
		if e.settings == nil {
			e.settings = map[string]string{}
		}
	}
	return e.raw, nil
}

// lockEntry returns b's entry, locked. An entry that Stop or Close took
// out of the Manager while this call waited for its lock is not used (a
// process started into it would outlive them): the lookup starts over.
func (m *Manager) lockEntry(ctx context.Context, b *managed) (*entry, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		e := m.entries[b.key]
		if e == nil {
			e = &entry{}
			m.entries[b.key] = e
		}
		m.mu.Unlock()

		if err := e.mu.LockContext(ctx); err != nil {
			return nil, fmt.Errorf("waiting for broker plugin %q (%s) to start: %w", b.key, b.name, err)
		}
		if !e.removed {
			return e, nil
		}
		e.mu.Unlock()
	}
}

// start launches plugin name for key into e.
func (m *Manager) start(e *entry, key, name string) error {
	cmd, err := m.command(name)
	if err != nil {
		return err
	}
	if dir := m.socketDir(); dir != "" {
		cmd.Env = append(cmd.Env, plugin.EnvUnixSocketDir+"="+dir)
	}
	// Its own process group, and death with berth (SIGKILL when the thread
	// that forked it, hence berth, ends).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	secure, err := m.secureConfig(name)
	if err != nil {
		return err
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		SecureConfig:     secure,
		HandshakeConfig:  broker.Handshake,
		VersionedPlugins: broker.VersionedPlugins,
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           m.log.Named("plugin." + key),
		StartTimeout:     m.cfg.StartTimeout,
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return fmt.Errorf("%w: %w: %s does not have the SHA-256 pinned for %q in plugins.checksums; refusing to run it",
				broker.ErrUnavailable, ErrChecksumMismatch, cmd.Path, name)
		}
		return fmt.Errorf("%w: starting broker plugin %q for %q: %v", broker.ErrUnavailable, name, key, err)
	}
	pidfile := m.writePidfile(key, cmd)
	raw, err := rpc.Dispense(broker.PluginName)
	if err != nil {
		client.Kill()
		_ = os.Remove(pidfile)
		return fmt.Errorf("%w: broker plugin %q for %q: %v", broker.ErrUnavailable, name, key, err)
	}
	b, ok := raw.(broker.Broker)
	if !ok {
		client.Kill()
		_ = os.Remove(pidfile)
		return fmt.Errorf("%w: plugin %q does not serve a broker", broker.ErrUnavailable, name)
	}
	if v := client.NegotiatedVersion(); v != broker.ProtocolVersion {
		m.log.Warn("broker plugin speaks an old protocol version; rebuild it against plugins/broker/proto/broker.proto",
			"key", key, "plugin", name, "protocol", v, "current", broker.ProtocolVersion)
	}
	m.log.Info("started broker plugin", "key", key, "plugin", name, "protocol", client.NegotiatedVersion())
	e.name, e.client, e.raw, e.settings, e.broken, e.pidfile = name, client, b, nil, false, pidfile
	return nil
}

// callError adds context to a failed call: timeouts wrap ErrTimeout and
// context.DeadlineExceeded.
func (m *Manager) callError(callerFirst bool, b *managed, verb string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) && !callerFirst {
		return fmt.Errorf("%w: %s on broker %q (%s) got no answer within %v: %w",
			ErrTimeout, verb, b.key, b.name, m.cfg.CallTimeout, err)
	}
	return err
}

// callerDeadlineFirst reports whether the caller's context expires no later
// than a call timeout starting now would: then a deadline error is the
// caller's, not the broker's fault. (The plugin may see the deadline a
// moment before the caller's context does, so ctx.Err() cannot tell.)
func callerDeadlineFirst(ctx context.Context, timeout time.Duration) bool {
	d, ok := ctx.Deadline()
	return ok && !d.After(time.Now().Add(timeout))
}

// markBroken flags b's process for restart after it was seen to die.
func (m *Manager) markBroken(b *managed, raw broker.Broker) {
	m.mu.Lock()
	e := m.entries[b.key]
	m.mu.Unlock()
	if e == nil {
		return
	}
	e.mu.Lock()
	if e.raw == raw {
		e.broken = true
	}
	e.mu.Unlock()
}

// ctxMutex is a mutex whose Lock can give up when a context ends.
type ctxMutex struct {
	once sync.Once
	ch   chan struct{}
}

func (m *ctxMutex) init() { m.once.Do(func() { m.ch = make(chan struct{}, 1) }) }

func (m *ctxMutex) Lock() {
	m.init()
	m.ch <- struct{}{}
}

func (m *ctxMutex) LockContext(ctx context.Context) error {
	m.init()
	select {
	case m.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *ctxMutex) Unlock() { <-m.ch }

func copyMap(in map[string]string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// managed is the Broker handed out by Manager.Broker.
type managed struct {
	m    *Manager
	key  string
	name string

	mu       sync.Mutex
	settings map[string]string
}

// view returns a copy of b safe to read without b.mu.
func (b *managed) view() *managed {
	b.mu.Lock()
	defer b.mu.Unlock()
	return &managed{m: b.m, key: b.key, name: b.name, settings: b.settings}
}

var _ broker.Broker = (*managed)(nil)

func (b *managed) do(ctx context.Context, verb string, call func(context.Context, broker.Broker) error) error {
	b = b.view()
	raw, err := b.m.ensure(ctx, b)
	if err != nil {
		return err
	}
	callerFirst := callerDeadlineFirst(ctx, b.m.cfg.CallTimeout)
	cctx, cancel := context.WithTimeout(ctx, b.m.cfg.CallTimeout)
	defer cancel()
	err = call(cctx, raw)
	if err == nil {
		return nil
	}
	if broker.IsTransport(err) {
		b.m.log.Warn("broker plugin call failed; it will be restarted on next use",
			"key", b.key, "plugin", b.name, "verb", verb, "error", err)
		b.m.markBroken(b, raw)
	}
	return b.m.callError(callerFirst, b, verb, err)
}

// Configure changes the settings this handle configures the process with.
func (b *managed) Configure(ctx context.Context, settings map[string]string) error {
	nb := &managed{m: b.m, key: b.key, name: b.name, settings: copyMap(settings)}
	if _, err := b.m.ensure(ctx, nb); err != nil {
		return err
	}
	b.mu.Lock()
	b.settings = nb.settings
	b.mu.Unlock()
	return nil
}

func (b *managed) Catalog(ctx context.Context) (out *broker.Catalog, err error) {
	err = b.do(ctx, "Catalog", func(ctx context.Context, r broker.Broker) (err error) {
		out, err = r.Catalog(ctx)
		return err
	})
	return out, err
}

func (b *managed) Provision(ctx context.Context, req broker.ProvisionRequest) (out *broker.ProvisionResponse, err error) {
	err = b.do(ctx, "Provision", func(ctx context.Context, r broker.Broker) (err error) {
		out, err = r.Provision(ctx, req)
		return err
	})
	return out, err
}

func (b *managed) Deprovision(ctx context.Context, req broker.DeprovisionRequest) (out *broker.DeprovisionResponse, err error) {
	err = b.do(ctx, "Deprovision", func(ctx context.Context, r broker.Broker) (err error) {
		out, err = r.Deprovision(ctx, req)
		return err
	})
	return out, err
}

func (b *managed) Bind(ctx context.Context, req broker.BindRequest) (out *broker.BindResponse, err error) {
	err = b.do(ctx, "Bind", func(ctx context.Context, r broker.Broker) (err error) {
		out, err = r.Bind(ctx, req)
		return err
	})
	return out, err
}

func (b *managed) Unbind(ctx context.Context, req broker.UnbindRequest) error {
	return b.do(ctx, "Unbind", func(ctx context.Context, r broker.Broker) error {
		return r.Unbind(ctx, req)
	})
}

func (b *managed) LastOperation(ctx context.Context, req broker.LastOperationRequest) (out *broker.LastOperationResponse, err error) {
	err = b.do(ctx, "LastOperation", func(ctx context.Context, r broker.Broker) (err error) {
		out, err = r.LastOperation(ctx, req)
		return err
	})
	return out, err
}
