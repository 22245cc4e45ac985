package engine

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
	"github.com/berthpaas/berth/engine/state"
)

// Token kinds.
const (
	TokenUser = "user"
	tokenApp  = "app"
)

// Identity is who a request acts as.
type Identity struct {
	Email     string // the user, or for an app token the user who created it
	Admin     bool   // a site admin (never for app tokens)
	AppToken  bool   // an app token: may act on App only
	App       string
	TokenHash string
	// Team is set for a team token (teamtokens.go): it acts on the team's
	// apps with only its granted actions.
	Team *TeamTokenGrant
}

// Name is the identity as shown in audit records.
func (id *Identity) Name() string {
	if id.AppToken {
		return "app-token:" + id.App + " (by " + id.Email + ")"
	}
	if id.Team != nil {
		return "team-token:" + id.Team.Team + "/" + id.Team.TokenID + " (by " + id.Email + ")"
	}
	return id.Email
}

const bcryptCost = 10

func HashPassword(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcryptCost)
	return string(h), err
}

func CheckPassword(hash, pw string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// NewSecret returns n random bytes, hex encoded.
func NewSecret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func TokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func tokenPath(hash string) string            { return "tokens/" + hash }
func userTokenPath(email, hash string) string { return "user-tokens/" + email + "/" + hash }
func appTokenPath(app, hash string) string    { return "app-tokens/" + app + "/" + hash }
func ResetPath(hash string) string            { return "resets/" + hash }

// IssueToken creates a token (256 random bits), keeps only its hash, and
// returns the token and its expiry.
func (s *Engine) IssueToken(ctx context.Context, email, kind, app string, ttl time.Duration) (string, time.Time, error) {
	return s.issue(ctx, email, kind, app, nil, ttl)
}

// AppTokenTTL is the lifetime of an app token asked for with "expires"
// (seconds; 0 = users.app_token_ttl). It is checked in seconds, before any
// conversion can overflow: more than users.max_token_ttl is refused, not
// cut short.
func (s *Engine) AppTokenTTL(secs int64) (time.Duration, error) {
	max := s.cfg.Users.MaxTokenTTLDur
	switch {
	case secs < 0:
		return 0, badRequest("expires must be a number of seconds, more than 0")
	case secs == 0:
		return s.cfg.Users.AppTokenTTLDur, nil
	case secs > int64(max/time.Second):
		return 0, badRequest("expires must be at most %d seconds (users.max_token_ttl = %s)", int64(max/time.Second), max)
	}
	return time.Duration(secs) * time.Second, nil
}

// IssueAppToken creates an app token for app, bound to this incarnation of
// the app (its creation time): an app re-created under the same name does
// not accept it. It is also indexed under the app, so that removing the app
// revokes it (RevokeAppTokens).
func (s *Engine) IssueAppToken(ctx context.Context, email string, app *state.App, ttl time.Duration) (string, time.Time, error) {
	return s.issue(ctx, email, tokenApp, app.Name, map[string]string{"app_created": app.Created.UTC().Format(time.RFC3339Nano)}, ttl)
}

func (s *Engine) issue(ctx context.Context, email, kind, app string, extra map[string]string, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 || ttl > s.cfg.Users.MaxTokenTTLDur {
		return "", time.Time{}, badRequest("a token's lifetime must be more than 0 and at most %s (users.max_token_ttl)", s.cfg.Users.MaxTokenTTLDur)
	}
	tok := NewSecret(32)
	h := TokenHash(tok)
	exp := time.Now().Add(ttl).UTC()
	data := map[string]string{
		"email": email, "kind": kind, "app": app,
		"created": time.Now().UTC().Format(time.RFC3339), "expires": exp.Format(time.RFC3339),
	}
	for k, v := range extra {
		data[k] = v
	}
	// The indexes first, then the token itself: a token that works is
	// always found by RevokeUserTokens and RevokeAppTokens.
	if _, err := s.secrets.Put(ctx, userTokenPath(email, h), map[string]string{"kind": kind}); err != nil {
		return "", time.Time{}, err
	}
	if kind == tokenApp {
		if _, err := s.secrets.Put(ctx, appTokenPath(app, h), map[string]string{"email": email}); err != nil {
			_ = s.secrets.Delete(ctx, userTokenPath(email, h))
			return "", time.Time{}, err
		}
	}
	if _, err := s.secrets.Put(ctx, tokenPath(h), data); err != nil {
		_ = s.secrets.Delete(ctx, userTokenPath(email, h))
		if kind == tokenApp {
			_ = s.secrets.Delete(ctx, appTokenPath(app, h))
		}
		return "", time.Time{}, err
	}
	return tok, exp, nil
}

// RevokeToken deletes a token by hash, with its index entries.
func (s *Engine) RevokeToken(ctx context.Context, email, hash string) error {
	app := ""
	if sec, err := s.secrets.Get(ctx, tokenPath(hash), 0); err == nil {
		if sec.Data["kind"] == tokenApp {
			app = sec.Data["app"]
		}
		if e := sec.Data["email"]; e != "" {
			email = e
		}
	} else if !errors.Is(err, backends.ErrNotFound) {
		return err
	}
	if err := s.secrets.Delete(ctx, tokenPath(hash)); err != nil {
		return err
	}
	if app != "" {
		if err := s.secrets.Delete(ctx, appTokenPath(app, hash)); err != nil {
			return err
		}
	}
	if email == "" {
		return nil
	}
	return s.secrets.Delete(ctx, userTokenPath(email, hash))
}

// RevokeUserTokens deletes every token of a user (of a kind; "" = all).
func (s *Engine) RevokeUserTokens(ctx context.Context, email, kind string) error {
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
		if err := s.RevokeToken(ctx, email, h); err != nil {
			return err
		}
	}
	return nil
}

