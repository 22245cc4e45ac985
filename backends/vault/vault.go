// Package vault implements backends.Secrets on a Vault KV version 2 secrets
// engine (github.com/hashicorp/vault/api): every Put is a new version, Get
// reads a version (0 = latest), Delete removes the metadata and so every
// version, and List walks the metadata tree.
//
// It authenticates with a token, or with AppRole (RoleID/SecretID), logging
// in again when Vault answers 403 (an expired or revoked token).
package vault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/berthpaas/berth/backends"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
)

// Config configures the Vault Secrets backend. Empty fields fall back to the
// usual VAULT_* environment variables, then to Vault's defaults.
type Config struct {
	// Address is Vault's URL, e.g. https://vault.example:8200.
	Address string
	// Token authenticates directly. Ignored when RoleID is set.
	Token string
	// RoleID and SecretID log in with AppRole.
	RoleID   string
	SecretID string
	// AppRoleMount is where the AppRole auth method is mounted (default "approle").
	AppRoleMount string
	// Mount is the KV v2 secrets engine's mount path (default "secret").
	Mount string
	// Prefix is prepended to every secret path, e.g. "berth".
	Prefix string
	// Namespace is the Vault Enterprise namespace; empty for none.
	Namespace string
	// TLS configures HTTPS to Vault.
	TLS TLSConfig
	// CallTimeout bounds each call to Vault (its retries included); 0 is
	// backends.DefaultCallTimeout. A call cut short by it fails as
	// unavailable.
	CallTimeout time.Duration
}

// TLSConfig is the TLS client configuration for talking to Vault.
type TLSConfig struct {
	CAFile             string
	CertFile           string
	KeyFile            string
	InsecureSkipVerify bool
	ServerName         string
}

// Secrets is a backends.Secrets on Vault KV v2.
type Secrets struct {
	client *api.Client
	kv     *api.KVv2
	mount  string
	prefix string // "" or ending in '/'
	cfg    Config
	logger hclog.Logger

	loginMu  sync.Mutex
	loggedIn bool // with AppRole: a token from a login is set
}

var _ backends.Secrets = (*Secrets)(nil)

// New makes a Secrets backend. It does not contact Vault (an AppRole login
// happens on first use); use Health to check the connection.
func New(cfg Config, logger hclog.Logger) (*Secrets, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	logger = logger.Named("vault")
	ac := api.DefaultConfig()
	if ac.Error != nil {
		return nil, fmt.Errorf("vault: %w", ac.Error)
	}
	if cfg.Address != "" {
		ac.Address = cfg.Address
	}
	if t := cfg.TLS; t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify || t.ServerName != "" {
		err := ac.ConfigureTLS(&api.TLSConfig{
			CACert:        t.CAFile,
			ClientCert:    t.CertFile,
			ClientKey:     t.KeyFile,
			TLSServerName: t.ServerName,
			Insecure:      t.InsecureSkipVerify,
		})
		if err != nil {
			return nil, fmt.Errorf("vault: tls: %w", err)
		}
	}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	switch {
	case cfg.RoleID != "":
		client.ClearToken() // log in on first use
		if cfg.AppRoleMount == "" {
			cfg.AppRoleMount = "approle"
		}
	case cfg.Token != "":
		client.SetToken(cfg.Token)
	case client.Token() == "":
		return nil, errors.New("vault: no token: set token, or role_id and secret_id (AppRole)")
	}
	mount := strings.Trim(cfg.Mount, "/")
	if mount == "" {
		mount = "secret"
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	logger.Debug("vault secrets configured", "address", ac.Address, "mount", mount, "prefix", prefix,
		"namespace", cfg.Namespace, "approle", cfg.RoleID != "")
	return &Secrets{client: client, kv: client.KVv2(mount), mount: mount, prefix: prefix, cfg: cfg, logger: logger}, nil
}

// login performs an AppRole login unless a newer token than stale is set.
func (s *Secrets) login(ctx context.Context, stale string) error {
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	if s.loggedIn && s.client.Token() != stale {
		return nil // another caller logged in already
	}
	// The login request must not carry the old token.
	c, err := s.client.Clone()
	if err != nil {
		return err
	}
	c.ClearToken()
	if s.cfg.Namespace != "" {
		c.SetNamespace(s.cfg.Namespace)
	}
	sec, err := c.Logical().WriteWithContext(ctx, "auth/"+strings.Trim(s.cfg.AppRoleMount, "/")+"/login",
		map[string]interface{}{"role_id": s.cfg.RoleID, "secret_id": s.cfg.SecretID})
	if err != nil {
		return s.wrap(ctx, "approle login", "", err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return errors.New("vault: approle login returned no token")
	}
	s.client.SetToken(sec.Auth.ClientToken)
	s.loggedIn = true
	s.logger.Info("logged in with approle", "mount", s.cfg.AppRoleMount, "ttl_seconds", sec.Auth.LeaseDuration)
	return nil
}

// do runs fn, logging in with AppRole first if needed and again once if
// Vault answers 403.
func (s *Secrets) do(ctx context.Context, fn func() error) error {
	if s.cfg.RoleID == "" {
		return fn()
	}
	s.loginMu.Lock()
	loggedIn := s.loggedIn
	s.loginMu.Unlock()
	if !loggedIn {
		if err := s.login(ctx, ""); err != nil {
			return err
		}
	}
	tok := s.client.Token()
	err := fn()
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		s.logger.Info("vault answered 403; logging in again")
		if lerr := s.login(ctx, tok); lerr != nil {
			return lerr
		}
		err = fn()
	}
	return err
}

// full validates a secret path and prepends the prefix. Paths are
// '/'-separated, with no empty, "." or ".." segments and no control
// characters (Vault would resolve or refuse them).
func (s *Secrets) full(path string) (string, error) {
	if err := validPath(path); err != nil {
		return "", err
	}
	return s.prefix + path, nil
}

func validPath(path string) error {
	if path == "" {
		return fmt.Errorf("%w: empty secret path", backends.ErrInvalidKey)
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: secret path %q has an empty, \".\" or \"..\" segment", backends.ErrInvalidKey, path)
		}
	}
	if !utf8.ValidString(path) || strings.IndexFunc(path, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("%w: secret path %q has non-printable characters", backends.ErrInvalidKey, path)
	}
	return nil
}

