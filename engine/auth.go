package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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

func hashPassword(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcryptCost)
	return string(h), err
}

func checkPassword(hash, pw string) bool {
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

func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// Authenticate resolves a token (as the HTTP layer found it in the
// request's headers). No token is (nil, nil); a token that is malformed,
// unknown or expired is an Unauthenticated error.
func (s *Engine) Authenticate(ctx context.Context, tok string) (*Identity, error) {
	if tok == "" {
		return nil, nil
	}
	if len(tok) > 256 {
		return nil, unauthorized("invalid token")
	}
	h := tokenHash(tok)
	data, err := s.tokenRecord(ctx, h)
	if errors.Is(err, backends.ErrNotFound) {
		return nil, unauthorized("invalid or expired token")
	}
	if err != nil {
		return nil, err
	}
	sec := &backends.Secret{Data: data} // read only
	exp, err := time.Parse(time.RFC3339, sec.Data["expires"])
	if err != nil || time.Now().After(exp) {
		_ = s.revokeToken(ctx, sec.Data["email"], h)
		return nil, unauthorized("invalid or expired token")
	}
	email := sec.Data["email"]
	u, _, err := s.users.Get(ctx, s.store, state.UserKey(email)) // shared: read only
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
		if err := s.checkAppToken(ctx, sec, h, u); err != nil {
			return nil, err
		}
	} else if sec.Data["kind"] == tokenTeam {
		if id.Team, err = s.checkTeamToken(ctx, sec, h, u); err != nil {
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
		_ = s.revokeToken(ctx, email, hash)
		return unauthorized("the app of this token (%q) no longer exists", name)
	}
	if err != nil {
		return err
	}
	if !sameIncarnation(sec.Data, app) {
		_ = s.revokeToken(ctx, email, hash)
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