// RevokeAppTokens deletes every app token of an app (when it is removed).
func (s *Engine) RevokeAppTokens(ctx context.Context, app string) error {
	paths, err := s.secrets.List(ctx, "app-tokens/"+app+"/")
	if err != nil {
		return err
	}
	for _, p := range paths {
		h := p[strings.LastIndexByte(p, '/')+1:]
		email := ""
		if sec, err := s.secrets.Get(ctx, p, 0); err == nil {
			email = sec.Data["email"]
		}
		if err := s.RevokeToken(ctx, email, h); err != nil {
			return err
		}
		// RevokeToken finds the index entry through the token; if the token
		// itself is already gone, drop the entry here.
		if err := s.secrets.Delete(ctx, p); err != nil {
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

// Authenticate resolves the request's token. No token is (nil, nil); a
// token that is malformed, unknown or expired is a 401.
func (s *Engine) Authenticate(r *http.Request) (*Identity, error) {
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
	h := TokenHash(tok)
	sec, err := s.secrets.Get(r.Context(), tokenPath(h), 0)
	if errors.Is(err, backends.ErrNotFound) {
		return nil, unauthorized("invalid or expired token")
	}
	if err != nil {
		return nil, err
	}
	exp, err := time.Parse(time.RFC3339, sec.Data["expires"])
	if err != nil || time.Now().After(exp) {
		_ = s.RevokeToken(r.Context(), sec.Data["email"], h)
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
		if err := s.checkAppToken(r.Context(), sec, h, u); err != nil {
			return nil, err
		}
	} else if sec.Data["kind"] == tokenTeam {
		if id.Team, err = s.checkTeamToken(r.Context(), sec, h, u); err != nil {
			return nil, err
		}
	} else {
		id.Admin = u.Admin || s.cfg.IsAdmin(email)
	}
	return id, nil
}

// checkAppToken checks that an app token still stands: its app exists and
// is the one it was issued for (not a later app of the same name), and its
// creator still holds a role that may issue app tokens on it. A token of a
// removed app is revoked; one whose creator lost the role is refused but
// kept (it works again if the role is given back, until it expires).
func (s *Engine) checkAppToken(ctx context.Context, sec *backends.Secret, hash string, creator *state.User) error {
	email, name := sec.Data["email"], sec.Data["app"]
	app, err := state.GetApp(ctx, s.store, name)
	if errors.Is(err, state.ErrNotFound) {
		_ = s.RevokeToken(ctx, email, hash)
		return unauthorized("the app of this token (%q) no longer exists", name)
	}
	if err != nil {
		return err
	}
	if !sameIncarnation(sec.Data, app) {
		_ = s.RevokeToken(ctx, email, hash)
		return unauthorized("this token was issued for an earlier app named %q, which was removed", name)
	}
	by := &Identity{Email: email, Admin: creator.Admin || s.cfg.IsAdmin(email)}
	if err := s.Allowed(ctx, by, ActAppToken, app); err != nil {
		if errors.Is(err, ErrForbidden) || errors.Is(err, ErrUnauthenticated) {
			return forbidden("this app token's creator (%s) may no longer issue tokens for app %q, so the token is not accepted", email, name)
		}
		return err
	}
	return nil
}

// sameIncarnation reports whether an app token was issued for app as it is
// now, not for an app of the same name removed since. Tokens record the
// app's creation time; tokens issued before they did are accepted only if
// they are younger than the app.
func sameIncarnation(tok map[string]string, app *state.App) bool {
	if v, ok := tok["app_created"]; ok {
		t, err := time.Parse(time.RFC3339Nano, v)
		return err == nil && t.Equal(app.Created)
	}
	created, err := time.Parse(time.RFC3339, tok["created"])
	return err == nil && !created.Before(app.Created.Truncate(time.Second))
}
