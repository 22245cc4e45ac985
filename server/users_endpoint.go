package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// maxPasswordBytes is bcrypt's limit: it refuses longer input (and would
// ignore everything past it if it did not).
const maxPasswordBytes = 72

func checkPasswordLength(field, pw string) error {
	if n := len([]rune(pw)); n < 6 || n > 50 {
		return badRequest("%s must be between 6 and 50 characters", field)
	}
	if len(pw) > maxPasswordBytes {
		return badRequest("%s must be at most %d bytes in UTF-8 (it is %d): bcrypt's limit", field, maxPasswordBytes, len(pw))
	}
	return nil
}

// CreateUser makes an account. It is used by POST /users and by the
// operator command `berth admin create-user` (which opens the Store itself).
func CreateUser(ctx context.Context, st backends.Store, email, password string, admin bool) (*state.User, error) {
	email, err := names.Email(email)
	if err != nil {
		return nil, err
	}
	if err := checkPasswordLength("password", password); err != nil {
		return nil, err
	}
	h, err := engine.HashPassword(password)
	if err != nil {
		return nil, err
	}
	u := &state.User{Email: email, PasswordHash: h, Admin: admin, Created: time.Now().UTC()}
	if _, err := state.Create(ctx, st, state.UserKey(email), u); err != nil {
		if errors.Is(err, state.ErrExists) {
			return nil, conflict("a user with email %s already exists", email)
		}
		return nil, err
	}
	return u, nil
}

// POST /users {"email","password"}
func (s *Server) createUser(c *call) (any, error) {
	if !*s.cfg.Users.OpenRegistration && (c.id == nil || !c.id.Admin) {
		return nil, forbidden("registration is closed: ask an admin to create your account")
	}
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	// An email config lists in admins is a site admin as soon as its
	// account exists, so only an admin (or the operator, with `berth admin
	// create-user`) may create that account.
	if s.cfg.IsAdmin(in.Email) && (c.id == nil || !c.id.Admin) {
		c.target = in.Email
		return nil, forbidden("%s is a configured site admin: its account can only be created by an admin or with 'berth admin create-user'", in.Email)
	}
	if c.id == nil || !c.id.Admin {
		if ok, wait := s.limits.registerIP.take(clientIP(c.r)); !ok {
			return nil, tooMany(c, wait, "registrations from your address")
		}
	}
	u, err := CreateUser(c.ctx(), s.store, in.Email, in.Password, false)
	if err != nil {
		return nil, err
	}
	c.target = u.Email
	return map[string]any{"email": u.Email, "created": u.Created}, nil
}

// emailParam validates the :email path parameter.
func emailParam(c *call) (string, error) {
	return names.Email(c.param("email"))
}

