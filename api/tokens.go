package api

import "net/http"

// AppTokenRequest is the body of POST /tokens. The app is named by AppName
// ("appname") or, failing that, App ("app").
type AppTokenRequest struct {
	AppName string `json:"appname,omitempty"` // the app the token will act on
	App     string `json:"app,omitempty"`     // the app, when AppName is empty
	// Expires is the token's lifetime in seconds (0: the server's default).
	Expires int64 `json:"expires,omitempty"`
}

// AppToken is the answer of POST /tokens: a token that acts on one app
// (tsuru's field names).
type AppToken struct {
	Token string `json:"Token"` // sent as "Authorization: bearer <token>"
	// Creation is when it was made, RFC 3339.
	Creation string `json:"Creation"`
	// Expires is its lifetime in seconds from now.
	Expires int64  `json:"Expires"`
	AppName string `json:"AppName"` // the app the token acts on
}

// Tokens is the app tokens resource (/tokens).
type Tokens struct{ c *Client }

// Tokens returns the app tokens resource.
func (c *Client) Tokens() *Tokens { return &Tokens{c} }

// Create issues an app token: POST /tokens (app.token.create; the app's
// maintainers; not with an app token).
func (t *Tokens) Create(req *AppTokenRequest, w *WriteOptions) (*AppToken, *WriteMeta, error) {
	var out AppToken
	wm, err := t.c.write(http.MethodPost, "/tokens", nil, req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}
