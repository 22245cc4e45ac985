// Package config reads Berth's operator configuration (config.hcl).
//
// With no backend blocks (consul, vault, nomad) the server runs on its
// embedded defaults: a bbolt Store, a sealed (AES-GCM) Secrets file and the
// local process Scheduler, all under data_dir. Unknown keys are errors that
// name the key, the file and the line.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Config is the whole operator configuration.
type Config struct {
	DataDir      string   `hcl:"data_dir,optional"`
	BindAddr     string   `hcl:"bind_addr,optional"`
	LogLevel     string   `hcl:"log_level,optional"`
	LogJSON      bool     `hcl:"log_json,optional"`
	MaxBodyBytes int64    `hcl:"max_body_bytes,optional"`
	Admins       []string `hcl:"admins,optional"`
	Platforms    []string `hcl:"platforms,optional"`
	// ClusterID names the Berth cluster: every job Berth creates in Nomad
	// and every Consul service of its apps carries it, and Berth never
	// changes or stops a job of another cluster id. "" derives one once
	// and keeps it in the Store (cluster/id), so all servers on one Store
	// prefix share it.
	ClusterID string `hcl:"cluster_id,optional"`
	// SchedulerTimeout bounds every call to the scheduler (default 5s);
	// reads that need the scheduler answer from its last known state when
	// it does not answer in time.
	SchedulerTimeout string `hcl:"scheduler_timeout,optional"`
	// SchedulerStaleAfter is how long the scheduler's last known state
	// (Nomad's event-fed view) may go without news from it before reads
	// show it as stale (scheduler_stale, with its age); default
	// scheduler_timeout.
	SchedulerStaleAfter string `hcl:"scheduler_stale_after,optional"`

	SchedulerTimeoutDur    time.Duration
	SchedulerStaleAfterDur time.Duration

	Users     *Users     `hcl:"users,block"`
	Apps      *Apps      `hcl:"apps,block"`
	Local     *Local     `hcl:"local,block"`
	Consul    *Consul    `hcl:"consul,block"`
	Vault     *Vault     `hcl:"vault,block"`
	Nomad     *Nomad     `hcl:"nomad,block"`
	Mailer    *Mailer    `hcl:"mailer,block"`
	Notify    *Notify    `hcl:"notify,block"`
	Plugins   *Plugins   `hcl:"plugins,block"`
	Reconcile *Reconcile `hcl:"reconciler,block"`
	Limits    *Limits    `hcl:"limits,block"`
	HTTP      *HTTP      `hcl:"http,block"`
	Metrics   *Metrics   `hcl:"metrics,block"`
	Audit     *Audit     `hcl:"audit,block"`

	BrokerTargets []*BrokerTarget `hcl:"broker_target,block"`

	// OSB exposes Berth's services as an Open Service Broker API at /osb/
	// (off unless enabled).
	OSB *OSB `hcl:"osb,block"`

	// Source is the file the config was read from ("" for the embedded defaults).
	Source string
}

// Users configures accounts and tokens.
type Users struct {
	OpenRegistration *bool  `hcl:"open_registration,optional"`
	TokenTTL         string `hcl:"token_ttl,optional"`
	AppTokenTTL      string `hcl:"app_token_ttl,optional"`
	DefaultQuota     *int   `hcl:"default_quota,optional"`
	ResetTokenTTL    string `hcl:"reset_token_ttl,optional"`
	MaxTokenTTL      string `hcl:"max_token_ttl,optional"`

	TokenTTLDur      time.Duration
	AppTokenTTLDur   time.Duration
	ResetTokenTTLDur time.Duration
	MaxTokenTTLDur   time.Duration
}

// Limits configures the rate limits on the anonymous account endpoints
// (login, password reset, registration). Each limit is a token bucket: a
// burst, then one more every interval. Limits keyed by client are keyed by
// the connection's remote IP.
type Limits struct {
	// Failed logins per client IP and per account.
	LoginIPBurst      int    `hcl:"login_ip_burst,optional"`
	LoginIPEvery      string `hcl:"login_ip_every,optional"`
	LoginAccountBurst int    `hcl:"login_account_burst,optional"`
	LoginAccountEvery string `hcl:"login_account_every,optional"`
	// Password-reset requests per client IP; reset mails per account.
	ResetIPBurst   int    `hcl:"reset_ip_burst,optional"`
	ResetIPEvery   string `hcl:"reset_ip_every,optional"`
	ResetMailBurst int    `hcl:"reset_mail_burst,optional"`
	ResetMailEvery string `hcl:"reset_mail_every,optional"`
	// Anonymous registrations per client IP.
	RegisterIPBurst int    `hcl:"register_ip_burst,optional"`
	RegisterIPEvery string `hcl:"register_ip_every,optional"`
	// How many clients and accounts are tracked at most (memory bound).
	Tracked int `hcl:"tracked,optional"`

	LoginIPEveryDur, LoginAccountEveryDur, ResetIPEveryDur, ResetMailEveryDur, RegisterIPEveryDur time.Duration
}