// POST /users/:email/tokens {"password"} -> {"token"}
//
// An unknown email and a wrong password get the same answer (401) after the
// same work (a bcrypt comparison), so that logins do not tell which emails
// have accounts. Failed attempts are rate limited per client IP and per
// account (limits.login_*): a refused attempt does no bcrypt work, and a
// successful one costs nothing against either limit.
func (s *Server) login(c *call) (any, error) {
	var in struct {
		Password *string `json:"password"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if in.Password == nil || *in.Password == "" {
		return nil, badRequest("password is required")
	}
	email, err := emailParam(c)
	if err != nil {
		return nil, err
	}
	c.target = email
	ip := clientIP(c.r)
	ipT, wait := s.limits.loginIP.admit(ip)
	if ipT == nil {
		return nil, tooMany(c, wait, "failed logins from your address")
	}
	known := email + " " + ip
	var acctT *ticket
	if !s.limits.known.has(known) {
		if acctT, wait = s.limits.loginAccount.admit(email); acctT == nil {
			ipT.done(false)
			return nil, tooMany(c, wait, "failed logins for this account")
		}
	}
	// counted ends the attempt: a failure counts against both limits.
	counted := func(failed bool) {
		ipT.done(failed)
		if acctT != nil {
			acctT.done(failed)
		}
	}
	defer counted(false) // a panic or an early return does not leak a ticket (done runs once)
	u, _, err := state.Get[state.User](c.ctx(), s.store, state.UserKey(email))
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		counted(false)
		return nil, err
	}
	if err != nil {
		engine.CheckPassword(dummyHash(), *in.Password) // the same work as for a real account
		counted(true)
		return nil, unauthorized("wrong email or password")
	}
	if !engine.CheckPassword(u.PasswordHash, *in.Password) {
		counted(true)
		return nil, unauthorized("wrong email or password")
	}
	counted(false)
	s.limits.known.add(known)
	tok, exp, err := s.eng.IssueToken(c.ctx(), email, engine.TokenUser, "", s.cfg.Users.TokenTTLDur)
	if err != nil {
		return nil, err
	}
	return map[string]any{"token": tok, "expires": exp, "is_admin": u.Admin || s.cfg.IsAdmin(email)}, nil
}

var (
	dummyOnce sync.Once
	dummy     string
)

// dummyHash is a bcrypt hash of a random password, compared against for
// unknown accounts.
func dummyHash() string {
	dummyOnce.Do(func() {
		h, err := engine.HashPassword(engine.NewSecret(16))
		if err != nil {
			panic(err)
		}
		dummy = h
	})
	return dummy
}

// DELETE /users/tokens — logout: the token used stops working at once.
func (s *Server) logout(c *call) (any, error) {
	if c.id.AppToken {
		return nil, forbidden("an app token cannot log out; it expires by itself")
	}
	if err := s.eng.RevokeToken(c.ctx(), c.id.Email, c.id.TokenHash); err != nil {
		return nil, err
	}
	c.target = c.id.Email
	return nil, nil
}

// currentUser loads the caller's user record (not for app tokens).
func (s *Server) currentUser(c *call) (*state.User, uint64, error) {
	if c.id.AppToken {
		return nil, 0, forbidden("an app token cannot manage a user account")
	}
	u, idx, err := state.Get[state.User](c.ctx(), s.store, state.UserKey(c.id.Email))
	if errors.Is(err, state.ErrNotFound) {
		return nil, 0, unauthorized("your user no longer exists")
	}
	return u, idx, err
}

// PUT /users/password {"old","new"}
func (s *Server) changePassword(c *call) (any, error) {
	var in struct {
		Old *string `json:"old"`
		New *string `json:"new"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if in.Old == nil || *in.Old == "" || in.New == nil || *in.New == "" {
		return nil, badRequest("both old and new passwords are required")
	}
	if err := checkPasswordLength("new password", *in.New); err != nil {
		return nil, err
	}
	if _, _, err := s.currentUser(c); err != nil {
		return nil, err
	}
	// Wrong old passwords count against the account's login limit: a
	// stolen token is no way around it to guess the password.
	t, wait := s.limits.loginAccount.admit(c.id.Email)
	if t == nil {
		return nil, tooMany(c, wait, "failed password checks for this account")
	}
	failed := false
	defer func() { t.done(failed) }()
	h, err := engine.HashPassword(*in.New)
	if err != nil {
		return nil, err
	}
	c.target = c.id.Email
	_, _, err = state.Update(c.ctx(), s.store, state.UserKey(c.id.Email), func(u *state.User) error {
		if !engine.CheckPassword(u.PasswordHash, *in.Old) {
			failed = true
			return forbidden("the old password does not match")
		}
		failed = false
		u.PasswordHash = h
		return nil
	})
	if err != nil {
		return nil, err
	}
	return nil, nil
}

// POST /users/:email/password[?token=] — without a token, mail a one-time
// reset token; with a valid one, set a new random password and mail it.
func (s *Server) resetPassword(c *call) (any, error) {
	email, err := emailParam(c)
	if err != nil {
		return nil, err
	}
	c.target = email
	if ok, wait := s.limits.resetIP.take(clientIP(c.r)); !ok {
		return nil, tooMany(c, wait, "password reset requests from your address")
	}
	_, _, err = state.Get[state.User](c.ctx(), s.store, state.UserKey(email))
	exists := err == nil
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	tok := c.r.URL.Query().Get("token")
	if tok == "" {
		// The same answer whether the account exists or not, and whether
		// its reset mails are throttled (limits.reset_mail_*) or not.
		answer := map[string]string{"status": "if " + email + " has an account, a reset token was sent to it"}
		if ok, _ := s.limits.resetMail.take(email); !ok || !exists {
			c.log.Debug("no reset mail sent", "exists", exists, "throttled", !ok)
			return answer, nil
		}
		reset := engine.NewSecret(20)
		exp := time.Now().Add(s.cfg.Users.ResetTokenTTLDur).UTC()
		if _, err := s.secrets.Put(c.ctx(), engine.ResetPath(engine.TokenHash(reset)), map[string]string{"email": email, "expires": exp.Format(time.RFC3339)}); err != nil {
			return nil, err
		}
		body := fmt.Sprintf("Someone asked to reset the Berth password of %s.\n\nTo get a new password, call:\n\n  POST /users/%s/password?token=%s\n\nThis token works once and expires at %s. If you did not ask for this, ignore this message.\n",
			email, email, reset, exp.Format(time.RFC3339))
		if err := s.eng.Mailer().Send(c.ctx(), email, "Berth password reset", body); err != nil {
			return nil, fmt.Errorf("sending the reset mail: %w", err)
		}
		return answer, nil
	}
	if !exists {
		return nil, forbidden("invalid, used or expired reset token")
	}
	path := engine.ResetPath(engine.TokenHash(tok))
	sec, err := s.secrets.Get(c.ctx(), path, 0)
	if errors.Is(err, backends.ErrNotFound) {
		return nil, forbidden("invalid, used or expired reset token")
	}
	if err != nil {
		return nil, err
	}
	exp, perr := time.Parse(time.RFC3339, sec.Data["expires"])
	if sec.Data["email"] != email || perr != nil || time.Now().After(exp) {
		if perr != nil || time.Now().After(exp) {
			_ = s.secrets.Delete(c.ctx(), path)
		}
		return nil, forbidden("invalid, used or expired reset token")
	}
	if err := s.secrets.Delete(c.ctx(), path); err != nil {
		return nil, err
	}
	newPw := engine.NewSecret(8)
	h, err := engine.HashPassword(newPw)
	if err != nil {
		return nil, err
	}
	if _, _, err := state.Update(c.ctx(), s.store, state.UserKey(email), func(u *state.User) error {
		u.PasswordHash = h
		return nil
	}); err != nil {
		return nil, err
	}
	if err := s.eng.RevokeUserTokens(c.ctx(), email, engine.TokenUser); err != nil {
		return nil, err
	}
	body := fmt.Sprintf("Your Berth password was reset. Your new password is:\n\n  %s\n\nLog in and change it with PUT /users/password.\n", newPw)
	if err := s.eng.Mailer().Send(c.ctx(), email, "Your new Berth password", body); err != nil {
		return nil, fmt.Errorf("sending the new password: %w", err)
	}
	return map[string]string{"status": "a new password was sent to " + email}, nil
}

// DELETE /users — engine.Remove the caller's account, its tokens, its team
// memberships and its maintainer roles (so that whoever registers the email
// next inherits nothing). Refused while the user still owns apps, or is the
// last owner of one (they would be orphaned). The service instances the
// user created are handed to their teams (refused, 409, while one has no
// team); ownership is checked by the user's ID, so the email registered
// again owns none of them.
func (s *Server) removeUser(c *call) (any, error) {
	u, idx, err := s.currentUser(c)
	if err != nil {
		return nil, err
	}
	if u.Owned > 0 {
		return nil, forbidden("you still own %d app(s): engine.Remove them or hand them over first", u.Owned)
	}
	c.target = u.Email
	apps, err := state.List[state.App](c.ctx(), s.store, state.AppsPrefix)
	if err != nil {
		return nil, err
	}
	for _, a := range apps {
		if a.Maintainers[u.Email] == state.RoleOwner && owners(a) == 1 {
			return nil, forbidden("you are the last owner of app %q: make someone else an owner or engine.Remove the app first", a.Name)
		}
	}
	// Service instances the user created go to their teams; one with no
	// team would be left to no one.
	if lone, err := s.eng.InstancesWithoutTeam(c.ctx(), u); err != nil {
		return nil, err
	} else if len(lone) > 0 {
		return nil, conflict("you own service instance(s) %s, which have no team to hand them to: engine.Remove them first", engine.QuoteList(lone))
	}
	ok, _, err := s.store.DeleteCAS(c.ctx(), state.UserKey(u.Email), idx)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, conflict("your account changed meanwhile; try again")
	}
	if err := s.eng.RevokeUserTokens(c.ctx(), u.Email, ""); err != nil {
		return nil, err
	}
	// The account is gone, so no one can add it to a team or an app any
	// more: sweep what it still has. Everything is tried; the first failure
	// is reported.
	var failed error
	note := func(what, name string, err error) {
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			c.log.Error("removing a user: could not drop it from "+what, what, name, "user", u.Email, "error", err)
			if failed == nil {
				failed = err
			}
		}
	}
	note("service instances", u.Email, s.eng.HandOverInstances(c.ctx(), u))
	teams, err := state.List[state.Team](c.ctx(), s.store, state.TeamsPrefix)
	if err != nil {
		return nil, err
	}
	for _, t := range teams {
		if engine.Contains(t.Users, u.Email) {
			_, _, err := state.Update(c.ctx(), s.store, state.TeamKey(t.Name), func(t *state.Team) error {
				t.Users = engine.Remove(t.Users, u.Email)
				return nil
			})
			note("team", t.Name, err)
		}
	}
	// Listed again: a maintainer added before the account was deleted is
	// seen here.
	apps, err = state.List[state.App](c.ctx(), s.store, state.AppsPrefix)
	if err != nil {
		return nil, err
	}
	for _, a := range apps {
		if _, ok := a.Maintainers[u.Email]; ok {
			_, _, err := state.Update(c.ctx(), s.store, state.AppKey(a.Name), func(a *state.App) error {
				delete(a.Maintainers, u.Email)
				return nil
			})
			note("app", a.Name, err)
		}
	}
	return nil, failed
}

