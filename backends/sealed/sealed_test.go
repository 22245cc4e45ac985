package sealed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/secretstest"
)

func openTemp(t testing.TB, opts Options) *Secrets {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "sealed"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	secretstest.Run(t, func(t testing.TB) backends.Secrets { return openTemp(t, Options{}) })
}

func BenchmarkSecrets(b *testing.B) {
	secretstest.Bench(b, func(t testing.TB) backends.Secrets { return openTemp(t, Options{}) })
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestFirstStartCreatesKeyAndDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "sealed")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for path, want := range map[string]fs.FileMode{
		dir:                         0o700,
		filepath.Join(dir, KeyFile): 0o600,
		filepath.Join(dir, DBFile):  0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %04o, want %04o", path, got, want)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != 32 || bytes.Equal(key, make([]byte, 32)) {
		t.Fatalf("key file holds %d bytes (%v), want 32 random bytes", len(key), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries, want the key file and the database only", len(entries))
	}
}

func TestReopenKeepsSecretsAndKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sealed")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := s.Put(ctx(t), "apps/hello/env", map[string]string{"N": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	keyBefore, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	keyAfter, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	if !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("reopening replaced the key file")
	}
	sec, err := s.Get(ctx(t), "apps/hello/env", 0)
	if err != nil || sec.Version != 3 || sec.Data["N"] != "3" {
		t.Fatalf("after reopen Get = %+v, %v; want version 3", sec, err)
	}
	sec, err = s.Get(ctx(t), "apps/hello/env", 2)
	if err != nil || sec.Data["N"] != "2" {
		t.Fatalf("after reopen Get v2 = %+v, %v", sec, err)
	}
	v, err := s.Put(ctx(t), "apps/hello/env", map[string]string{"N": "4"})
	if err != nil || v != 4 {
		t.Fatalf("Put after reopen = %d, %v; want version 4", v, err)
	}
}

func TestNothingReadableAtRest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sealed")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const (
		value   = "correct-horse-battery-staple-0xDEADBEEF"
		keyName = "MYSQL_PASSWORD_FOR_SPECIAL_APP"
		path    = "bindings/very-recognisable-app/mysql"
	)
	for i := 0; i < 3; i++ {
		if _, err := s.Put(ctx(t), path, map[string]string{keyName: value, "N": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Put(ctx(t), "other", map[string]string{"x": value}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	needles := [][]byte{[]byte(value), []byte(keyName), []byte("very-recognisable-app"), []byte(hex.EncodeToString([]byte(value)))}
	files := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s contains %q in the clear", p, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 2 {
		t.Fatalf("walked %d files, want the key file and the database", files)
	}
}

func TestWrongKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sealed")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx(t), "a", map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	other := make([]byte, 32)
	_, _ = rand.Read(other)
	if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte(hex.EncodeToString(other)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{})
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with another key file: err = %v, want ErrWrongKey", err)
	}
	if !strings.Contains(err.Error(), KeyFile) {
		t.Errorf("error %q does not name the key file", err)
	}

	// A key file that is not a key at all.
	if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "256-bit") {
		t.Fatalf("Open with a garbage key file: err = %v, want a clear complaint", err)
	}
}

func TestMissingKeyWithData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sealed")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx(t), "a", map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if err := os.Remove(filepath.Join(dir, KeyFile)); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Open without the key file beside existing data: err = %v, want a refusal", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, KeyFile)); serr == nil {
		t.Fatal("Open created a new key file beside data sealed with the old one")
	}
}

func TestKeyFileReadableByOthers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sealed")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if err := os.Chmod(filepath.Join(dir, KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Open with a world-readable key file: err = %v, want a refusal", err)
	}
}