// HTTP configures the API server's connection timeouts.
type HTTP struct {
	ReadHeaderTimeout string `hcl:"read_header_timeout,optional"`
	ReadTimeout       string `hcl:"read_timeout,optional"`
	IdleTimeout       string `hcl:"idle_timeout,optional"`

	ReadHeaderTimeoutDur, ReadTimeoutDur, IdleTimeoutDur time.Duration
}

// Metrics configures GET /metrics.
type Metrics struct {
	// TokenRequired: only a site admin's token may read /metrics.
	TokenRequired bool `hcl:"token_required,optional"`
}

// Audit configures the audit log (GET /api/v1/events/).
type Audit struct {
	// Retention is how long records are kept; older ones are deleted
	// (hourly, and at start).
	Retention string `hcl:"retention,optional"`
	// Queue is how many records may wait to be written; over it a record
	// is dropped and counted in berth_audit_dropped_total.
	Queue int `hcl:"queue,optional"`

	RetentionDur time.Duration
}

// Apps configures app naming and routing.
type Apps struct {
	Domain         string `hcl:"domain,optional"`
	GitURLTemplate string `hcl:"git_url_template,optional"`
}

// Local configures the embedded scheduler and its router.
type Local struct {
	RouterAddr  string `hcl:"router_addr,optional"`
	StopTimeout string `hcl:"stop_timeout,optional"`
	// Isolation of app procs: "auto" (default: uid when berth runs as
	// root, else namespace, else refuse), "uid", "namespace" or "none".
	Isolation string `hcl:"isolation,optional"`
	// UIDRange is the range app uids (and gids) come from in uid mode,
	// "LOW-HIGH" (default "200000-265535").
	UIDRange string `hcl:"uid_range,optional"`
	// AppsDir holds the apps' working directories; default
	// "<data_dir>-apps" (outside data_dir, which is kept 0700).
	AppsDir string `hcl:"apps_dir,optional"`
	// LogMaxBytes is the size at which an instance's stdout or stderr log
	// is rotated: a number of bytes with an optional suffix K, M or G
	// (powers of 1024; KB, MB, GB and KiB, MiB, GiB read the same), e.g.
	// "10MB" (the default). LogFiles is how many files of each stream are
	// kept, the current one included (default 3).
	LogMaxBytes string `hcl:"log_max_bytes,optional"`
	LogFiles    int    `hcl:"log_files,optional"`

	StopTimeoutDur time.Duration
	LogMaxSize     int64 // LogMaxBytes, parsed
}

// TLS is the client TLS configuration for a HashiCorp backend.
type TLS struct {
	CAFile             string `hcl:"ca_file,optional"`
	CertFile           string `hcl:"cert_file,optional"`
	KeyFile            string `hcl:"key_file,optional"`
	ServerName         string `hcl:"server_name,optional"`
	InsecureSkipVerify bool   `hcl:"insecure_skip_verify,optional"`
}

// Consul selects Consul KV as the Store.
type Consul struct {
	Address    string `hcl:"address,optional"`
	Token      string `hcl:"token,optional"`
	Prefix     string `hcl:"prefix,optional"`
	Datacenter string `hcl:"datacenter,optional"`
	TLS        *TLS   `hcl:"tls,block"`
	// ReadReplica serves Store reads from an in-memory replica of the
	// prefix fed by Consul blocking queries, each read still waiting for
	// the index of one shared request (reads stay linearizable across
	// servers). Unset means on.
	ReadReplica *bool `hcl:"read_replica,optional"`
	// ConsistentReads makes every Store read (and the replica's index
	// request) use Consul's consistent mode, a quorum check on every
	// request; by default reads use Consul's default mode (the leader
	// answers from its state; stale only in the moment a deposed leader
	// does not know it yet).
	ConsistentReads bool `hcl:"consistent_reads,optional"`
	// ChangeLog makes every write also log, in its transaction, which
	// keys it changed (one small entry per top-level directory), so the
	// read replica reads those keys alone instead of re-listing the
	// directory at each change. Unset means on.
	ChangeLog *bool `hcl:"change_log,optional"`
	// CallTimeout bounds each call to Consul (default 10s; a blocking
	// read: its wait time plus this). A Consul that does not answer in it
	// fails the request with 503 naming consul.
	CallTimeout string `hcl:"call_timeout,optional"`
	// ReadLeases makes the servers on the prefix members of one cluster
	// that announce each write to each other before it is sent, so that
	// each answers reads from its replica with no request to Consul, still
	// linearizable (backends/consul/lease.go). Needs read_replica and
	// change_log. Unset means on.
	ReadLeases *bool `hcl:"read_leases,optional"`
	// PeerAddr is where the server listens for the other members'
	// announcements (host:port; port 0 picks one). Default: bind_addr's
	// host with a port picked at start. Required for read leases when
	// bind_addr's host is 0.0.0.0 or ::.
	PeerAddr string `hcl:"peer_addr,optional"`

	CallTimeoutDur time.Duration
}

