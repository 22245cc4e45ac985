package server

import (
	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/names"
)

// POST /users {"email","password"}
func (s *Server) createUser(c *call) (any, error) {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if email, err := names.Email(in.Email); err == nil {
		c.target = email
	}
	u, err := s.eng.Register(c.ctx(), c.id, in.Email, in.Password, func(string) (func(bool), error) {
		if ok, wait := s.limits.registerIP.take(clientIP(c.r)); !ok {
			return nil, tooMany(c, wait, "registrations from your address")
		}
		return func(bool) {}, nil
	})
	if err != nil {
		return nil, err
	}
	c.target = u.Email
	return api.User{Email: u.Email, Created: u.Created}, nil
}

// POST /users/:email/tokens {"password"} -> {"token"}
//
// Failed attempts (engine.ErrWrongPassword) are rate limited per client IP
// and per account (limits.login_*): a refused attempt does no bcrypt work,
// and a successful one costs nothing against either limit.
func (s *Server) login(c *call) (any, error) {
	var in struct {
		Password *string `json:"password"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	pw := ""
	if in.Password != nil {
		pw = *in.Password
	}
	ip := clientIP(c.r)
	known := ""
	l, err := s.eng.Login(c.ctx(), c.param("email"), pw, func(email string) (func(bool), error) {
		c.target = email
		ipT, wait := s.limits.loginIP.admit(ip)
		if ipT == nil {
			return nil, tooMany(c, wait, "failed logins from your address")
		}
		known = email + " " + ip
		var acctT *ticket
		if !s.limits.known.has(known) {
			if acctT, wait = s.limits.loginAccount.admit(email); acctT == nil {
				ipT.done(false)
				return nil, tooMany(c, wait, "failed logins for this account")
			}
		}
		// A failure counts against both limits.
		return func(failed bool) {
			ipT.done(failed)
			if acctT != nil {
				acctT.done(failed)
			}
		}, nil
	})
	if err != nil {
		return nil, err
	}
	s.limits.known.add(known)
	return api.Login{Token: l.Token, Expires: l.Expires, IsAdmin: l.Admin}, nil
}

// DELETE /users/tokens — logout: the token used stops working at once.
func (s *Server) logout(c *call) (any, error) {
	if err := s.eng.Logout(c.ctx(), c.id); err != nil {
		return nil, err
	}
	c.target = c.id.Email
	return nil, nil
}

// PUT /users/password {"old","new"}
//
// Wrong old passwords count against the account's login limit.
func (s *Server) changePassword(c *call) (any, error) {
	var in struct {
		Old *string `json:"old"`
		New *string `json:"new"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	old, pw := "", ""
	if in.Old != nil {
		old = *in.Old
	}
	if in.New != nil {
		pw = *in.New
	}
	err := s.eng.ChangePassword(c.ctx(), c.id, old, pw, func(email string) (func(bool), error) {
		c.target = email
		t, wait := s.limits.loginAccount.admit(email)
		if t == nil {
			return nil, tooMany(c, wait, "failed password checks for this account")
		}
		return t.done, nil
	})
	return nil, err
}

// POST /users/:email/password[?token=] — without a token, mail a one-time
// reset token (throttled per address by limits.reset_mail_*, and the same
// answer whether a mail was sent or not); with a valid one, set a new
// random password and mail it.
func (s *Server) resetPassword(c *call) (any, error) {
	email, err := names.Email(c.param("email"))
	if err != nil {
		return nil, err
	}
	c.target = email
	if ok, wait := s.limits.resetIP.take(clientIP(c.r)); !ok {
		return nil, tooMany(c, wait, "password reset requests from your address")
	}
	tok := c.r.URL.Query().Get("token")
	if tok == "" {
		mail, _ := s.limits.resetMail.take(email)
		if err := s.eng.RequestPasswordReset(c.ctx(), email, mail); err != nil {
			return nil, err
		}
		return api.Status{Status: "if " + email + " has an account, a reset token was sent to it"}, nil
	}
	if err := s.eng.ResetPassword(c.ctx(), email, tok); err != nil {
		return nil, err
	}
	return api.Status{Status: "a new password was sent to " + email}, nil
}

// DELETE /users — the caller's account (engine.RemoveUser).
func (s *Server) removeUser(c *call) (any, error) {
	if !c.id.AppToken {
		c.target = c.id.Email
	}
	return nil, s.eng.RemoveUser(c.ctx(), c.id)
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
	if !c.id.AppToken {
		c.target = c.id.Email
	}
	k, err := s.eng.AddKey(c.ctx(), c.id, in.Key, in.Name)
	if err != nil {
		return nil, err
	}
	return api.KeyAdded{Fingerprint: k.Fingerprint, Name: k.Name}, nil
}

// DELETE /users/keys {"key"} (or {"name"})
func (s *Server) removeKey(c *call) (any, error) {
	var in keyBody
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if !c.id.AppToken {
		c.target = c.id.Email
	}
	return nil, s.eng.RemoveKey(c.ctx(), c.id, in.Key, in.Name)
}

// GET /users/keys — the caller's keys.
func (s *Server) listKeys(c *call) (any, error) {
	ks, err := s.eng.Keys(c.ctx(), c.id)
	if err != nil {
		return nil, err
	}
	out := make([]api.SSHKey, 0, len(ks))
	for _, k := range ks {
		out = append(out, api.SSHKey{Name: k.Name, Fingerprint: k.Fingerprint, Key: k.Key})
	}
	return pageSlice(c, out, func(k api.SSHKey) string { return k.Fingerprint })
}

// GET /users/info — who the caller is.
func (s *Server) whoami(c *call) (any, error) {
	return api.UserInfo{Email: c.id.Email, IsAdmin: c.id.Admin, AppToken: c.id.AppToken, App: c.id.App}, nil
}