func TestBoundedVersions(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	for i := 1; i <= DefaultMaxVersions+5; i++ {
		if v, err := s.Put(ctx(t), "env/app", map[string]string{"N": fmt.Sprint(i)}); err != nil || v != i {
			t.Fatalf("Put #%d = %d, %v", i, v, err)
		}
	}
	for v := 1; v <= 5; v++ {
		if _, err := s.Get(ctx(t), "env/app", v); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("Get of pruned version %d: err = %v, want ErrNotFound", v, err)
		}
	}
	for v := 6; v <= DefaultMaxVersions+5; v++ {
		sec, err := s.Get(ctx(t), "env/app", v)
		if err != nil || sec.Data["N"] != fmt.Sprint(v) {
			t.Errorf("Get of kept version %d = %+v, %v", v, sec, err)
		}
	}

	s3 := openTemp(t, Options{NoSync: true, MaxVersions: 3})
	for i := 1; i <= 5; i++ {
		if _, err := s3.Put(ctx(t), "p", map[string]string{"N": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s3.Get(ctx(t), "p", 2); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("MaxVersions 3 kept version 2 of 5: %v", err)
	}
	if _, err := s3.Get(ctx(t), "p", 3); err != nil {
		t.Errorf("MaxVersions 3 dropped version 3 of 5: %v", err)
	}
}

func TestPathValidationMessages(t *testing.T) {
	cases := map[string]string{
		"":       "empty",
		"..":     "'..' segment",
		"a/../b": "'..' segment",
		"a//b":   "empty segment",
		"/a":     "start with '/'",
		"a/":     "end with '/'",
		"a\nb":   "control character",
	}
	for p, want := range cases {
		err := ValidatePath(p)
		if !errors.Is(err, backends.ErrInvalidKey) || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidatePath(%q) = %v, want ErrInvalidKey saying %q", p, err, want)
		}
	}
	for _, p := range []string{"a", "apps/hello/env", "odd/with space", "x/ключ", "a.b/c..d"} {
		if err := ValidatePath(p); err != nil {
			t.Errorf("ValidatePath(%q) = %v, want nil", p, err)
		}
	}
}

func TestListPrefixIsAFolder(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	for _, p := range []string{"apps/a", "apps/b/c", "appsx/y", "apps"} {
		if _, err := s.Put(ctx(t), p, map[string]string{"k": "v"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefix := range []string{"apps", "apps/"} {
		got, err := s.List(ctx(t), prefix)
		if err != nil || strings.Join(got, ",") != "apps/a,apps/b/c" {
			t.Errorf("List(%q) = %q, %v; want [apps/a apps/b/c]", prefix, got, err)
		}
	}
	if _, err := s.List(ctx(t), "../x"); !errors.Is(err, backends.ErrInvalidKey) {
		t.Errorf("List(../x): %v, want ErrInvalidKey", err)
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "sealed"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if _, err := s.Put(ctx(t), "a", map[string]string{"k": "v"}); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("Put after Close: %v, want ErrUnavailable", err)
	}
	if err := s.Health(ctx(t)); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("Health after Close: %v, want ErrUnavailable", err)
	}
}

func TestOpenWhileOpenTimesOut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sealed")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// flock is per open file, so a second Open in this process contends
	// for the lock as another process would.
	done := make(chan error, 1)
	go func() {
		s2, err := Open(dir, Options{Timeout: 200 * time.Millisecond})
		if err == nil {
			_ = s2.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "locked by another process") {
			t.Fatalf("second Open of an open directory: err = %v, want a lock timeout", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("second Open hung on the lock")
	}
}

// Get opens a record once per change: what it answers follows every write,
// and a caller changing the answer's map changes nothing stored or cached.
func TestGetAfterWritesAndCallerChanges(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		want := fmt.Sprintf("v%d", i)
		if _, err := s.Put(ctx, "tokens/a", map[string]string{"k": want}); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 2; j++ {
			sec, err := s.Get(ctx, "tokens/a", 0)
			if err != nil {
				t.Fatal(err)
			}
			if sec.Data["k"] != want || sec.Version != i {
				t.Fatalf("after write %d, read %d: %v version %d, want k=%s version %d", i, j, sec.Data, sec.Version, want, i)
			}
			sec.Data["k"] = "changed by the caller"
		}
	}
	if err := s.Delete(ctx, "tokens/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "tokens/a", 0); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("after delete: %v, want not found", err)
	}
}

// A Get started after a write has returned sees that write (or a later
// one), however Gets and writes interleave; a Get after Close fails.
func TestGetNeverOlderThanAFinishedWrite(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	ctx := context.Background()
	const writes = 300
	var done atomic.Int64
	stop := make(chan struct{})
	errc := make(chan error, 4)
	for r := 0; r < 3; r++ {
		go func() {
			for {
				select {
				case <-stop:
					errc <- nil
					return
				default:
				}
				min := int(done.Load())
				sec, err := s.Get(ctx, "tokens/race", 0)
				if min == 0 && errors.Is(err, backends.ErrNotFound) {
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				if sec.Version < min {
					errc <- fmt.Errorf("read version %d after version %d was written", sec.Version, min)
					return
				}
			}
		}()
	}
	for i := 1; i <= writes; i++ {
		v, err := s.Put(ctx, "tokens/race", map[string]string{"n": fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		done.Store(int64(v))
	}
	close(stop)
	for r := 0; r < 3; r++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "tokens/race", 0); err == nil {
		t.Fatal("a Get after Close answered")
	}
}