// ReadLeasesOn reports whether the servers answer reads from memory under read leases.
func (c *Consul) ReadLeasesOn() bool {
	return (c.ReadLeases == nil || *c.ReadLeases) && c.ReadReplicaOn() && c.ChangeLogOn()
}

// ReadReplicaOn reports whether reads come from the in-memory replica.
func (c *Consul) ReadReplicaOn() bool { return c.ReadReplica == nil || *c.ReadReplica }

// ChangeLogOn reports whether writes keep the change log the replica follows.
func (c *Consul) ChangeLogOn() bool { return c.ChangeLog == nil || *c.ChangeLog }

// Vault selects Vault KV v2 as Secrets.
type Vault struct {
	Address      string `hcl:"address,optional"`
	Token        string `hcl:"token,optional"`
	RoleID       string `hcl:"role_id,optional"`
	SecretID     string `hcl:"secret_id,optional"`
	AppRoleMount string `hcl:"approle_mount,optional"`
	Mount        string `hcl:"mount,optional"`
	Prefix       string `hcl:"prefix,optional"`
	Namespace    string `hcl:"namespace,optional"`
	TLS          *TLS   `hcl:"tls,block"`
	// CallTimeout bounds each call to Vault, its retries included
	// (default 10s). A Vault that does not answer in it fails the request
	// with 503 naming vault.
	CallTimeout string `hcl:"call_timeout,optional"`

	CallTimeoutDur time.Duration
}

// Nomad selects Nomad as the Scheduler.
type Nomad struct {
	Address          string   `hcl:"address,optional"`
	Token            string   `hcl:"token,optional"`
	Region           string   `hcl:"region,optional"`
	Namespace        string   `hcl:"namespace,optional"`
	Datacenters      []string `hcl:"datacenters,optional"`
	RawExec          bool     `hcl:"raw_exec,optional"`
	VaultRole        string   `hcl:"vault_role,optional"`
	VaultPolicies    []string `hcl:"vault_policies,optional"`
	ConsulTagsPrefix string   `hcl:"consul_tags_prefix,optional"`
}

// Mailer configures outgoing mail; without smtp_addr messages are written
// as files under <data_dir>/outbox.
type Mailer struct {
	SMTPAddr string `hcl:"smtp_addr,optional"`
	From     string `hcl:"from,optional"`
	Username string `hcl:"username,optional"`
	Password string `hcl:"password,optional"`
}

// Notify configures webhook delivery.
type Notify struct {
	Secret      string `hcl:"secret,optional"`
	MaxAttempts int    `hcl:"max_attempts,optional"`
	Backoff     string `hcl:"backoff,optional"`
	Timeout     string `hcl:"timeout,optional"`

	BackoffDur time.Duration
	TimeoutDur time.Duration
}

// Plugins configures service-broker plugins.
type Plugins struct {
	Dir         string `hcl:"dir,optional"`
	CallTimeout string `hcl:"call_timeout,optional"`
	// Checksums pins external plugins: plugin name -> hex SHA-256 of its
	// executable (berth-broker-<name>); a plugin whose file does not match
	// is refused.
	Checksums map[string]string `hcl:"checksums,optional"`

	CallTimeoutDur time.Duration
}

// BrokerTarget is a named backing server of a broker, with the admin
// connection settings the broker gets. Tenants' services name a target
// (`target: <name>` in the service YAML); only site admins may give
// settings themselves. Credentials never sit in the file: secret_env maps
// a setting to the environment variable holding it (read at load);
// secret_refs maps a setting to a path in Berth's Secrets (sealed or
// Vault), read each time the broker is configured, so a rotated secret
// takes effect at the broker's next configure or restart without a
// restart of Berth. The value is the secret's key named like the setting
// ("brokers/partner" for setting password reads key "password" of that
// secret), or the key after '#' ("brokers/partner#pw"). `berth admin
// put-secret` writes it. A missing secret or key fails the broker's
// configure (the API answers 503) naming the target and the setting.
type BrokerTarget struct {
	Name       string            `hcl:"name,label"`
	Broker     string            `hcl:"broker"`
	Settings   map[string]string `hcl:"settings,optional"`
	SecretEnv  map[string]string `hcl:"secret_env,optional"`
	SecretRefs map[string]string `hcl:"secret_refs,optional"`

	// Resolved is Settings plus the values of SecretEnv (read at load);
	// the SecretRefs are not in it (see SecretRef).
	Resolved map[string]string
}

