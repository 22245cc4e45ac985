// Package sealed is the embedded default backends.Secrets: versioned secrets
// in one bbolt file, every value sealed with AES-256-GCM under a key kept in
// a separate key file (mode 0600) that is created on first start.
//
// Nothing is readable at rest: neither values nor paths. A secret's record is
// stored under an HMAC-SHA256 of its path and holds its path and its recent
// versions, sealed as one blob (the record ID is the AEAD's additional data,
// so blobs cannot be moved between paths). The encryption and HMAC keys are
// derived from the key file's 32 random bytes with HKDF-SHA256. A sealed
// check value lets Open tell a wrong key file from corrupt data.
//
// Files under dir: "sealed.key" (the key, hex, 0600) and "secrets.db" (0600).
// Losing the key file loses the secrets; back them up apart from each other.
package sealed

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/boltfile"
	"github.com/hashicorp/go-hclog"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var _ backends.Secrets = (*Secrets)(nil)

// File names inside the sealed directory.
const (
	KeyFile = "sealed.key"
	DBFile  = "secrets.db"
)

// Defaults for Options.
const (
	DefaultMaxVersions = 10
	DefaultTimeout     = 5 * time.Second
	// MaxPathLen is the longest path, in bytes, accepted.
	MaxPathLen = 1024
)

var (
	// ErrWrongKey is returned by Open when the key file does not unseal the data.
	ErrWrongKey = errors.New("sealed: the key file does not match the sealed data")
	// ErrClosed is the cause of every call's failure on a closed Secrets:
	// the call fails with a *backends.UnavailableError naming sealed that
	// wraps it.
	ErrClosed = errors.New("sealed secrets are closed")
)

// unavailable marks a failure of the secrets file itself as a
// *backends.UnavailableError naming sealed (see boltfile.File.Unavailable).
func unavailable(op string, err error) error { return fileFailures.Unavailable(op, err) }

var fileFailures = boltfile.File{Backend: "sealed", Role: "secrets", What: "the secrets file", Closed: ErrClosed}

var (
	bucketSecrets = []byte("secrets") // id -> sealed record (path and versions)
	bucketPaths   = []byte("paths")   // id -> sealed path, so List need not unseal every version
	bucketMeta    = []byte("meta")
	metaCheck     = []byte("check")
	checkPlain    = []byte("berth sealed secrets v1")
)

// Options tune Open. The zero value is a good default.
type Options struct {
	// Logger receives operational messages (never values nor paths of
	// secrets). Default: a null logger.
	Logger hclog.Logger
	// MaxVersions is how many recent versions of each secret are kept. Default 10.
	MaxVersions int
	// Timeout bounds the wait for the database file lock. Default 5s.
	Timeout time.Duration
	// NoSync skips fsync after each commit. For tests only.
	NoSync bool
}

// Secrets is a backends.Secrets sealed in a directory.
type Secrets struct {
	db          *bbolt.DB
	aead        cipher.AEAD
	macKey      []byte
	log         hclog.Logger
	dir         string
	maxVersions int

	// latest caches the latest version of the secrets Get has read, by
	// path. The file is this process's alone (bbolt's lock), and every
	// write goes through update, which drops the cache after it commits
	// and bumps gen, so a Get that read before a write cannot put what it
	// read back in after it.
	omu    sync.Mutex
	ogen   uint64
	latest map[string]*backends.Secret
	closed bool
}

// maxLatest bounds the cache of latest versions (it is dropped when full).
const maxLatest = 4096

// cached is a copy of the cached latest version of path, nil if none.
func (s *Secrets) cached(path string) (*backends.Secret, uint64) {
	s.omu.Lock()
	defer s.omu.Unlock()
	sec, ok := s.latest[path]
	if !ok || s.closed {
		return nil, s.ogen
	}
	return &backends.Secret{Path: sec.Path, Data: maps.Clone(sec.Data), Version: sec.Version}, s.ogen
}

// remember caches sec, the latest version of its path read while the
// cache's generation was gen (not if a write has committed since).
func (s *Secrets) remember(gen uint64, path string, sec *backends.Secret) {
	s.omu.Lock()
	defer s.omu.Unlock()
	if gen != s.ogen || s.closed {
		return
	}
	if s.latest == nil || len(s.latest) >= maxLatest {
		s.latest = make(map[string]*backends.Secret)
	}
	s.latest[path] = &backends.Secret{Path: sec.Path, Data: maps.Clone(sec.Data), Version: sec.Version}
}