// Put writes a new version of the secret at path.
func (s *Secrets) Put(ctx context.Context, path string, data map[string]string) (int, error) {
	return s.put(ctx, path, data)
}

// PutCAS writes a new version only if the latest is still version (0: the
// path holds no secret): KV v2's check-and-set ("options": {"cas": N}),
// which Vault checks and applies atomically.
func (s *Secrets) PutCAS(ctx context.Context, path string, data map[string]string, version int) (int, error) {
	if version < 0 {
		return 0, fmt.Errorf("vault put %q: check-and-set version %d: %w", path, version, backends.ErrCASMismatch)
	}
	v, err := s.put(ctx, path, data, api.WithCheckAndSet(version))
	var re *api.ResponseError
	if err != nil && errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
		return 0, fmt.Errorf("vault put %q: not at version %d: %w", path, version, backends.ErrCASMismatch)
	}
	return v, err
}

func (s *Secrets) put(ctx context.Context, path string, data map[string]string, opts ...api.KVOption) (int, error) {
	ctx, cancel := backends.CallContext(ctx, s.cfg.CallTimeout)
	defer cancel()
	p, err := s.full(path)
	if err != nil {
		return 0, err
	}
	m := make(map[string]interface{}, len(data))
	for k, v := range data {
		m[k] = v
	}
	var sec *api.KVSecret
	err = s.do(ctx, func() error {
		var err error
		sec, err = s.kv.Put(ctx, p, m, opts...)
		return err
	})
	if err != nil {
		return 0, s.wrap(ctx, "put", path, err)
	}
	if sec == nil || sec.VersionMetadata == nil {
		return 0, fmt.Errorf("vault put %q: no version in the answer", path)
	}
	return sec.VersionMetadata.Version, nil
}

// Get reads a version of the secret at path (0 = latest).
func (s *Secrets) Get(ctx context.Context, path string, version int) (*backends.Secret, error) {
	ctx, cancel := backends.CallContext(ctx, s.cfg.CallTimeout)
	defer cancel()
	p, err := s.full(path)
	if err != nil {
		return nil, err
	}
	if version < 0 {
		return nil, fmt.Errorf("vault get %q: %w: version %d", path, backends.ErrNotFound, version)
	}
	var sec *api.KVSecret
	err = s.do(ctx, func() error {
		var err error
		if version == 0 {
			sec, err = s.kv.Get(ctx, p)
		} else {
			sec, err = s.kv.GetVersion(ctx, p, version)
		}
		return err
	})
	if errors.Is(err, api.ErrSecretNotFound) {
		return nil, fmt.Errorf("vault get %q: %w", path, backends.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap(ctx, "get", path, err)
	}
	if sec == nil || sec.Data == nil || sec.VersionMetadata == nil {
		// A version that was deleted (not by this backend) reads as absent.
		return nil, fmt.Errorf("vault get %q: %w", path, backends.ErrNotFound)
	}
	out := &backends.Secret{Path: path, Data: make(map[string]string, len(sec.Data)), Version: sec.VersionMetadata.Version}
	for k, v := range sec.Data {
		switch v := v.(type) {
		case string:
			out.Data[k] = v
		case nil:
			out.Data[k] = ""
		default:
			out.Data[k] = fmt.Sprint(v)
		}
	}
	return out, nil
}

// Delete removes the secret at path with every version.
func (s *Secrets) Delete(ctx context.Context, path string) error {
	ctx, cancel := backends.CallContext(ctx, s.cfg.CallTimeout)
	defer cancel()
	p, err := s.full(path)
	if err != nil {
		return err
	}
	err = s.do(ctx, func() error { return s.kv.DeleteMetadata(ctx, p) })
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return s.wrap(ctx, "delete", path, err)
	}
	return nil
}

