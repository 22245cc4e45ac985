package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c := Default()
	if c.BindAddr != "127.0.0.1:8080" || c.DataDir != "data" || c.MaxBodyBytes != 1<<20 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.Consul != nil || c.Vault != nil || c.Nomad != nil {
		t.Fatal("defaults must select the embedded backends")
	}
	if *c.Users.DefaultQuota != 10 || c.Users.TokenTTLDur != 7*24*time.Hour {
		t.Fatalf("user defaults: %+v", c.Users)
	}
}

func TestCommittedConfigParses(t *testing.T) {
	c, err := Load(filepath.Join("..", "config.hcl"))
	if err != nil {
		t.Fatalf("committed config.hcl: %v", err)
	}
	if c.Consul != nil || c.Vault != nil || c.Nomad != nil {
		t.Fatal("committed config.hcl must run the embedded defaults")
	}
}

func TestUnknownKeyNamesKeyFileAndLine(t *testing.T) {
	_, err := Parse([]byte("bind_addr = \"127.0.0.1:1\"\n\nbogus_key = 3\n"), "my.hcl")
	if err == nil {
		t.Fatal("unknown key accepted")
	}
	msg := err.Error()
	for _, want := range []string{"my.hcl:3", "bogus_key"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
}

func TestUnknownKeyInBlock(t *testing.T) {
	_, err := Parse([]byte("consul {\n  adress = \"x\"\n}\n"), "c.hcl")
	if err == nil || !strings.Contains(err.Error(), "c.hcl:2") || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("got %v", err)
	}
}

func TestUnknownKeyInNomadBlock(t *testing.T) {
	_, err := Parse([]byte("nomad {\n  vault_policies = [\"p\"]\n  vault_policy = \"p\"\n}\n"), "n.hcl")
	if err == nil || !strings.Contains(err.Error(), "n.hcl:3") || !strings.Contains(err.Error(), "vault_policy") {
		t.Fatalf("got %v", err)
	}
}

func TestSyntaxError(t *testing.T) {
	_, err := Parse([]byte("bind_addr = \n"), "s.hcl")
	if err == nil || !strings.Contains(err.Error(), "s.hcl:") {
		t.Fatalf("got %v", err)
	}
}

func TestBadValues(t *testing.T) {
	for _, src := range []string{
		`bind_addr = "nohostport"`,
		`log_level = "loud"`,
		"users {\n token_ttl = \"forever\"\n}",
		`admins = ["notanemail"]`,
	} {
		if _, err := Parse([]byte(src), "v.hcl"); err == nil {
			t.Errorf("accepted %q", src)
		}
	}
}