// forget drops the cache: a write has committed (or may have).
func (s *Secrets) forget() {
	s.omu.Lock()
	defer s.omu.Unlock()
	s.ogen++
	clear(s.latest)
}

// record is the sealed content stored for one path.
type record struct {
	Path     string    `json:"path"`
	Latest   int       `json:"latest"`
	Versions []version `json:"versions"` // oldest first
}

type version struct {
	Version int               `json:"v"`
	Data    map[string]string `json:"data"`
	Created time.Time         `json:"created"`
}

// Open opens the sealed secrets in dir. On first start it creates dir (0700)
// and a new random key file (0600). Later it refuses a key file that others
// may read, a missing key file beside existing data, and a key file that
// does not unseal the data (ErrWrongKey).
func Open(dir string, opts Options) (*Secrets, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.MaxVersions <= 0 {
		opts.MaxVersions = DefaultMaxVersions
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if dir == "" {
		return nil, errors.New("sealed: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sealed: create %s: %w", dir, err)
	}
	keyPath := filepath.Join(dir, KeyFile)
	dbPath := filepath.Join(dir, DBFile)

	key, created, err := loadOrCreateKey(keyPath, dbPath)
	if err != nil {
		return nil, err
	}
	if created {
		opts.Logger.Info("created a new key file for sealed secrets; back it up", "path", keyPath)
	}
	encKey, err := hkdf.Key(sha256.New, key, nil, "berth sealed encryption v1", 32)
	if err != nil {
		return nil, fmt.Errorf("sealed: derive keys: %w", err)
	}
	macKey, err := hkdf.Key(sha256.New, key, nil, "berth sealed path ids v1", 32)
	if err != nil {
		return nil, fmt.Errorf("sealed: derive keys: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}

	db, err := bbolt.Open(dbPath, 0o600, &bbolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("sealed: %s is locked by another process (waited %v): %w", dbPath, opts.Timeout, err)
		}
		return nil, fmt.Errorf("sealed: open %s: %w", dbPath, err)
	}
	s := &Secrets{db: db, aead: aead, macKey: macKey, log: opts.Logger, dir: dir, maxVersions: opts.MaxVersions}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketSecrets, bucketPaths} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if sealedCheck := meta.Get(metaCheck); sealedCheck != nil {
			plain, err := s.open(sealedCheck, metaCheck)
			if err != nil || !bytes.Equal(plain, checkPlain) {
				return fmt.Errorf("%w: %s cannot unseal %s", ErrWrongKey, keyPath, dbPath)
			}
			return nil
		}
		if tx.Bucket(bucketSecrets).Stats().KeyN > 0 {
			return fmt.Errorf("%w: %s holds secrets but no check value", ErrWrongKey, dbPath)
		}
		return meta.Put(metaCheck, s.seal(checkPlain, metaCheck))
	})
	if err != nil {
		_ = db.Close()
		if errors.Is(err, ErrWrongKey) {
			return nil, err
		}
		return nil, fmt.Errorf("sealed: initialise %s: %w", dbPath, err)
	}
	s.log.Debug("sealed secrets opened", "dir", dir)
	return s, nil
}

// loadOrCreateKey reads the key file, or creates it when neither it nor the
// database exists yet.
func loadOrCreateKey(keyPath, dbPath string) (key []byte, created bool, err error) {
	fi, err := os.Stat(keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, derr := os.Stat(dbPath); derr == nil {
			return nil, false, fmt.Errorf("sealed: key file %s is missing but %s exists: restore the key file (a new key could not unseal the data)", keyPath, dbPath)
		}
		key, err := createKey(keyPath)
		return key, err == nil, err
	case err != nil:
		return nil, false, fmt.Errorf("sealed: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("sealed: key file %s is not a regular file", keyPath)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, false, fmt.Errorf("sealed: key file %s has mode %04o, readable by others: chmod 600 it", keyPath, perm)
	}
	raw, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, false, fmt.Errorf("sealed: read key file: %w", err)
	}
	key, err = hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != 32 {
		return nil, false, fmt.Errorf("sealed: key file %s does not hold a 256-bit hex key", keyPath)
	}
	return key, false, nil
}

