package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/consul"
	"github.com/berthpaas/berth/backends/local"
	"github.com/berthpaas/berth/backends/nomad"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/backends/vault"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
)

// stack is the set of backends built from config.
type stack struct {
	store       backends.Store
	storeName   string
	secrets     backends.Secrets
	secretsName string
	sched       backends.Scheduler
	schedName   string
	closers     []func() error
}

func (s *stack) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		_ = s.closers[i]()
	}
}

func tlsOf(t *config.TLS) consul.TLSConfig {
	if t == nil {
		return consul.TLSConfig{}
	}
	return consul.TLSConfig{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
}

// peerListen is the address of the read leases' peer listener: peer_addr,
// else bind_addr's host with a port picked at start.
func peerListen(peerAddr, bindAddr string) (string, error) {
	if peerAddr != "" {
		return peerAddr, nil
	}
	host, _, err := net.SplitHostPort(bindAddr)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", fmt.Errorf("bind_addr %q has no host the other servers can dial: set consul { peer_addr }", bindAddr)
	}
	return net.JoinHostPort(host, "0"), nil
}

// openStore opens the Store the config selects.
func openStore(cfg *config.Config, log hclog.Logger) (backends.Store, string, error) {
	if c := cfg.Consul; c != nil {
		st, err := consul.New(consul.Config{Address: c.Address, Token: c.Token, Prefix: c.Prefix, Datacenter: c.Datacenter, TLS: tlsOf(c.TLS),
			CallTimeout: c.CallTimeoutDur, ConsistentReads: c.ConsistentReads, ChangeLog: c.ChangeLogOn()}, log)
		if err != nil || !c.ReadReplicaOn() {
			return st, "consul", err
		}
		r := consul.NewReplica(st)
		if c.ReadLeasesOn() {
			listen, err := peerListen(c.PeerAddr, cfg.BindAddr)
			if err != nil {
				log.Warn("read leases off: reads check Consul's index each time", "why", err)
			} else if err := r.Join(consul.LeaseOptions{Listen: listen}); err != nil {
				_ = r.Close()
				return nil, "", err
			}
		}
		return r, "consul", nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, "", err
	}
	path := filepath.Join(cfg.DataDir, "berth.db")
	st, err := bolt.Open(path, bolt.Options{Logger: log.Named("bolt"), Timeout: 3 * time.Second})
	if err != nil {
		return nil, "", fmt.Errorf("opening the store %s (is another berth using this data_dir?): %w", path, err)
	}
	return st, "bolt", nil
}

// openSecrets opens the Secrets the config selects.
func openSecrets(cfg *config.Config, log hclog.Logger) (backends.Secrets, string, error) {
	if v := cfg.Vault; v != nil {
		var tls vault.TLSConfig
		if v.TLS != nil {
			tls = vault.TLSConfig{CAFile: v.TLS.CAFile, CertFile: v.TLS.CertFile, KeyFile: v.TLS.KeyFile, ServerName: v.TLS.ServerName, InsecureSkipVerify: v.TLS.InsecureSkipVerify}
		}
		sec, err := vault.New(vault.Config{
			Address: v.Address, Token: v.Token, RoleID: v.RoleID, SecretID: v.SecretID, AppRoleMount: v.AppRoleMount,
			Mount: v.Mount, Prefix: v.Prefix, Namespace: v.Namespace, TLS: tls, CallTimeout: v.CallTimeoutDur,
		}, log)
		return sec, "vault", err
	}
	dir := filepath.Join(cfg.DataDir, "secrets")
	sec, err := sealed.Open(dir, sealed.Options{Logger: log.Named("sealed"), Timeout: 3 * time.Second})
	if err != nil {
		return nil, "", fmt.Errorf("opening the sealed secrets in %s: %w", dir, err)
	}
	return sec, "sealed", nil
}

