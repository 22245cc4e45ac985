package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/berthpaas/berth/engine"
)

// maxSecretValue bounds the value put-secret reads from stdin.
const maxSecretValue = 64 << 10

// runPutSecret is `berth admin put-secret`: it sets one key of a secret in
// Berth's Secrets (the backend the config selects: sealed in the data dir,
// or Vault) to the value read from stdin, for a broker_target's
// secret_refs or osb.password_secret. The value is never printed.
func runPutSecret(args []string, stdin io.Reader) error {
	fs := flag.NewFlagSet("admin put-secret", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (HCL)")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir)")
	key := fs.String("key", "password", "the key of the secret to set (its other keys are kept)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: berth admin put-secret [-key KEY] [-config FILE] [-data-dir DIR] PATH < value")
	}
	path := fs.Arg(0)
	if err := engine.CheckOperatorSecretPath(path); err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(stdin, maxSecretValue+1))
	if err != nil {
		return fmt.Errorf("reading the value from stdin: %w", err)
	}
	if len(b) > maxSecretValue {
		return fmt.Errorf("the value on stdin is longer than %d bytes", maxSecretValue)
	}
	value := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if value == "" {
		return errors.New("no value on stdin (give it as e.g. `berth admin put-secret PATH < file`)")
	}
	cfg, err := loadConfig(*cfgPath, *dataDir, "")
	if err != nil {
		return err
	}
	sec, name, err := openSecrets(cfg, newLogger(cfg))
	if err != nil {
		if cfg.Vault == nil {
			return fmt.Errorf("%w (the sealed secrets can be written only while the server using this data dir is stopped)", err)
		}
		return err
	}
	defer sec.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := engine.PutOperatorSecret(ctx, sec, path, *key, value)
	if err != nil {
		return err
	}
	fmt.Printf("put key %q of %s in the %s secrets (version %d)\n", *key, path, name, v)
	return nil
}