// createKey writes a new random key to keyPath without ever replacing an
// existing file: it is written to a temporary file and then hard-linked.
func createKey(keyPath string) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("sealed: generate key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(keyPath), ".sealed.key.*")
	if err != nil {
		return nil, fmt.Errorf("sealed: create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return nil, fmt.Errorf("sealed: create key file: %w", err)
	}
	if _, err := tmp.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		_ = tmp.Close()
		return nil, fmt.Errorf("sealed: write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return nil, fmt.Errorf("sealed: write key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("sealed: write key file: %w", err)
	}
	if err := os.Link(tmp.Name(), keyPath); err != nil {
		return nil, fmt.Errorf("sealed: install key file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(keyPath)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return key, nil
}

// Dir is the directory the secrets live in.
func (s *Secrets) Dir() string { return s.dir }

// Close closes the database file.
func (s *Secrets) Close() error {
	s.omu.Lock()
	s.closed = true
	s.omu.Unlock()
	s.forget()
	if err := s.db.Close(); err != nil {
		return err
	}
	s.log.Debug("sealed secrets closed", "dir", s.dir)
	return nil
}

// Health reports whether the database is open and the key unseals it.
func (s *Secrets) Health(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketMeta).Get(metaCheck)
		if plain, err := s.open(c, metaCheck); err != nil || !bytes.Equal(plain, checkPlain) {
			return &backends.UnavailableError{Backend: "sealed", Role: "secrets", Op: "health", Reason: "the key file does not unseal the secrets",
				Err: errors.New("sealed check value does not unseal")}
		}
		return nil
	})
}

func (s *Secrets) view(fn func(tx *bbolt.Tx) error) error {
	return unavailable("read", s.db.View(fn))
}

func (s *Secrets) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	defer s.forget()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(tx)
	})
	return unavailable("write", err)
}

func (s *Secrets) seal(plain, aad []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("sealed: crypto/rand failed: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return s.aead.Seal(nonce, nonce, plain, aad)
}

func (s *Secrets) open(sealed, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errors.New("sealed: value too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], aad)
}

func pathAAD(id []byte) []byte { return append([]byte("path:"), id...) }

// id is the storage key of a path: its HMAC, so paths are not readable at rest.
func (s *Secrets) id(path string) []byte {
	m := hmac.New(sha256.New, s.macKey)
	m.Write([]byte(path))
	return m.Sum(nil)
}

func (s *Secrets) readRecord(tx *bbolt.Tx, id []byte) (*record, error) {
	raw := tx.Bucket(bucketSecrets).Get(id)
	if raw == nil {
		return nil, nil
	}
	plain, err := s.open(raw, id)
	if err != nil {
		return nil, fmt.Errorf("sealed: a record does not unseal (corrupt file?): %w", err)
	}
	var r record
	if err := json.Unmarshal(plain, &r); err != nil {
		return nil, fmt.Errorf("sealed: a record is corrupt: %w", err)
	}
	return &r, nil
}

// ValidatePath checks a secret path: non-empty, at most MaxPathLen bytes,
// UTF-8 without control characters, no leading or trailing '/', no empty,
// "." or ".." segments. Errors match backends.ErrInvalidKey.
func ValidatePath(path string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: secret path %q: %s", backends.ErrInvalidKey, path, why)
	}
	switch {
	case path == "":
		return fmt.Errorf("%w: empty secret path", backends.ErrInvalidKey)
	case len(path) > MaxPathLen:
		return fmt.Errorf("%w: secret path longer than %d bytes", backends.ErrInvalidKey, MaxPathLen)
	case !utf8.ValidString(path):
		return bad("not UTF-8")
	case strings.HasPrefix(path, "/"):
		return bad("must not start with '/'")
	case strings.HasSuffix(path, "/"):
		return bad("must not end with '/'")
	}
	for _, r := range path {
		if unicode.IsControl(r) {
			return bad("has a control character")
		}
	}
	for _, seg := range strings.Split(path, "/") {
		switch seg {
		case "":
			return bad("has an empty segment")
		case ".", "..":
			return bad("has a '" + seg + "' segment")
		}
	}
	return nil
}

// Put writes a new version of the secret at path; see backends.Secrets.
func (s *Secrets) Put(ctx context.Context, path string, data map[string]string) (int, error) {
	return s.put(ctx, path, data, -1)
}

// PutCAS writes a new version only if the latest is still version (0: the
// path holds no secret); the check and the write are one bbolt transaction.
func (s *Secrets) PutCAS(ctx context.Context, path string, data map[string]string, version int) (int, error) {
	if version < 0 {
		return 0, fmt.Errorf("sealed: check-and-set version %d: %w", version, backends.ErrCASMismatch)
	}
	return s.put(ctx, path, data, version)
}

// put writes a new version; want >= 0 is the check-and-set version.
func (s *Secrets) put(ctx context.Context, path string, data map[string]string, want int) (int, error) {
	if err := ValidatePath(path); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	copied := make(map[string]string, len(data))
	for k, v := range data {
		copied[k] = v
	}
	id := s.id(path)
	var v int
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := s.readRecord(tx, id)
		if err != nil {
			return err
		}
		cur := 0
		if r != nil {
			cur = r.Latest
		}
		if want >= 0 && cur != want {
			return fmt.Errorf("sealed: secret %q is at version %d, not %d: %w", path, cur, want, backends.ErrCASMismatch)
		}
		if r == nil {
			r = &record{Path: path}
		}
		r.Latest++
		r.Versions = append(r.Versions, version{Version: r.Latest, Data: copied, Created: time.Now().UTC()})
		if over := len(r.Versions) - s.maxVersions; over > 0 {
			r.Versions = append([]version(nil), r.Versions[over:]...)
		}
		plain, err := json.Marshal(r)
		if err != nil {
			return err
		}
		v = r.Latest
		if r.Latest == 1 || tx.Bucket(bucketPaths).Get(id) == nil {
			if err := tx.Bucket(bucketPaths).Put(id, s.seal([]byte(path), pathAAD(id))); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketSecrets).Put(id, s.seal(plain, id))
	})
	if err != nil {
		return 0, err
	}
	return v, nil
}

