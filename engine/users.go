package engine

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
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// Admit is the caller's rate limit on an attempt that an attacker would
// repeat (a password comparison, a registration). The engine calls it
// with the account concerned (a valid email) just before that work, and
// only for the attempts the limits apply to; an error refuses the attempt. done is then called once, with whether the
// attempt failed on a wrong password: an account lockout counts those
// only, so that its owner, who knows the password, is not locked out. A
// nil Admit admits everything.
type Admit func(account string) (done func(failed bool), err error)

func (a Admit) admit(account string) (func(bool), error) {
	if a == nil {
		return func(bool) {}, nil
	}
	done, err := a(account)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func(failed bool) { once.Do(func() { done(failed) }) }, nil
}

// ErrWrongPassword is matched (errors.Is) by the error of an attempt
// refused for a wrong password (or, for a login, an unknown account): the
// attempts an account lockout counts.
var ErrWrongPassword = errors.New("wrong password")

// passwordError is a domain error that is also ErrWrongPassword.
type passwordError struct{ err *Error }

func (e *passwordError) Error() string   { return e.err.Msg }
func (e *passwordError) Unwrap() []error { return []error{e.err, ErrWrongPassword} }

func wrongPassword(e *Error) error { return &passwordError{e} }

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

// CreateUser makes an account in st. It is what registration does, and
// what the operator command `berth admin create-user` runs (it opens the
// Store itself, with no Engine). An existing account is a Conflict.
func CreateUser(ctx context.Context, st backends.Store, email, password string, admin bool) (*state.User, error) {
	email, err := names.Email(email)
	if err != nil {
		return nil, err
	}
	if err := checkPasswordLength("password", password); err != nil {
		return nil, err
	}
	h, err := hashPassword(password)
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

// Register creates an account for email. Anyone may while
// users.open_registration is set (id nil), else only site admins; an email
// that the config lists in admins is a site admin as soon as its account
// exists, so only an admin (or the operator) may create that account.
// Registrations by others than admins pass admit.
func (s *Engine) Register(ctx context.Context, id *Identity, email, password string, admit Admit) (*state.User, error) {
	isAdmin := id != nil && id.Admin
	if !*s.cfg.Users.OpenRegistration && !isAdmin {
		return nil, forbidden("registration is closed: ask an admin to create your account")
	}
	if s.cfg.IsAdmin(email) && !isAdmin {
		return nil, forbidden("%s is a configured site admin: its account can only be created by an admin or with 'berth admin create-user'", email)
	}
	if !isAdmin {
		done, err := admit.admit(email)
		if err != nil {
			return nil, err
		}
		done(false)
	}
	return CreateUser(ctx, s.store, email, password, false)
}

// Login is a user token, as issued by Login.
type Login struct {
	Token   string
	Expires time.Time
	Admin   bool // a site admin (by record or by config)
}

// Login checks a user's password and issues a user token
// (users.token_ttl). An unknown email and a wrong password get the same
// error (Unauthenticated, ErrWrongPassword) after the same work (a bcrypt
// comparison), so that logins do not tell which emails have accounts.
// Every attempt passes admit first.
func (s *Engine) Login(ctx context.Context, email, password string, admit Admit) (*Login, error) {
	if password == "" {
		return nil, badRequest("password is required")
	}
	email, err := names.Email(email)
	if err != nil {
		return nil, err
	}
	done, err := admit.admit(email)
	if err != nil {
		return nil, err
	}
	defer done(false) // a panic or an early return does not leak the attempt
	u, _, err := state.Get[state.User](ctx, s.store, state.UserKey(email))
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	if err != nil {
		checkPassword(dummyHash(), password) // the same work as for a real account
		done(true)
		return nil, wrongPassword(unauthorized("wrong email or password"))
	}
	if !checkPassword(u.PasswordHash, password) {
		done(true)
		return nil, wrongPassword(unauthorized("wrong email or password"))
	}
	done(false)
	tok, exp, err := s.IssueToken(ctx, email, TokenUser, "", s.cfg.Users.TokenTTLDur)
	if err != nil {
		return nil, err
	}
	return &Login{Token: tok, Expires: exp, Admin: u.Admin || s.cfg.IsAdmin(email)}, nil
}

var (
	dummyOnce sync.Once
	dummy     string
)

// dummyHash is a bcrypt hash of a random password, compared against for
// unknown accounts.
func dummyHash() string {
	dummyOnce.Do(func() {
		h, err := hashPassword(NewSecret(16))
		if err != nil {
			panic(err)
		}
		dummy = h
	})
	return dummy
}

// Logout revokes the token the caller used: it stops working at once.
func (s *Engine) Logout(ctx context.Context, id *Identity) error {
	if id == nil {
		return unauthorized("authentication required")
	}
	if id.AppToken {
		return forbidden("an app token cannot log out; it expires by itself")
	}
	return s.revokeToken(ctx, id.Email, id.TokenHash)
}

// currentUser loads the caller's user record (not for app tokens).
func (s *Engine) currentUser(ctx context.Context, id *Identity) (*state.User, uint64, error) {
	if id == nil {
		return nil, 0, unauthorized("authentication required")
	}
	if id.AppToken {
		return nil, 0, forbidden("an app token cannot manage a user account")
	}
	u, idx, err := state.Get[state.User](ctx, s.store, state.UserKey(id.Email))
	if errors.Is(err, state.ErrNotFound) {
		return nil, 0, unauthorized("your user no longer exists")
	}
	return u, idx, err
}

// ChangePassword sets the caller's password to newPw if old is the
// current one. The check passes admit: a stolen token is no way around
// the account's lockout to guess the password. A wrong old password is
// Forbidden (and ErrWrongPassword).
func (s *Engine) ChangePassword(ctx context.Context, id *Identity, old, newPw string, admit Admit) error {
	if old == "" || newPw == "" {
		return badRequest("both old and new passwords are required")
	}
	if err := checkPasswordLength("new password", newPw); err != nil {
		return err
	}
	if _, _, err := s.currentUser(ctx, id); err != nil {
		return err
	}
	done, err := admit.admit(id.Email)
	if err != nil {
		return err
	}
	failed := false
	defer func() { done(failed) }()
	h, err := hashPassword(newPw)
	if err != nil {
		return err
	}
	_, _, err = state.Update(ctx, s.store, state.UserKey(id.Email), func(u *state.User) error {
		if !checkPassword(u.PasswordHash, old) {
			failed = true
			return wrongPassword(forbidden("the old password does not match"))
		}
		failed = false
		u.PasswordHash = h
		return nil
	})
	return err
}

// RequestPasswordReset mails a one-time reset token (users.reset_token_ttl)
// to email if it has an account and mail is true (the caller's throttle of
// reset mails). Whether a mail was sent is not told: the answer is the same
// for every email.
func (s *Engine) RequestPasswordReset(ctx context.Context, email string, mail bool) error {
	email, err := names.Email(email)
	if err != nil {
		return err
	}
	exists, err := s.userExists(ctx, email)
	if err != nil {
		return err
	}
	if !mail || !exists {
		s.log.Debug("no reset mail sent", "exists", exists, "throttled", !mail)
		return nil
	}
	reset := NewSecret(20)
	exp := time.Now().Add(s.cfg.Users.ResetTokenTTLDur).UTC()
	if _, err := s.secrets.Put(ctx, resetPath(tokenHash(reset)), map[string]string{"email": email, "expires": exp.Format(time.RFC3339)}); err != nil {
		return err
	}
	body := fmt.Sprintf("Someone asked to reset the Berth password of %s.\n\nTo get a new password, call:\n\n  POST /users/%s/password?token=%s\n\nThis token works once and expires at %s. If you did not ask for this, ignore this message.\n",
		email, email, reset, exp.Format(time.RFC3339))
	if err := s.mailer.Send(ctx, email, "Berth password reset", body); err != nil {
		return fmt.Errorf("sending the reset mail: %w", err)
	}
	return nil
}

func (s *Engine) userExists(ctx context.Context, email string) (bool, error) {
	_, _, err := state.Get[state.User](ctx, s.store, state.UserKey(email))
	if errors.Is(err, state.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// ResetPassword uses a reset token: it sets a new random password for
// email, revokes its user tokens and mails the password. The token works
// once; an invalid, used or expired one is Forbidden.
func (s *Engine) ResetPassword(ctx context.Context, email, token string) error {
	email, err := names.Email(email)
	if err != nil {
		return err
	}
	exists, err := s.userExists(ctx, email)
	if err != nil {
		return err
	}
	if !exists {
		return forbidden("invalid, used or expired reset token")
	}
	path := resetPath(tokenHash(token))
	sec, err := s.secrets.Get(ctx, path, 0)
	if errors.Is(err, backends.ErrNotFound) {
		return forbidden("invalid, used or expired reset token")
	}
	if err != nil {
		return err
	}
	exp, perr := time.Parse(time.RFC3339, sec.Data["expires"])
	if sec.Data["email"] != email || perr != nil || time.Now().After(exp) {
		if perr != nil || time.Now().After(exp) {
			_ = s.secrets.Delete(ctx, path)
		}
		return forbidden("invalid, used or expired reset token")
	}
	if err := s.secrets.Delete(ctx, path); err != nil {
		return err
	}
	newPw := NewSecret(8)
	h, err := hashPassword(newPw)
	if err != nil {
		return err
	}
	if _, _, err := state.Update(ctx, s.store, state.UserKey(email), func(u *state.User) error {
		u.PasswordHash = h
		return nil
	}); err != nil {
		return err
	}
	if err := s.revokeUserTokens(ctx, email, TokenUser); err != nil {
		return err
	}
	body := fmt.Sprintf("Your Berth password was reset. Your new password is:\n\n  %s\n\nLog in and change it with PUT /users/password.\n", newPw)
	if err := s.mailer.Send(ctx, email, "Your new Berth password", body); err != nil {
		return fmt.Errorf("sending the new password: %w", err)
	}
	return nil
}

// RemoveUser removes the caller's account, its tokens, its team
// memberships and its maintainer roles (so that whoever registers the
// email next inherits nothing). Refused while the user still owns apps,
// or is the last owner of one (they would be orphaned). The service
// instances the user created are handed to their teams (Conflict while one
// has no team); ownership is checked by the user's ID, so the email
// registered again owns none of them.
func (s *Engine) RemoveUser(ctx context.Context, id *Identity) error {
	u, idx, err := s.currentUser(ctx, id)
	if err != nil {
		return err
	}
	if u.Owned > 0 {
		return forbidden("you still own %d app(s): remove them or hand them over first", u.Owned)
	}
	apps, err := state.List[state.App](ctx, s.store, state.AppsPrefix)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if a.Maintainers[u.Email] == state.RoleOwner && owners(a) == 1 {
			return forbidden("you are the last owner of app %q: make someone else an owner or remove the app first", a.Name)
		}
	}
	// Service instances the user created go to their teams; one with no
	// team would be left to no one.
	if lone, err := s.instancesWithoutTeam(ctx, u); err != nil {
		return err
	} else if len(lone) > 0 {
		return conflict("you own service instance(s) %s, which have no team to hand them to: remove them first", quoteList(lone))
	}
	ok, _, err := s.store.DeleteCAS(ctx, state.UserKey(u.Email), idx)
	if err != nil {
		return err
	}
	if !ok {
		return conflict("your account changed meanwhile; try again")
	}
	if err := s.revokeUserTokens(ctx, u.Email, ""); err != nil {
		return err
	}
	// The account is gone, so no one can add it to a team or an app any
	// more: sweep what it still has. Everything is tried; the first failure
	// is reported.
	var failed error
	note := func(what, name string, err error) {
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			s.log.Error("removing a user: could not drop it from "+what, what, name, "user", u.Email, "error", err)
			if failed == nil {
				failed = err
			}
		}
	}
	note("service instances", u.Email, s.handOverInstances(ctx, u))
	teams, err := state.List[state.Team](ctx, s.store, state.TeamsPrefix)
	if err != nil {
		return err
	}
	for _, t := range teams {
		if Contains(t.Users, u.Email) {
			_, _, err := state.Update(ctx, s.store, state.TeamKey(t.Name), func(t *state.Team) error {
				t.Users = Remove(t.Users, u.Email)
				return nil
			})
			note("team", t.Name, err)
		}
	}
	// Listed again: a maintainer added before the account was deleted is
	// seen here.
	apps, err = state.List[state.App](ctx, s.store, state.AppsPrefix)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if _, ok := a.Maintainers[u.Email]; ok {
			_, _, err := state.Update(ctx, s.store, state.AppKey(a.Name), func(a *state.App) error {
				delete(a.Maintainers, u.Email)
				return nil
			})
			note("app", a.Name, err)
		}
	}
	return failed
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

// AddKey adds an SSH public key (authorized_keys form) to the caller's
// account, named name (default: the key's comment). A key or a name
// already there is a Conflict.
func (s *Engine) AddKey(ctx context.Context, id *Identity, key, name string) (*state.SSHKey, error) {
	pk, comment, err := parseKey(key)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.currentUser(ctx, id); err != nil {
		return nil, err
	}
	if name == "" {
		name = comment
	}
	if len(name) > 256 || release.HasControl(name, false) {
		return nil, badRequest("a key's name must be at most 256 characters, without control characters")
	}
	k := state.SSHKey{Name: name, Fingerprint: fingerprint(pk), Key: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))}
	_, _, err = state.Update(ctx, s.store, state.UserKey(id.Email), func(u *state.User) error {
		for _, x := range u.Keys {
			if x.Fingerprint == k.Fingerprint {
				return conflict("this key is already added (%s)", k.Fingerprint)
			}
			if name != "" && x.Name == name {
				return conflict("a key named %q already exists", name)
			}
		}
		u.Keys = append(u.Keys, k)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// RemoveKey removes one of the caller's keys, given as the key itself or,
// if key is "", by name.
func (s *Engine) RemoveKey(ctx context.Context, id *Identity, key, name string) error {
	fp := ""
	if key != "" {
		pk, _, err := parseKey(key)
		if err != nil {
			return err
		}
		fp = fingerprint(pk)
	} else if name == "" {
		return badRequest("key (or name) is required")
	}
	if _, _, err := s.currentUser(ctx, id); err != nil {
		return err
	}
	_, _, err := state.Update(ctx, s.store, state.UserKey(id.Email), func(u *state.User) error {
		for i, k := range u.Keys {
			if (fp != "" && k.Fingerprint == fp) || (fp == "" && k.Name == name) {
				u.Keys = append(u.Keys[:i], u.Keys[i+1:]...)
				return nil
			}
		}
		return notFound("no such key")
	})
	return err
}

// Keys are the caller's SSH keys (never nil).
func (s *Engine) Keys(ctx context.Context, id *Identity) ([]state.SSHKey, error) {
	u, _, err := s.currentUser(ctx, id)
	if err != nil {
		return nil, err
	}
	if u.Keys == nil {
		return []state.SSHKey{}, nil
	}
	return u.Keys, nil
}