func TestBackendsSelected(t *testing.T) {
	src := `
consul {
  address = "127.0.0.1:8500"
  prefix  = "berth/"
}
vault {
  address = "http://127.0.0.1:8200"
  token   = "t"
}
nomad {
  address = "http://127.0.0.1:4646"
  datacenters = ["dc1"]
  vault_policies = ["berth-apps-read", "extra"]
}
`
	c, err := Parse([]byte(src), "b.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Consul == nil || c.Consul.Prefix != "berth/" || c.Vault == nil || c.Nomad == nil || c.Nomad.Datacenters[0] != "dc1" ||
		len(c.Nomad.VaultPolicies) != 2 || c.Nomad.VaultPolicies[0] != "berth-apps-read" {
		t.Fatalf("%+v", c)
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.hcl")); err == nil || !os.IsNotExist(unwrap(err)) {
		t.Fatalf("got %v", err)
	}
}

func unwrap(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestLimitsHTTPMetrics(t *testing.T) {
	c := Default()
	if c.Users.MaxTokenTTLDur != 8760*time.Hour || c.Limits.LoginIPBurst != 20 || c.Limits.LoginAccountEveryDur != time.Minute ||
		c.HTTP.ReadTimeoutDur != 30*time.Second || c.HTTP.ReadHeaderTimeoutDur != 10*time.Second || c.Metrics.TokenRequired {
		t.Fatalf("defaults: users %+v limits %+v http %+v metrics %+v", c.Users, c.Limits, c.HTTP, c.Metrics)
	}
	c, err := Parse([]byte("limits {\n  login_ip_burst = 3\n  login_ip_every = \"1h\"\n}\nhttp {\n  read_timeout = \"2s\"\n}\nmetrics {\n  token_required = true\n}\n"), "x.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.LoginIPBurst != 3 || c.Limits.LoginIPEveryDur != time.Hour || c.Limits.ResetMailBurst != 3 || c.HTTP.ReadTimeoutDur != 2*time.Second || !c.Metrics.TokenRequired {
		t.Fatalf("parsed: limits %+v http %+v metrics %+v", c.Limits, c.HTTP, c.Metrics)
	}
	for _, bad := range []string{
		"users {\n  max_token_ttl = \"1h\"\n}\n", // shorter than token_ttl
		"limits {\n  login_ip_burst = -1\n}\n",
		"limits {\n  reset_mail_every = \"soon\"\n}\n",
		"http {\n  read_timeout = \"0s\"\n}\n",
		"limits {\n  nope = 1\n}\n",
	} {
		if _, err := Parse([]byte(bad), "x.hcl"); err == nil {
			t.Errorf("accepted: %s", bad)
		}
	}
}

func TestAudit(t *testing.T) {
	c := Default()
	if c.Audit.RetentionDur != 720*time.Hour || c.Audit.Queue != 4096 {
		t.Fatalf("defaults: audit %+v", c.Audit)
	}
	c, err := Parse([]byte("audit {\n  retention = \"48h\"\n  queue = 10\n}\n"), "x.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Audit.RetentionDur != 48*time.Hour || c.Audit.Queue != 10 {
		t.Fatalf("parsed: audit %+v", c.Audit)
	}
	c, err = Parse([]byte("audit {\n  queue = 7\n}\n"), "x.hcl")
	if err != nil || c.Audit.RetentionDur != 720*time.Hour || c.Audit.Queue != 7 {
		t.Fatalf("queue alone: audit %+v, %v", c.Audit, err)
	}
	for _, bad := range []string{
		"audit {\n  retention = \"0s\"\n}\n",
		"audit {\n  retention = \"a month\"\n}\n",
		"audit {\n  retention = \"10m\"\n}\n", // under an hour: the sweep could not keep up
		"audit {\n  queue = -1\n}\n",
		"audit {\n  keep = 1\n}\n",
	} {
		if _, err := Parse([]byte(bad), "x.hcl"); err == nil {
			t.Errorf("accepted: %s", bad)
		}
	}
}

func TestBrokerTargets(t *testing.T) {
	t.Setenv("BERTH_TEST_MYSQL_PW", "s3cret")
	src := `
broker_target "shared-mysql" {
  broker     = "mysql"
  settings   = { host = "127.0.0.1", port = 3306, user = "root" }
  secret_env = { password = "BERTH_TEST_MYSQL_PW" }
}
broker_target "cache" {
  broker   = "redis"
  settings = { addr = "127.0.0.1:6379" }
}
`
	c, err := Parse([]byte(src), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	m := c.Target("shared-mysql")
	if m == nil || m.Broker != "mysql" || m.Resolved["host"] != "127.0.0.1" || m.Resolved["port"] != "3306" || m.Resolved["password"] != "s3cret" {
		t.Fatalf("shared-mysql: %+v", m)
	}
	if m.Settings["password"] != "" {
		t.Error("the secret is kept among the file's settings")
	}
	if c.Target("cache") == nil || c.Target("nosuch") != nil {
		t.Error("Target lookup")
	}
	committed, err := Load(filepath.Join("..", "config.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"local-mysql", "local-redis", "local-mongodb"} {
		if committed.Target(name) == nil {
			t.Errorf("committed config.hcl has no broker_target %q (make run's tour needs it)", name)
		}
	}
}

func TestBrokerTargetErrors(t *testing.T) {
	os.Unsetenv("BERTH_TEST_UNSET_PW")
	for src, want := range map[string]string{
		"broker_target \"x\" {\n broker = \"mysql\"\n settings = { password = \"inline\" }\n}":                "secret_env",
		"broker_target \"x\" {\n broker = \"mysql\"\n secret_env = { password = \"BERTH_TEST_UNSET_PW\" }\n}": "BERTH_TEST_UNSET_PW",
		`broker_target "x" { settings = {} }`:                                                    "broker",
		`broker_target "Bad/Name" { broker = "mysql" }`:                                          "name",
		"broker_target \"x\" { broker = \"mysql\" }\nbroker_target \"x\" { broker = \"redis\" }": "twice",
		"broker_target \"x\" {\n broker = \"redis\"\n bogus = 1\n}":                              "bogus",
	} {
		_, err := Parse([]byte(src), "t.hcl")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to mention %q", src, err, want)
		}
	}
}

// secret_refs name paths in Berth's Secrets: nothing is read at load (the
// value is not in Resolved); SecretRef gives the path and key.
func TestBrokerTargetSecretRefs(t *testing.T) {
	c, err := Parse([]byte(`
broker_target "partner" {
  broker      = "osb"
  settings    = { url = "https://osb.example.com", username = "berth" }
  secret_refs = { password = "brokers/partner", client_secret = "brokers/shared#oauth" }
}
`), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Target("partner")
	if p == nil {
		t.Fatal("no target partner")
	}
	if _, ok := p.Resolved["password"]; ok {
		t.Errorf("Resolved has password (%d settings): a secret_refs value must be read at configure, not at load", len(p.Resolved))
	}
	if p.Resolved["url"] != "https://osb.example.com" || p.Resolved["username"] != "berth" {
		t.Errorf("Resolved: %v", p.Resolved)
	}
	for k, want := range map[string][2]string{"password": {"brokers/partner", "password"}, "client_secret": {"brokers/shared", "oauth"}} {
		path, key, ok := p.SecretRef(k)
		if !ok || path != want[0] || key != want[1] {
			t.Errorf("SecretRef(%q) = %q, %q, %v; want %q, %q", k, path, key, ok, want[0], want[1])
		}
	}
	if _, _, ok := p.SecretRef("url"); ok {
		t.Error("SecretRef(url): url is a plain setting")
	}
	t.Setenv("BERTH_TEST_PW2", "x")
	for src, want := range map[string]string{
		"broker_target \"x\" {\n broker = \"osb\"\n settings = { password = \"inline\" }\n}":                                                  "secret_refs",
		"broker_target \"x\" {\n broker = \"osb\"\n settings = { user = \"a\" }\n secret_refs = { user = \"p/q\" }\n}":                        "both in settings and secret_refs",
		"broker_target \"x\" {\n broker = \"osb\"\n secret_env = { password = \"BERTH_TEST_PW2\" }\n secret_refs = { password = \"p/q\" }\n}": "both in secret_env and secret_refs",
		"broker_target \"x\" {\n broker = \"osb\"\n secret_refs = { password = \"\" }\n}":                                                     "secret_refs.password",
		"broker_target \"x\" {\n broker = \"osb\"\n secret_refs = { password = \"/abs\" }\n}":                                                 "secret_refs.password",
		"broker_target \"x\" {\n broker = \"osb\"\n secret_refs = { password = \"a/../b\" }\n}":                                               "secret_refs.password",
		"broker_target \"x\" {\n broker = \"osb\"\n secret_refs = { password = \"a//b\" }\n}":                                                 "secret_refs.password",
		"broker_target \"x\" {\n broker = \"osb\"\n secret_refs = { password = \"a/b#\" }\n}":                                                 "secret_refs.password",
		"broker_target \"x\" {\n broker = \"osb\"\n secret_refs = { password = \"a/b#k#l\" }\n}":                                              "secret_refs.password",
	} {
		_, err := Parse([]byte(src), "t.hcl")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to mention %q", src, err, want)
		}
		if err != nil && !strings.Contains(err.Error(), `broker_target "x"`) {
			t.Errorf("%s: err = %v, want it to name the target", src, err)
		}
	}
}

func TestReconcilerDeployPolicy(t *testing.T) {
	c := Default()
	if c.Reconcile.ProgressDeadlineDur != 5*time.Minute || c.Reconcile.AutoRevert == nil || !*c.Reconcile.AutoRevert {
		t.Fatalf("defaults: progress_deadline %v auto_revert %v, want 5m and true", c.Reconcile.ProgressDeadlineDur, c.Reconcile.AutoRevert)
	}
	c, err := Parse([]byte("reconciler {\n  progress_deadline = \"90s\"\n  auto_revert = false\n}\n"), "r.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Reconcile.ProgressDeadlineDur != 90*time.Second || *c.Reconcile.AutoRevert {
		t.Fatalf("parsed: progress_deadline %v auto_revert %v", c.Reconcile.ProgressDeadlineDur, *c.Reconcile.AutoRevert)
	}
	for _, bad := range []string{"soon", "0s", "-1m", "500ms", "25h"} {
		if _, err := Parse([]byte("reconciler {\n  progress_deadline = \""+bad+"\"\n}\n"), "r.hcl"); err == nil || !strings.Contains(err.Error(), "progress_deadline") {
			t.Errorf("progress_deadline %q: err = %v, want an error naming the key", bad, err)
		}
	}
}

func TestLocalIsolationAndPluginChecksums(t *testing.T) {
	c, err := Parse([]byte("data_dir = \"/srv/berth\"\n"), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Local.Isolation != "auto" || c.Local.UIDRange != "200000-265535" || c.AppsDir() != "/srv/berth-apps" {
		t.Errorf("defaults: isolation %q uid_range %q apps dir %q", c.Local.Isolation, c.Local.UIDRange, c.AppsDir())
	}
	sum := strings.Repeat("ab", 32)
	c, err = Parse([]byte(`data_dir = "/srv/berth"
local {
  isolation = "namespace"
  uid_range = "300000-300100"
  apps_dir  = "/srv/apps"
}
plugins {
  checksums = { mybroker = "`+sum+`" }
}
`), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Local.Isolation != "namespace" || c.Local.UIDRange != "300000-300100" || c.AppsDir() != "/srv/apps" || c.Plugins.Checksums["mybroker"] != sum {
		t.Errorf("parsed: %+v %+v", c.Local, c.Plugins)
	}
	for src, want := range map[string]string{
		"local {\n  isolation = \"chroot\"\n}\n":                    "local.isolation",
		"local {\n  uid_range = \"5-10\"\n}\n":                      "local.uid_range",
		"local {\n  uid_range = \"300000\"\n}\n":                    "local.uid_range",
		"plugins {\n  checksums = { x = \"abc\" }\n}\n":             "plugins.checksums",
		"data_dir = \"/d\"\nlocal {\n  apps_dir = \"/d/apps\"\n}\n": "inside data_dir",
	} {
		if _, err := Parse([]byte(src), "t.hcl"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want one naming %s", src, err, want)
		}
	}
	// With isolation none an apps dir inside data_dir is allowed.
	if _, err := Parse([]byte("data_dir = \"/d\"\nlocal {\n  isolation = \"none\"\n  apps_dir = \"/d/apps\"\n}\n"), "t.hcl"); err != nil {
		t.Errorf("isolation none, apps dir inside data_dir: %v", err)
	}
}

func TestLocalLogRotation(t *testing.T) {
	c, err := Parse([]byte("data_dir = \"/srv/berth\"\n"), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Local.LogMaxSize != 10<<20 || c.Local.LogFiles != 3 {
		t.Errorf("defaults: log_max_bytes %d log_files %d, want 10MB and 3", c.Local.LogMaxSize, c.Local.LogFiles)
	}
	for src, want := range map[string]int64{
		"512K": 512 << 10, "512KB": 512 << 10, "2MiB": 2 << 20, "1g": 1 << 30, "4096": 4096, "64 mb": 64 << 20,
	} {
		c, err := Parse([]byte("local {\n  log_max_bytes = \""+src+"\"\n  log_files = 5\n}\n"), "t.hcl")
		if err != nil {
			t.Errorf("log_max_bytes %q: %v", src, err)
			continue
		}
		if c.Local.LogMaxSize != want || c.Local.LogFiles != 5 {
			t.Errorf("log_max_bytes %q: %d (files %d), want %d (5)", src, c.Local.LogMaxSize, c.Local.LogFiles, want)
		}
	}
	for _, src := range []string{
		"local {\n  log_max_bytes = \"ten megabytes\"\n}\n",
		"local {\n  log_max_bytes = \"100\"\n}\n",
		"local {\n  log_max_bytes = \"-5M\"\n}\n",
		"local {\n  log_max_bytes = \"99999999999G\"\n}\n",
	} {
		if _, err := Parse([]byte(src), "t.hcl"); err == nil || !strings.Contains(err.Error(), "local.log_max_bytes") {
			t.Errorf("%q: err = %v, want one naming local.log_max_bytes", src, err)
		}
	}
	if _, err := Parse([]byte("local {\n  log_files = -1\n}\n"), "t.hcl"); err == nil || !strings.Contains(err.Error(), "local.log_files") {
		t.Errorf("log_files -1: err = %v", err)
	}
}

// The router's address defaults only on the local scheduler: with Nomad
// the router runs where router_addr is set (servers may share a host).
func TestRouterAddrDefault(t *testing.T) {
	for src, want := range map[string]string{
		"":           "127.0.0.1:8081",
		"nomad {}\n": "",
		"nomad {}\nlocal {\n  router_addr = \"127.0.0.1:9001\"\n}\n": "127.0.0.1:9001",
	} {
		c, err := Parse([]byte(src), "r.hcl")
		if err != nil {
			t.Fatal(err)
		}
		if c.Local.RouterAddr != want {
			t.Errorf("config %q: router_addr %q, want %q", src, c.Local.RouterAddr, want)
		}
	}
}

// TestBackendCallTimeouts: consul and vault call_timeout and
// scheduler_stale_after are read (defaults: 10s, 10s, scheduler_timeout),
// and a bad value is refused naming the setting.
func TestBackendCallTimeouts(t *testing.T) {
	c, err := Parse([]byte("scheduler_timeout = \"3s\"\nconsul {\n}\nvault {\n}\n"), "d.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Consul.CallTimeoutDur != 10*time.Second || c.Vault.CallTimeoutDur != 10*time.Second || c.SchedulerStaleAfterDur != 3*time.Second {
		t.Errorf("defaults: consul %v, vault %v, scheduler_stale_after %v; want 10s, 10s, 3s (scheduler_timeout)",
			c.Consul.CallTimeoutDur, c.Vault.CallTimeoutDur, c.SchedulerStaleAfterDur)
	}
	c, err = Parse([]byte("scheduler_stale_after = \"30s\"\nconsul {\n  call_timeout = \"2s\"\n}\nvault {\n  call_timeout = \"1500ms\"\n}\n"), "s.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Consul.CallTimeoutDur != 2*time.Second || c.Vault.CallTimeoutDur != 1500*time.Millisecond || c.SchedulerStaleAfterDur != 30*time.Second {
		t.Errorf("set: consul %v, vault %v, scheduler_stale_after %v", c.Consul.CallTimeoutDur, c.Vault.CallTimeoutDur, c.SchedulerStaleAfterDur)
	}
	for src, want := range map[string]string{
		"consul {\n  call_timeout = \"soon\"\n}\n": `consul.call_timeout: "soon" is not a positive duration`,
		"consul {\n  call_timeout = \"0s\"\n}\n":   `consul.call_timeout: "0s" is not a positive duration`,
		"vault {\n  call_timeout = \"-1s\"\n}\n":   `vault.call_timeout: "-1s" is not a positive duration`,
		"vault {\n  call_timeout = \"1h\"\n}\n":    `vault.call_timeout: "1h" is longer than 10m0s`,
		"scheduler_stale_after = \"10\"\n":         `scheduler_stale_after: "10" is not a positive duration`,
	} {
		_, err := Parse([]byte(src), "bad.hcl")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "bad.hcl") {
			t.Errorf("%q: %v, want an error with %q and the file", src, err, want)
		}
	}
}