// Get reads a version of the secret at path (0 = latest); see backends.Secrets.
func (s *Secrets) Get(ctx context.Context, path string, ver int) (*backends.Secret, error) {
	if err := ValidatePath(path); err != nil {
		return nil, err
	}
	if ver < 0 {
		return nil, fmt.Errorf("sealed: version %d: %w", ver, backends.ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var gen uint64
	if ver == 0 {
		var sec *backends.Secret
		if sec, gen = s.cached(path); sec != nil {
			return sec, nil
		}
	}
	var out *backends.Secret
	err := s.view(func(tx *bbolt.Tx) error {
		r, err := s.readRecord(tx, s.id(path))
		if err != nil || r == nil {
			return err
		}
		want := ver
		if want == 0 {
			want = r.Latest
		}
		for _, v := range r.Versions {
			if v.Version == want {
				data := v.Data
				if data == nil {
					data = map[string]string{}
				}
				out = &backends.Secret{Path: r.Path, Data: data, Version: v.Version}
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		if ver == 0 {
			return nil, fmt.Errorf("sealed: secret %q: %w", path, backends.ErrNotFound)
		}
		return nil, fmt.Errorf("sealed: secret %q version %d: %w", path, ver, backends.ErrNotFound)
	}
	if ver == 0 {
		s.remember(gen, path, out)
	}
	return out, nil
}

// Delete removes the secret at path with all its versions.
func (s *Secrets) Delete(ctx context.Context, path string) error {
	if err := ValidatePath(path); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	id := s.id(path)
	return s.update(ctx, func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketPaths).Delete(id); err != nil {
			return err
		}
		return tx.Bucket(bucketSecrets).Delete(id)
	})
}

// List returns the paths of all secrets under prefix, sorted. The prefix
// names a folder: "apps" and "apps/" both list "apps/...", never "appsx".
// Paths are sealed too, so it unseals every path: it costs time in the
// number of secrets (not of versions).
func (s *Secrets) List(ctx context.Context, prefix string) ([]string, error) {
	folder := strings.TrimSuffix(prefix, "/")
	if folder != "" {
		if err := ValidatePath(folder); err != nil {
			return nil, err
		}
		folder += "/"
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []string
	err := s.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketPaths).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			plain, err := s.open(v, pathAAD(k))
			if err != nil {
				return fmt.Errorf("sealed: a path does not unseal (corrupt file?): %w", err)
			}
			if p := string(plain); strings.HasPrefix(p, folder) {
				out = append(out, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}
