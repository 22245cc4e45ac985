package engine

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// Tokens: a token is 256 random bits; only its hash is kept, in Secrets
// (tokens/<hash>), with index entries per user (user-tokens/<email>/<hash>)
// and, for app tokens, per app (app-tokens/<app>/<hash>) so that removing
// a user or an app revokes its tokens.

func tokenPath(hash string) string            { return "tokens/" + hash }
func userTokenPath(email, hash string) string { return "user-tokens/" + email + "/" + hash }
func appTokenPath(app, hash string) string    { return "app-tokens/" + app + "/" + hash }
func resetPath(hash string) string            { return "resets/" + hash }

// IssueToken creates a token (256 random bits), keeps only its hash, and
// returns the token and its expiry.
func (s *Engine) IssueToken(ctx context.Context, email, kind, app string, ttl time.Duration) (string, time.Time, error) {
	return s.issue(ctx, email, kind, app, nil, ttl)
}

// appTokenTTL is the lifetime of an app token asked for with "expires"
// (seconds; 0 = users.app_token_ttl). It is checked in seconds, before any
// conversion can overflow: more than users.max_token_ttl is refused, not
// cut short.
func (s *Engine) appTokenTTL(secs int64) (time.Duration, error) {
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

// issueAppToken creates an app token for app, bound to this incarnation of
// the app (its creation time): an app re-created under the same name does
// not accept it. It is also indexed under the app, so that removing the app
// revokes it (revokeAppTokens).
func (s *Engine) issueAppToken(ctx context.Context, email string, app *state.App, ttl time.Duration) (string, time.Time, error) {
	return s.issue(ctx, email, tokenApp, app.Name, map[string]string{"app_created": app.Created.UTC().Format(time.RFC3339Nano)}, ttl)
}

func (s *Engine) issue(ctx context.Context, email, kind, app string, extra map[string]string, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 || ttl > s.cfg.Users.MaxTokenTTLDur {
		return "", time.Time{}, badRequest("a token's lifetime must be more than 0 and at most %s (users.max_token_ttl)", s.cfg.Users.MaxTokenTTLDur)
	}
	tok := NewSecret(32)
	h := tokenHash(tok)
	exp := time.Now().Add(ttl).UTC()
	data := map[string]string{
		"email": email, "kind": kind, "app": app,
		"created": time.Now().UTC().Format(time.RFC3339), "expires": exp.Format(time.RFC3339),
	}
	for k, v := range extra {
		data[k] = v
	}
	// The indexes first, then the token itself: a token that works is
	// always found by revokeUserTokens and revokeAppTokens.
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

// revokeToken deletes a token by hash, with its index entries.
func (s *Engine) revokeToken(ctx context.Context, email, hash string) error {
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
	// Every server drops the records it keeps (tokencache.go).
	if err := s.noteRevocation(ctx, hash); err != nil {
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

// revokeUserTokens deletes every token of a user (of a kind; "" = all).
func (s *Engine) revokeUserTokens(ctx context.Context, email, kind string) error {
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

// revokeAppTokens deletes every app token of an app (when it is removed).
func (s *Engine) revokeAppTokens(ctx context.Context, app string) error {
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
		if err := s.revokeToken(ctx, email, h); err != nil {
			return err
		}
		// revokeToken finds the index entry through the token; if the token
		// itself is already gone, drop the entry here.
		if err := s.secrets.Delete(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// AppToken is an app token as issued: the token itself (shown once), its
// app and its expiry.
type AppToken struct {
	Token   string
	App     string
	Expires time.Time
}

// CreateAppToken issues a token that acts on app only, for expires
// seconds (0 = users.app_token_ttl). The caller needs ActAppToken on the
// app; an app token cannot create tokens.
func (s *Engine) CreateAppToken(ctx context.Context, id *Identity, app string, expires int64) (*AppToken, error) {
	if app == "" {
		return nil, badRequest("appname is required")
	}
	if err := names.App(app); err != nil {
		return nil, err
	}
	if id == nil {
		return nil, unauthorized("authentication required")
	}
	if id.AppToken {
		return nil, forbidden("an app token cannot create tokens")
	}
	a, err := s.LoadApp(ctx, id, app, ActAppToken)
	if err != nil {
		return nil, err
	}
	ttl, err := s.appTokenTTL(expires)
	if err != nil {
		return nil, err
	}
	tok, exp, err := s.issueAppToken(ctx, id.Email, a, ttl)
	if err != nil {
		return nil, err
	}
	return &AppToken{Token: tok, App: a.Name, Expires: exp}, nil
}