// owners counts the owners among an app's maintainers.
func owners(a *state.App) int {
	n := 0
	for _, r := range a.Maintainers {
		if r == state.RoleOwner {
			n++
		}
	}
	return n
}

// parseKey parses an SSH public key in authorized_keys form.
func parseKey(text string) (ssh.PublicKey, string, error) {
	if len(text) > 16<<10 {
		return nil, "", badRequest("key is too large")
	}
	pk, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(text)))
	if err != nil || len(strings.TrimSpace(string(rest))) > 0 {
		return nil, "", badRequest("key is not an SSH public key in authorized_keys form (e.g. 'ssh-ed25519 AAAA... me@host')")
	}
	return pk, comment, nil
}

func fingerprint(pk ssh.PublicKey) string {
	sum := sha256.Sum256(pk.Marshal())
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

type keyBody struct {
	Key  string `json:"key"`
	Name string `json:"name"`
}

// POST /users/keys {"key"[, "name"]}
func (s *Server) addKey(c *call) (any, error) {
	var in keyBody
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	pk, comment, err := parseKey(in.Key)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.currentUser(c); err != nil {
		return nil, err
	}
	name := in.Name
	if name == "" {
		name = comment
	}
	if len(name) > 256 || release.HasControl(name, false) {
		return nil, badRequest("a key's name must be at most 256 characters, without control characters")
	}
	fp := fingerprint(pk)
	c.target = c.id.Email
	_, _, err = state.Update(c.ctx(), s.store, state.UserKey(c.id.Email), func(u *state.User) error {
		for _, k := range u.Keys {
			if k.Fingerprint == fp {
				return conflict("this key is already added (%s)", fp)
			}
			if name != "" && k.Name == name {
				return conflict("a key named %q already exists", name)
			}
		}
		u.Keys = append(u.Keys, state.SSHKey{Name: name, Fingerprint: fp, Key: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"fingerprint": fp, "name": name}, nil
}

// DELETE /users/keys {"key"} (or {"name"})
func (s *Server) removeKey(c *call) (any, error) {
	var in keyBody
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	fp := ""
	if in.Key != "" {
		pk, _, err := parseKey(in.Key)
		if err != nil {
			return nil, err
		}
		fp = fingerprint(pk)
	} else if in.Name == "" {
		return nil, badRequest("key (or name) is required")
	}
	if _, _, err := s.currentUser(c); err != nil {
		return nil, err
	}
	c.target = c.id.Email
	_, _, err := state.Update(c.ctx(), s.store, state.UserKey(c.id.Email), func(u *state.User) error {
		for i, k := range u.Keys {
			if (fp != "" && k.Fingerprint == fp) || (fp == "" && k.Name == in.Name) {
				u.Keys = append(u.Keys[:i], u.Keys[i+1:]...)
				return nil
			}
		}
		return notFound("no such key")
	})
	return nil, err
}

// GET /users/keys — the caller's keys.
func (s *Server) listKeys(c *call) (any, error) {
	u, _, err := s.currentUser(c)
	if err != nil {
		return nil, err
	}
	if u.Keys == nil {
		return []state.SSHKey{}, nil
	}
	return u.Keys, nil
}

// GET /users/info — who the caller is.
func (s *Server) whoami(c *call) (any, error) {
	return map[string]any{"email": c.id.Email, "is_admin": c.id.Admin, "app_token": c.id.AppToken, "app": c.id.App}, nil
}