// SecretRef returns the Secrets path and key that setting k of t is read
// from, and whether t has a secret_refs entry for k.
func (t *BrokerTarget) SecretRef(k string) (path, key string, ok bool) {
	ref, ok := t.SecretRefs[k]
	if !ok {
		return "", "", false
	}
	path, key, _ = strings.Cut(ref, "#")
	if key == "" {
		key = k
	}
	return path, key, true
}

// ValidSecretPath checks a path in Berth's Secrets given by an operator:
// '/'-separated segments, none empty, "." or "..", no control characters
// or '#'.
func ValidSecretPath(p string) error {
	if p == "" {
		return fmt.Errorf("the path is empty")
	}
	if len(p) > 512 {
		return fmt.Errorf("the path is longer than 512 bytes")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("path %q: empty, \".\" or \"..\" segment (no leading, trailing or double '/')", p)
		}
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '#' {
			return fmt.Errorf("path %q: control characters and '#' are not allowed", p)
		}
	}
	return nil
}

// OSB configures Berth's Open Service Broker API endpoint (/osb/v2/...):
// platforms (Cloud Foundry, a Kubernetes service catalog) provision and
// bind the services granted to Team with HTTP basic auth as Username and
// the password. The password is read from PasswordEnv (an environment
// variable, at load) or PasswordFile (at load), or from PasswordSecret (a
// path in Secrets whose "password" key holds it, at server start):
// exactly one of them.
type OSB struct {
	Enabled        bool   `hcl:"enabled,optional"`
	Username       string `hcl:"username,optional"`
	PasswordEnv    string `hcl:"password_env,optional"`
	PasswordFile   string `hcl:"password_file,optional"`
	PasswordSecret string `hcl:"password_secret,optional"`
	// Team owns the instances made through the endpoint; the catalog is
	// the services granted to it.
	Team string `hcl:"team,optional"`
	// Async (default true): provision and deprovision answer 202 and run
	// in the background (422 AsyncRequired without accepts_incomplete=true);
	// false: they complete within the request (201/200).
	Async *bool `hcl:"async,optional"`

	// Password is the password read from PasswordEnv or PasswordFile.
	Password string
}

// AsyncOn reports whether provision and deprovision are asynchronous.
func (o *OSB) AsyncOn() bool { return o.Async == nil || *o.Async }

func (c *Config) finishOSB() error {
	o := c.OSB
	if o == nil || !o.Enabled {
		return nil
	}
	if o.Username == "" || strings.ContainsRune(o.Username, ':') {
		return fmt.Errorf("osb: username is required (and may not contain ':')")
	}
	if o.Team == "" {
		return fmt.Errorf("osb: team is required: the Berth team that owns the instances made through the endpoint")
	}
	n := 0
	for _, v := range []string{o.PasswordEnv, o.PasswordFile, o.PasswordSecret} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("osb: give exactly one of password_env, password_file, password_secret")
	}
	switch {
	case o.PasswordEnv != "":
		v, ok := os.LookupEnv(o.PasswordEnv)
		if !ok || v == "" {
			return fmt.Errorf("osb: password_env: environment variable %s is not set", o.PasswordEnv)
		}
		o.Password = v
	case o.PasswordFile != "":
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return fmt.Errorf("osb: password_file: %w", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
		if o.Password == "" {
			return fmt.Errorf("osb: password_file %s is empty", o.PasswordFile)
		}
	}
	return nil
}

// Reconcile configures the reconciler.
type Reconcile struct {
	Interval string `hcl:"interval,optional"`
	LockTTL  string `hcl:"lock_ttl,optional"`
	// ProgressDeadline is how long a deploy may take to become healthy
	// before it is failed (default 5m); apps may set their own. On Nomad
	// it is the update block's progress_deadline, which every allocation
	// that becomes healthy moves on: Nomad fails (and with auto_revert
	// reverts) the deploy, and Berth's own deadline follows Nomad's.
	ProgressDeadline string `hcl:"progress_deadline,optional"`
	// AutoRevert reverts an app whose deploy failed to its last running
	// release (default true); apps may set their own.
	AutoRevert *bool `hcl:"auto_revert,optional"`
	// LeaderTTL is the TTL of the Consul session through which the
	// servers sharing a Consul Store elect the one that reconciles
	// (default 10s, Consul's least unless its session_ttl_min is lower).
	// A killed holder loses the lock within about the TTL: its heartbeat
	// stops, and a contender that sees no heartbeat for one TTL destroys
	// its session (then the lock delay applies). One that cannot renew
	// stops reconciling after the TTL. Not used with bolt.
	LeaderTTL string `hcl:"leader_ttl,optional"`
	// LeaderLockDelay is how long after a holder's session was invalidated
	// (not after a graceful stop) no server may take the lock (default 1s).
	LeaderLockDelay string `hcl:"leader_lock_delay,optional"`

	IntervalDur         time.Duration
	LockTTLDur          time.Duration
	ProgressDeadlineDur time.Duration
	LeaderTTLDur        time.Duration
	LeaderLockDelayDur  time.Duration
}