// List returns the paths of every secret whose path starts with prefix, sorted.
func (s *Secrets) List(ctx context.Context, prefix string) ([]string, error) {
	ctx, cancel := backends.CallContext(ctx, s.cfg.CallTimeout)
	defer cancel()
	prefix = strings.TrimLeft(prefix, "/")
	// Walk from the deepest directory the prefix names, keep what matches.
	dir := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = prefix[:i+1]
	}
	var out []string
	var walk func(dir string) error
	walk = func(dir string) error {
		keys, err := s.listDir(ctx, dir)
		if err != nil {
			return err
		}
		for _, k := range keys {
			p := dir + k
			if strings.HasSuffix(k, "/") {
				if strings.HasPrefix(p, prefix) || strings.HasPrefix(prefix, p) {
					if err := walk(p); err != nil {
						return err
					}
				}
				continue
			}
			if strings.HasPrefix(p, prefix) {
				out = append(out, p)
			}
		}
		return nil
	}
	if err := walk(dir); err != nil {
		return nil, s.wrap(ctx, "list", prefix, err)
	}
	sort.Strings(out)
	return out, nil
}

// listDir lists one metadata directory (relative to the prefix); a missing
// directory is empty.
func (s *Secrets) listDir(ctx context.Context, dir string) ([]string, error) {
	var sec *api.Secret
	err := s.do(ctx, func() error {
		var err error
		sec, err = s.client.Logical().ListWithContext(ctx, s.mount+"/metadata/"+s.prefix+dir)
		return err
	})
	if err != nil {
		return nil, err
	}
	if sec == nil || sec.Data == nil {
		return nil, nil
	}
	raw, _ := sec.Data["keys"].([]interface{})
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		if ks, ok := k.(string); ok {
			keys = append(keys, ks)
		}
	}
	return keys, nil
}

// Health checks that Vault is reachable, initialized and unsealed, and that
// the token is valid.
func (s *Secrets) Health(ctx context.Context) error {
	ctx, cancel := backends.CallContext(ctx, s.cfg.CallTimeout)
	defer cancel()
	h, err := s.client.Sys().HealthWithContext(ctx)
	if err != nil {
		return s.wrap(ctx, "health", "sys/health", err)
	}
	if !h.Initialized || h.Sealed {
		why := fmt.Sprintf("initialized=%v sealed=%v", h.Initialized, h.Sealed)
		return &backends.UnavailableError{Backend: "vault", Role: "secrets", Op: "health", Reason: "vault is sealed or not initialized (" + why + ")", Err: errors.New(why)}
	}
	err = s.do(ctx, func() error {
		_, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
		return err
	})
	if err != nil {
		return s.wrap(ctx, "health", "token lookup-self", err)
	}
	return nil
}

// Close releases idle connections.
func (s *Secrets) Close() error {
	if t, ok := s.client.CloneConfig().HttpClient.Transport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
	return nil
}

// wrap marks transport failures and server errors as ErrUnavailable. Vault's
// error text never carries secret values.
func (s *Secrets) wrap(ctx context.Context, op, path string, err error) error {
	var (
		re *api.ResponseError
		ue *url.Error
		ne net.Error
	)
	unavailable := func(reason string) error {
		return &backends.UnavailableError{Backend: "vault", Role: "secrets", Op: fmt.Sprintf("%s %q", op, path), Reason: reason, Err: err}
	}
	switch {
	case backends.NoAnswer(ctx):
		// Cut short by the call deadline: not the caller's deadline (the
		// cause is kept as text, so that it does not match it).
		d := s.cfg.CallTimeout
		if d <= 0 {
			d = backends.DefaultCallTimeout
		}
		reason := "no answer within " + d.String()
		err = errors.New(reason + ": " + err.Error())
		return unavailable(reason)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("vault %s %q: %w", op, path, err)
	case errors.As(err, &re) && re.StatusCode < 500 && re.StatusCode != http.StatusTooManyRequests:
		return fmt.Errorf("vault %s %q: %w", op, path, err)
	case errors.As(err, &re):
		return unavailable(fmt.Sprintf("vault answered %d: %s", re.StatusCode, strings.Join(re.Errors, "; ")))
	case errors.As(err, &ue), errors.As(err, &ne):
		return unavailable(backends.Reason(err))
	}
	return fmt.Errorf("vault %s %q: %w", op, path, err)
}
