package engine

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
)

// newTestEngine builds an Engine on a bolt store and sealed secrets in a
// temporary directory, with no scheduler and no brokers unless mutate adds
// them to d. Its logs are returned for tests that check what is logged.
func newTestEngine(t testing.TB, mutate func(cfg *config.Config, d *Deps)) (*Engine, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	d := Deps{Config: cfg, Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug}),
		Store: st, StoreName: "bolt", Secrets: sec, SecretsName: "sealed"}
	if mutate != nil {
		mutate(cfg, &d)
	}
	e, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); _ = sec.Close(); _ = st.Close() })
	return e, &logs
}

func TestErrorKinds(t *testing.T) {
	e := Conflict("app %q is busy", "hello")
	if !errorsIs(e, ErrConflict) || errorsIs(e, ErrNotFound) {
		t.Fatalf("errors.Is by kind is wrong for %v", e)
	}
	if e.Error() != `app "hello" is busy` {
		t.Fatalf("message %q", e.Error())
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