// Bounds of a progress deadline (global or per app).
const (
	MinProgressDeadline = time.Second
	MaxProgressDeadline = 24 * time.Hour
)

// Error is a configuration problem with its place in the file.
type Error struct {
	Diags hcl.Diagnostics
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, d := range e.Diags {
		if i > 0 {
			b.WriteString("; ")
		}
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d,%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		b.WriteString(d.Summary)
		if d.Detail != "" {
			b.WriteString(": ")
			b.WriteString(d.Detail)
		}
	}
	return b.String()
}

// Default returns the embedded defaults.
func Default() *Config {
	c := &Config{}
	if err := c.finish(); err != nil {
		panic(err) // the defaults are valid by construction
	}
	return c
}

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(src, path)
}

// Parse parses config text; filename is used in error messages.
func Parse(src []byte, filename string) (*Config, error) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, &Error{Diags: diags}
	}
	c := &Config{}
	if diags := gohcl.DecodeBody(f.Body, nil, c); diags.HasErrors() {
		return nil, &Error{Diags: diags}
	}
	c.Source = filename
	if err := c.finish(); err != nil {
		return nil, fmt.Errorf("%s: %w", filename, err)
	}
	return c, nil
}

func dur(name, s string, def time.Duration, out *time.Duration) error {
	if s == "" {
		*out = def
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("%s: %q is not a positive duration (e.g. \"30s\", \"12h\")", name, s)
	}
	*out = d
	return nil
}

