package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/server/state"
)

// Token kinds.
const (
	tokenUser = "user"
	tokenApp  = "app"
)

// Identity is who a request acts as.
type Identity struct {
	Email     string // the user, or for an app token the user who created it
	Admin     bool   // a site admin (never for app tokens)
	AppToken  bool   // an app token: may act on App only
	App       string
	TokenHash string
}

// Name is the identity as shown in audit records.
func (id *Identity) Name() string {
	if id.AppToken {
		return "app-token:" + id.App + " (by " + id.Email + ")"
	}
	return id.Email
}

const bcryptCost = 10

func hashPassword(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcryptCost)
	return string(h), err
}

func checkPassword(hash, pw string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// newSecret returns n random bytes, hex encoded.
func newSecret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func tokenPath(hash string) string            { return "tokens/" + hash }
func userTokenPath(email, hash string) string { return "user-tokens/" + email + "/" + hash }
func resetPath(hash string) string            { return "resets/" + hash }

// issueToken creates a token (256 random bits), keeps only its hash, and
// returns the token and its expiry.
func (s *Server) issueToken(ctx context.Context, email, kind, app string, ttl time.Duration) (string, time.Time, error) {
	tok := newSecret(32)
	h := tokenHash(tok)
	exp := time.Now().Add(ttl).UTC()
	data := map[string]string{
		"email": email, "kind": kind, "app": app,
		"created": time.Now().UTC().Format(time.RFC3339), "expires": exp.Format(time.RFC3339),
	}
	if _, err := s.secrets.Put(ctx, tokenPath(h), data); err != nil {
		return "", time.Time{}, err
	}
	if _, err := s.secrets.Put(ctx, userTokenPath(email, h), map[string]string{"kind": kind}); err != nil {
		_ = s.secrets.Delete(ctx, tokenPath(h))
		return "", time.Time{}, err
	}
	return tok, exp, nil
}

// revokeToken deletes a token by hash.
func (s *Server) revokeToken(ctx context.Context, email, hash string) error {
	if err := s.secrets.Delete(ctx, tokenPath(hash)); err != nil {
		return err
	}
	return s.secrets.Delete(ctx, userTokenPath(email, hash))
}

// revokeUserTokens deletes every token of a user (of a kind; "" = all).
func (s *Server) revokeUserTokens(ctx context.Context, email, kind string) error {
	paths, err := s.secrets.List(ctx, "user-tokens/"+email+"/")
	if err != nil {
		return err
	}
	for _, p := range paths {
		h := p[strings.LastIndexByte(p, '/')+1:]
		if kind != "" {
			sec, err := s.secrets.Get(ctx, p, 0)
			if err == nil && sec.Data["kind"] != kind {
				continue
			}
		}
		if err := s.revokeToken(ctx, email, h); err != nil {
			return err
		}
	}
	return nil
}

// bearer extracts the token from "Authorization: bearer <t>" or the
// access-token header.
func bearer(r *http.Request) string {
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, tok, ok := strings.Cut(a, " ")
		if ok && (strings.EqualFold(scheme, "bearer") || strings.EqualFold(scheme, "token")) {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return strings.TrimSpace(r.Header.Get("access-token"))
}

// authenticate resolves the request's token. No token is (nil, nil); a
// token that is malformed, unknown or expired is a 401.
func (s *Server) authenticate(r *http.Request) (*Identity, error) {
	hasAuth := r.Header.Get("Authorization") != "" || r.Header.Get("access-token") != ""
	tok := bearer(r)
	if tok == "" {
		if hasAuth {
			return nil, unauthorized("the Authorization header must be 'bearer <token>'")
		}
		return nil, nil
	}
	if len(tok) > 256 {
		return nil, unauthorized("invalid token")
	}
	h := tokenHash(tok)
	sec, err := s.secrets.Get(r.Context(), tokenPath(h), 0)
	if errors.Is(err, backends.ErrNotFound) {
		return nil, unauthorized("invalid or expired token")
	}
	if err != nil {
		return nil, err
	}
	exp, err := time.Parse(time.RFC3339, sec.Data["expires"])
	if err != nil || time.Now().After(exp) {
		_ = s.revokeToken(r.Context(), sec.Data["email"], h)
		return nil, unauthorized("invalid or expired token")
	}
	email := sec.Data["email"]
	u, _, err := state.Get[state.User](r.Context(), s.store, state.UserKey(email))
	if errors.Is(err, state.ErrNotFound) {
		return nil, unauthorized("the token's user no longer exists")
	}
	if err != nil {
		return nil, err
	}
	id := &Identity{Email: email, TokenHash: h}
	if sec.Data["kind"] == tokenApp {
		id.AppToken = true
		id.App = sec.Data["app"]
	} else {
		id.Admin = u.Admin || s.cfg.IsAdmin(email)
	}
	return id, nil
}
