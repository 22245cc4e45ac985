package main

import (
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/config"
)

// secureDataDir keeps data_dir to berth alone: the directory is made 0700
// (app procs, which never run as berth's uid unless local.isolation is
// "none", cannot enter it) and the files directly in it and in its
// secrets/ folder lose any group or other permission.
func secureDataDir(cfg *config.Config, log hclog.Logger) error {
	dd := cfg.DataDir
	if err := os.MkdirAll(dd, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dd, 0o700); err != nil {
		return err
	}
	for _, dir := range []string{dd, filepath.Join(dd, "secrets")} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			fi, err := os.Lstat(p)
			if err != nil || fi.Mode()&os.ModeSymlink != 0 {
				continue
			}
			if perm := fi.Mode().Perm(); perm&0o077 != 0 {
				want := perm &^ 0o077
				if fi.IsDir() {
					want = 0o700
				}
				if err := os.Chmod(p, want); err != nil {
					log.Warn("cannot restrict the permissions of a file in data_dir", "path", p, "error", err)
				}
			}
		}
	}
	if cfg.Source != "" && holdsCredentials(cfg) {
		if fi, err := os.Stat(cfg.Source); err == nil && fi.Mode().Perm()&0o007 != 0 {
			log.Warn("the config file is readable by other users; it may hold tokens and passwords: chmod 0600 it", "path", cfg.Source)
		}
	}
	return nil
}

// holdsCredentials reports whether the config sets a token, password or
// secret.
func holdsCredentials(cfg *config.Config) bool {
	return (cfg.Consul != nil && cfg.Consul.Token != "") ||
		(cfg.Vault != nil && (cfg.Vault.Token != "" || cfg.Vault.SecretID != "")) ||
		(cfg.Nomad != nil && cfg.Nomad.Token != "") ||
		(cfg.Mailer != nil && cfg.Mailer.Password != "") ||
		(cfg.Notify != nil && cfg.Notify.Secret != "")
}