// finish fills defaults and validates values.
// validClusterID tells whether id may be a cluster id (it goes into Nomad
// job meta and Consul tags).
func validClusterID(id string) bool {
	if id == "" || len(id) > 40 || id[0] == '-' {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// ValidClusterID tells whether id may be a cluster id.
func ValidClusterID(id string) bool { return validClusterID(id) }

func (c *Config) finish() error {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.BindAddr == "" {
		c.BindAddr = "127.0.0.1:8080"
	}
	if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
		return fmt.Errorf("bind_addr: %q is not host:port", c.BindAddr)
	}
	if c.ClusterID != "" && !validClusterID(c.ClusterID) {
		return fmt.Errorf("cluster_id: %q must be 1 to 40 lower-case letters, digits and dashes, starting with a letter or digit", c.ClusterID)
	}
	if err := dur("scheduler_timeout", c.SchedulerTimeout, 5*time.Second, &c.SchedulerTimeoutDur); err != nil {
		return err
	}
	if c.SchedulerTimeoutDur <= 0 {
		return fmt.Errorf("scheduler_timeout: must be positive")
	}
	if err := dur("scheduler_stale_after", c.SchedulerStaleAfter, c.SchedulerTimeoutDur, &c.SchedulerStaleAfterDur); err != nil {
		return err
	}
	if err := c.finishCallTimeouts(); err != nil {
		return err
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	switch strings.ToLower(c.LogLevel) {
	case "trace", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q is not one of trace, debug, info, warn, error", c.LogLevel)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("max_body_bytes: must be positive")
	}
	if len(c.Platforms) == 0 {
		c.Platforms = []string{"go", "python", "nodejs", "static", "docker"}
	}
	if c.Users == nil {
		c.Users = &Users{}
	}
	u := c.Users
	if u.OpenRegistration == nil {
		t := true
		u.OpenRegistration = &t
	}
	if u.DefaultQuota == nil {
		q := 10
		u.DefaultQuota = &q
	}
	if *u.DefaultQuota < 0 {
		return fmt.Errorf("users.default_quota: must be 0 or more")
	}
	if err := dur("users.token_ttl", u.TokenTTL, 7*24*time.Hour, &u.TokenTTLDur); err != nil {
		return err
	}
	if err := dur("users.app_token_ttl", u.AppTokenTTL, 30*24*time.Hour, &u.AppTokenTTLDur); err != nil {
		return err
	}
	if err := dur("users.reset_token_ttl", u.ResetTokenTTL, time.Hour, &u.ResetTokenTTLDur); err != nil {
		return err
	}
	if err := dur("users.max_token_ttl", u.MaxTokenTTL, 8760*time.Hour, &u.MaxTokenTTLDur); err != nil {
		return err
	}
	if u.TokenTTLDur > u.MaxTokenTTLDur || u.AppTokenTTLDur > u.MaxTokenTTLDur {
		return fmt.Errorf("users.token_ttl and users.app_token_ttl must not be longer than users.max_token_ttl (%s)", u.MaxTokenTTLDur)
	}
	if err := c.finishLimits(); err != nil {
		return err
	}
	if c.Apps == nil {
		c.Apps = &Apps{}
	}
	if c.Apps.Domain == "" {
		c.Apps.Domain = "apps.localhost"
	}
	if c.Apps.GitURLTemplate == "" {
		c.Apps.GitURLTemplate = "git@git.berth.local:{app}.git"
	}
	if c.Local == nil {
		c.Local = &Local{}
	}
	if c.Local.RouterAddr == "" && c.Nomad == nil {
		// With Nomad the router runs only where router_addr is set:
		// several servers may share a host.
		c.Local.RouterAddr = "127.0.0.1:8081"
	}
	if err := dur("local.stop_timeout", c.Local.StopTimeout, 10*time.Second, &c.Local.StopTimeoutDur); err != nil {
		return err
	}
	if c.Local.Isolation == "" {
		c.Local.Isolation = "auto"
	}
	switch c.Local.Isolation {
	case "auto", "uid", "namespace", "none":
	default:
		return fmt.Errorf("local.isolation: %q is not one of auto, uid, namespace, none", c.Local.Isolation)
	}
	if c.Local.UIDRange == "" {
		c.Local.UIDRange = "200000-265535"
	}
	if c.Local.LogMaxBytes == "" {
		c.Local.LogMaxBytes = "10MB"
	}
	if n, ok := parseSize(c.Local.LogMaxBytes); !ok || n < 1024 {
		return fmt.Errorf("local.log_max_bytes: %q is not a size of at least 1K (e.g. \"10MB\")", c.Local.LogMaxBytes)
	} else {
		c.Local.LogMaxSize = n
	}
	if c.Local.LogFiles == 0 {
		c.Local.LogFiles = 3
	}
	if c.Local.LogFiles < 1 || c.Local.LogFiles > 100 {
		return fmt.Errorf("local.log_files: %d is not between 1 and 100", c.Local.LogFiles)
	}
	if lo, hi, ok := parseRange(c.Local.UIDRange); !ok || lo < 1000 || hi < lo || hi >= 1<<31-1 {
		return fmt.Errorf("local.uid_range: %q is not LOW-HIGH with 1000 <= LOW <= HIGH (e.g. \"200000-265535\")", c.Local.UIDRange)
	}
	if c.Notify == nil {
		c.Notify = &Notify{}
	}
	if c.Notify.MaxAttempts == 0 {
		c.Notify.MaxAttempts = 5
	}
	if c.Notify.MaxAttempts < 0 {
		return fmt.Errorf("notify.max_attempts: must be positive")
	}
	if err := dur("notify.backoff", c.Notify.Backoff, time.Second, &c.Notify.BackoffDur); err != nil {
		return err
	}
	if err := dur("notify.timeout", c.Notify.Timeout, 10*time.Second, &c.Notify.TimeoutDur); err != nil {
		return err
	}
	if c.Plugins == nil {
		c.Plugins = &Plugins{}
	}
	if err := dur("plugins.call_timeout", c.Plugins.CallTimeout, 30*time.Second, &c.Plugins.CallTimeoutDur); err != nil {
		return err
	}
	for name, sum := range c.Plugins.Checksums {
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("plugins.checksums: %q: %q is not a hex SHA-256 (64 hex digits)", name, sum)
		}
	}
	if c.Reconcile == nil {
		c.Reconcile = &Reconcile{}
	}
	if err := dur("reconciler.interval", c.Reconcile.Interval, 30*time.Second, &c.Reconcile.IntervalDur); err != nil {
		return err
	}
	if err := dur("reconciler.lock_ttl", c.Reconcile.LockTTL, 2*time.Minute, &c.Reconcile.LockTTLDur); err != nil {
		return err
	}
	if err := dur("reconciler.leader_ttl", c.Reconcile.LeaderTTL, 10*time.Second, &c.Reconcile.LeaderTTLDur); err != nil {
		return err
	}
	if d := c.Reconcile.LeaderTTLDur; d < time.Second || d > 24*time.Hour {
		return fmt.Errorf("reconciler.leader_ttl = %q: must be between 1s and 24h (Consul takes from its session_ttl_min, 10s by default)", c.Reconcile.LeaderTTL)
	}
	if err := dur("reconciler.leader_lock_delay", c.Reconcile.LeaderLockDelay, time.Second, &c.Reconcile.LeaderLockDelayDur); err != nil {
		return err
	}
	if err := dur("reconciler.progress_deadline", c.Reconcile.ProgressDeadline, 5*time.Minute, &c.Reconcile.ProgressDeadlineDur); err != nil {
		return err
	}
	if d := c.Reconcile.ProgressDeadlineDur; d < MinProgressDeadline || d > MaxProgressDeadline {
		return fmt.Errorf("reconciler.progress_deadline = %q: must be between %v and %v", c.Reconcile.ProgressDeadline, MinProgressDeadline, MaxProgressDeadline)
	}
	if c.Reconcile.AutoRevert == nil {
		on := true
		c.Reconcile.AutoRevert = &on
	}
	if c.Mailer == nil {
		c.Mailer = &Mailer{}
	}
	if c.Mailer.From == "" {
		c.Mailer.From = "berth@localhost"
	}
	for _, a := range c.Admins {
		if !strings.Contains(a, "@") {
			return fmt.Errorf("admins: %q is not an email address", a)
		}
	}
	if err := c.finishTargets(); err != nil {
		return err
	}
	if err := c.finishOSB(); err != nil {
		return err
	}
	c.DataDir = filepath.Clean(c.DataDir)
	return c.CheckAppsDir()
}

// DefaultCallTimeout is the default of consul.call_timeout and
// vault.call_timeout (backends.DefaultCallTimeout).
const DefaultCallTimeout = 10 * time.Second

// MaxCallTimeout is the longest consul.call_timeout and vault.call_timeout
// accepted: a request waits that long for a backend that does not answer.
const MaxCallTimeout = 10 * time.Minute

// finishCallTimeouts reads the call deadlines of the consul and vault
// blocks.
func (c *Config) finishCallTimeouts() error {
	check := func(name, s string, out *time.Duration) error {
		if err := dur(name, s, DefaultCallTimeout, out); err != nil {
			return err
		}
		if *out > MaxCallTimeout {
			return fmt.Errorf("%s: %q is longer than %v (a request waits that long for a backend that does not answer)", name, s, MaxCallTimeout)
		}
		return nil
	}
	if c.Consul != nil {
		if err := check("consul.call_timeout", c.Consul.CallTimeout, &c.Consul.CallTimeoutDur); err != nil {
			return err
		}
	}
	if c.Vault != nil {
		if err := check("vault.call_timeout", c.Vault.CallTimeout, &c.Vault.CallTimeoutDur); err != nil {
			return err
		}
	}
	return nil
}

// AppsDir is local.apps_dir, or "<data_dir>-apps" when it is not set.
func (c *Config) AppsDir() string {
	if c.Local != nil && c.Local.AppsDir != "" {
		return filepath.Clean(c.Local.AppsDir)
	}
	return filepath.Clean(c.DataDir) + "-apps"
}

// CheckAppsDir refuses an apps dir inside data_dir (app users must not be
// able to reach data_dir) unless procs are not isolated.
func (c *Config) CheckAppsDir() error {
	if c.Local != nil && c.Local.Isolation == "none" {
		return nil
	}
	dd, err1 := filepath.Abs(c.DataDir)
	ad, err2 := filepath.Abs(c.AppsDir())
	if err1 != nil || err2 != nil {
		return nil
	}
	if rel, err := filepath.Rel(dd, ad); err == nil && (rel == "." || !strings.HasPrefix(rel, "..")) {
		return fmt.Errorf("local.apps_dir: %q is inside data_dir %q, which app users must not reach; put it elsewhere", ad, dd)
	}
	return nil
}

func (c *Config) finishLimits() error {
	if c.Limits == nil {
		c.Limits = &Limits{}
	}
	l := c.Limits
	burst := func(name string, v *int, def int) error {
		if *v == 0 {
			*v = def
		}
		if *v < 0 {
			return fmt.Errorf("limits.%s: must be positive", name)
		}
		return nil
	}
	for _, b := range []struct {
		name string
		v    *int
		def  int
	}{
		{"login_ip_burst", &l.LoginIPBurst, 20},
		{"login_account_burst", &l.LoginAccountBurst, 10},
		{"reset_ip_burst", &l.ResetIPBurst, 10},
		{"reset_mail_burst", &l.ResetMailBurst, 3},
		{"register_ip_burst", &l.RegisterIPBurst, 20},
		{"tracked", &l.Tracked, 10000},
	} {
		if err := burst(b.name, b.v, b.def); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		name string
		v    string
		def  time.Duration
		out  *time.Duration
	}{
		{"limits.login_ip_every", l.LoginIPEvery, 3 * time.Second, &l.LoginIPEveryDur},
		{"limits.login_account_every", l.LoginAccountEvery, time.Minute, &l.LoginAccountEveryDur},
		{"limits.reset_ip_every", l.ResetIPEvery, 30 * time.Second, &l.ResetIPEveryDur},
		{"limits.reset_mail_every", l.ResetMailEvery, 20 * time.Minute, &l.ResetMailEveryDur},
		{"limits.register_ip_every", l.RegisterIPEvery, 30 * time.Second, &l.RegisterIPEveryDur},
	} {
		if err := dur(d.name, d.v, d.def, d.out); err != nil {
			return err
		}
	}
	if c.HTTP == nil {
		c.HTTP = &HTTP{}
	}
	h := c.HTTP
	if err := dur("http.read_header_timeout", h.ReadHeaderTimeout, 10*time.Second, &h.ReadHeaderTimeoutDur); err != nil {
		return err
	}
	if err := dur("http.read_timeout", h.ReadTimeout, 30*time.Second, &h.ReadTimeoutDur); err != nil {
		return err
	}
	if err := dur("http.idle_timeout", h.IdleTimeout, 2*time.Minute, &h.IdleTimeoutDur); err != nil {
		return err
	}
	if c.Metrics == nil {
		c.Metrics = &Metrics{}
	}
	if c.Audit == nil {
		c.Audit = &Audit{}
	}
	a := c.Audit
	if err := dur("audit.retention", a.Retention, 720*time.Hour, &a.RetentionDur); err != nil {
		return err
	}
	if a.RetentionDur < time.Hour {
		return fmt.Errorf("audit.retention: must be at least 1h")
	}
	if a.Queue == 0 {
		a.Queue = 4096
	}
	if a.Queue < 0 {
		return fmt.Errorf("audit.queue: must be positive")
	}
	return nil
}

// secretKey reports whether a setting name looks like a credential, which
// belongs in secret_env rather than in the file.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"password", "secret", "token"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

func validTargetName(n string) bool {
	if n == "" || len(n) > 63 || n[0] == '-' {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (c *Config) finishTargets() error {
	seen := map[string]bool{}
	for _, t := range c.BrokerTargets {
		where := fmt.Sprintf("broker_target %q", t.Name)
		if !validTargetName(t.Name) {
			return fmt.Errorf("%s: the name must be 1-63 of [a-z0-9_-]", where)
		}
		if seen[t.Name] {
			return fmt.Errorf("%s: defined twice", where)
		}
		seen[t.Name] = true
		if t.Broker == "" {
			return fmt.Errorf("%s: broker is required", where)
		}
		t.Resolved = map[string]string{}
		for k, v := range t.Settings {
			if secretKey(k) {
				return fmt.Errorf("%s: settings.%s looks like a credential: give it with secret_refs = { %s = \"<path in Berth's Secrets>\" } or secret_env = { %s = \"ENV_VAR\" }", where, k, k, k)
			}
			t.Resolved[k] = v
		}
		for k, env := range t.SecretEnv {
			if _, dup := t.Settings[k]; dup {
				return fmt.Errorf("%s: %s is both in settings and secret_env", where, k)
			}
			v, ok := os.LookupEnv(env)
			if !ok {
				return fmt.Errorf("%s: secret_env.%s: environment variable %s is not set", where, k, env)
			}
			t.Resolved[k] = v
		}
		for k, ref := range t.SecretRefs {
			if _, dup := t.Settings[k]; dup {
				return fmt.Errorf("%s: %s is both in settings and secret_refs", where, k)
			}
			if _, dup := t.SecretEnv[k]; dup {
				return fmt.Errorf("%s: %s is both in secret_env and secret_refs", where, k)
			}
			if k == "" {
				return fmt.Errorf("%s: secret_refs: empty setting name", where)
			}
			path, key, _ := t.SecretRef(k)
			if err := ValidSecretPath(path); err != nil {
				return fmt.Errorf("%s: secret_refs.%s: %v", where, k, err)
			}
			if strings.HasSuffix(ref, "#") || strings.ContainsAny(key, "#/") {
				return fmt.Errorf("%s: secret_refs.%s: %q: give \"<path>\" or \"<path>#<key>\"", where, k, ref)
			}
		}
	}
	return nil
}

// Target returns the broker target called name, or nil.
func (c *Config) Target(name string) *BrokerTarget {
	for _, t := range c.BrokerTargets {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// parseRange parses "LOW-HIGH".
// parseSize reads a size: digits with an optional suffix K, M or G (KB,
// MB, GB, KiB, MiB, GiB alike: powers of 1024) or B, case-insensitive.
func parseSize(s string) (int64, bool) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			shift = 10
		case 'M':
			shift = 20
		case 'G':
			shift = 30
		}
		if shift > 0 {
			t = strings.TrimSpace(t[:len(t)-1])
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, false
	}
	return n << shift, true
}

func parseRange(s string) (lo, hi int, ok bool) {
	a, b, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		return 0, 0, false
	}
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	return lo, hi, err1 == nil && err2 == nil
}

// IsAdmin reports whether email is a configured admin.
func (c *Config) IsAdmin(email string) bool {
	for _, a := range c.Admins {
		if strings.EqualFold(a, email) {
			return true
		}
	}
	return false
}
