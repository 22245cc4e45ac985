package api

import (
	"net/http"
	"net/url"
	"time"
)

// UserCreateRequest is the body of POST /users.
type UserCreateRequest struct {
	// Email is the account's name.
	Email string `json:"email"`
	// Password is 6 to 50 characters (at most 72 bytes in UTF-8).
	Password string `json:"password"`
}

// User is the answer of POST /users: the account made.
type User struct {
	Email   string    `json:"email"`   // the account's email
	Created time.Time `json:"created"` // when the account was made
}

// LoginRequest is the body of POST /users/:email/tokens.
type LoginRequest struct {
	Password string `json:"password"` // the user's password
}

// Login is the answer of POST /users/:email/tokens: a user token.
type Login struct {
	// Token is sent as "Authorization: bearer <token>".
	Token string `json:"token"`
	// Expires is when the token stops working (users.token_ttl).
	Expires time.Time `json:"expires"`
	// IsAdmin says whether the user is a site admin.
	IsAdmin bool `json:"is_admin"`
}

// UserInfo is the answer of GET /users/info: who the caller is. The fields
// are in the order the CLI prints them.
type UserInfo struct {
	// App is, for an app token, the app it is for.
	App string `json:"app"`
	// AppToken says whether the caller authenticated with an app token.
	AppToken bool `json:"app_token"`
	// Email is the user (for an app token: the user who made it).
	Email string `json:"email"`
	// IsAdmin says whether the caller is a site admin.
	IsAdmin bool `json:"is_admin"`
}

// PasswordChangeRequest is the body of PUT /users/password.
type PasswordChangeRequest struct {
	Old string `json:"old"` // the current password
	New string `json:"new"` // the new password (6 to 50 characters)
}

// Users is the users resource (/users).
type Users struct{ c *Client }

// Users returns the users resource.
func (c *Client) Users() *Users { return &Users{c} }

// Create makes an account: POST /users. Public while
// users.open_registration is set; otherwise (and for an email configured
// as a site admin) only site admins may. Registrations are rate limited
// per client address (429).
func (u *Users) Create(req *UserCreateRequest, w *WriteOptions) (*User, *WriteMeta, error) {
	var out User
	wm, err := u.c.write(http.MethodPost, "/users", nil, req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Login exchanges a password for a user token: POST /users/:email/tokens
// (public). A wrong email or password is a 401; failed logins are rate
// limited per address and per account (429). The client does not start
// using the token: call SetToken.
func (u *Users) Login(email, password string, w *WriteOptions) (*Login, *WriteMeta, error) {
	var out Login
	wm, err := u.c.write(http.MethodPost, "/users/"+esc(email)+"/tokens", nil, &LoginRequest{Password: password}, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Logout revokes the token the client uses: DELETE /users/tokens
// (permission user.logout; not for app tokens).
func (u *Users) Logout(w *WriteOptions) (*WriteMeta, error) {
	return u.c.write(http.MethodDelete, "/users/tokens", nil, nil, nil, w)
}

// Info says who the caller is: GET /users/info (any token).
func (u *Users) Info(q *QueryOptions) (*UserInfo, *QueryMeta, error) {
	var out UserInfo
	qm, err := u.c.query("/users/info", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// ChangePassword changes the caller's password: PUT /users/password
// (user.password.change). A wrong old password is a 403 and counts against
// the account's login limit.
func (u *Users) ChangePassword(req *PasswordChangeRequest, w *WriteOptions) (*WriteMeta, error) {
	return u.c.write(http.MethodPut, "/users/password", nil, req, nil, w)
}

// ResetPassword is POST /users/:email/password (public, rate limited).
// With token "", it asks for a one-time reset token to be mailed to the
// account (the same answer whether it exists or not); with the mailed
// token, it sets a new random password and mails it.
func (u *Users) ResetPassword(email, token string, w *WriteOptions) (*Status, *WriteMeta, error) {
	var params url.Values
	if token != "" {
		params = url.Values{"token": {token}}
	}
	var out Status
	wm, err := u.c.write(http.MethodPost, "/users/"+esc(email)+"/password", params, nil, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Remove deletes the caller's account, its tokens, team memberships and
// maintainer roles: DELETE /users (user.remove). Refused (403) while the
// user owns apps or is the last owner of one, and (409) while it created
// service instances that have no team.
func (u *Users) Remove(w *WriteOptions) (*WriteMeta, error) {
	return u.c.write(http.MethodDelete, "/users", nil, nil, nil, w)
}