// openScheduler opens the Scheduler the config selects.
func openScheduler(cfg *config.Config, store backends.Store, log hclog.Logger) (backends.Scheduler, string, error) {
	if n := cfg.Nomad; n != nil {
		cluster, err := clusterID(cfg, store, log)
		if err != nil {
			return nil, "", err
		}
		log.Info("berth cluster", "cluster_id", cluster)
		sch, err := nomad.New(nomad.Config{
			Address: n.Address, Token: n.Token, Region: n.Region, Namespace: n.Namespace, Datacenters: n.Datacenters,
			RawExec: n.RawExec, VaultRole: n.VaultRole, VaultPolicies: n.VaultPolicies, ConsulTagsPrefix: n.ConsulTagsPrefix,
			ClusterID: cluster, CallTimeout: cfg.SchedulerTimeoutDur, StaleAfter: cfg.SchedulerStaleAfterDur,
			Logger: log.Named("nomad"),
		})
		return sch, "nomad", err
	}
	if err := cfg.CheckAppsDir(); err != nil {
		return nil, "", err
	}
	var hideFiles []string
	if cfg.Source != "" {
		hideFiles = append(hideFiles, cfg.Source) // it may hold tokens
	}
	sch, err := local.New(local.Config{
		DataDir: filepath.Join(cfg.DataDir, "local"), RouterAddr: cfg.Local.RouterAddr, AppsDomain: cfg.Apps.Domain,
		StopTimeout: cfg.Local.StopTimeoutDur, Logger: log.Named("local"),
		Isolation: cfg.Local.Isolation, UIDRange: cfg.Local.UIDRange, AppsDir: appsDir(cfg, log),
		HideDirs: []string{cfg.DataDir}, HideFiles: hideFiles,
		LogMaxBytes: cfg.Local.LogMaxSize, LogFiles: cfg.Local.LogFiles,
	})
	return sch, "local", err
}

// openStack opens every backend, closing what was opened on failure.
func openStack(cfg *config.Config, log hclog.Logger, withScheduler bool) (*stack, error) {
	s := &stack{}
	var err error
	if s.store, s.storeName, err = openStore(cfg, log); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.store.Close)
	if s.secrets, s.secretsName, err = openSecrets(cfg, log); err != nil {
		s.close()
		return nil, err
	}
	s.closers = append(s.closers, s.secrets.Close)
	if withScheduler {
		if s.sched, s.schedName, err = openScheduler(cfg, s.store, log); err != nil {
			s.close()
			return nil, fmt.Errorf("starting the %s scheduler: %w", map[bool]string{true: "nomad", false: "local"}[cfg.Nomad != nil], err)
		}
		s.closers = append(s.closers, s.sched.Close)
		if s.schedName == "nomad" && cfg.Local.RouterAddr != "" {
			cluster, err := clusterID(cfg, s.store, log)
			if err == nil {
				var stop func() error
				if stop, err = openNomadRouter(cfg, cluster, log); err == nil {
					s.closers = append(s.closers, stop)
				}
			}
			if err != nil {
				s.close()
				return nil, err
			}
		}
	}
	return s, nil
}

// appsDir is where the local scheduler keeps the apps' working directories:
// local.apps_dir when set, else "<data_dir>-apps". When that default cannot be
// traversed by the apps' uids (a checkout under a 0700 directory, as
// mktemp -d makes) and Berth runs as root with per-app uids, the directories
// go under /var/lib/berth instead (root-owned, 0711), one per data_dir, so
// `make run` works wherever the tree was cloned.
func appsDir(cfg *config.Config, log hclog.Logger) string {
	def := cfg.AppsDir()
	if cfg.Local.AppsDir != "" || os.Geteuid() != 0 || cfg.Local.Isolation == "none" || cfg.Local.Isolation == "namespace" {
		return def
	}
	abs, err := filepath.Abs(def)
	if err != nil || traversable(filepath.Dir(abs)) {
		return def
	}
	dd, _ := filepath.Abs(cfg.DataDir)
	sum := sha256.Sum256([]byte(dd))
	alt := filepath.Join("/var/lib/berth", "apps-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll("/var/lib/berth", 0o711); err != nil || !traversable("/var/lib/berth") {
		return def // local.New says why the default cannot be used
	}
	log.Warn("the default apps dir cannot be traversed by app users; using another (set local.apps_dir to choose)",
		"default", abs, "apps_dir", alt)
	return alt
}

// traversable reports whether every directory from dir up to / has o+x.
func traversable(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == "/" || d == "." {
			return true
		}
	}
}

// clusterID is the Berth cluster's id (engine.ClusterID), read or created
// in the Store; a Store that does not answer is asked again for a minute.
func clusterID(cfg *config.Config, store backends.Store, log hclog.Logger) (string, error) {
	deadline := time.Now().Add(time.Minute)
	for wait := time.Second; ; wait = min(2*wait, 10*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		id, err := engine.ClusterID(ctx, store, cfg.ClusterID)
		cancel()
		if err == nil || time.Now().Add(wait).After(deadline) {
			if err != nil {
				return "", fmt.Errorf("the cluster id: %w", err)
			}
			return id, nil
		}
		log.Warn("reading the cluster id failed; retrying", "in", wait, "error", err)
		time.Sleep(wait)
	}
}
