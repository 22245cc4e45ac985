package api

import (
	"net/http"
	"time"
)

// TeamTokenCreateRequest is the body of POST /teams/:team/tokens (tsuru's
// field names where it has them).
type TeamTokenCreateRequest struct {
	Description string `json:"description,omitempty"` // what the token is for
	// Actions are what the token may do on the team's apps (engine action
	// names: app.deploy, app.read, …); only actions a member of the team
	// may do on its apps (developer) can be given.
	Actions []string `json:"actions"`
	// ExpiresIn is the token's lifetime in seconds (0: the server's app
	// token default, users.app_token_ttl; at most users.max_token_ttl).
	ExpiresIn int64 `json:"expires_in,omitempty"`
}

// TeamToken describes a team token: a token for automation (CI) acting
// for a team on the team's apps with only its actions. Its value is shown
// once, in TeamTokenCreated, and never again.
type TeamToken struct {
	ID          string   `json:"token_id"`
	Team        string   `json:"team"`
	Description string   `json:"description"`
	Actions     []string `json:"actions"`
	Creator     string   `json:"creator_email"`
	// Created, Expires and LastAccess (the last request made with it,
	// recorded to the minute; absent if never used).
	Created    time.Time  `json:"created_at"`
	Expires    time.Time  `json:"expires_at"`
	LastAccess *time.Time `json:"last_access,omitempty"`
}

// TeamTokenCreated is the answer of POST /teams/:team/tokens: the token's
// description and its value, sent as "Authorization: bearer <token>".
type TeamTokenCreated struct {
	TeamToken
	Token string `json:"token"`
}

// AppTokenInfo describes an app token (GET /apps/:app/tokens); never its
// value.
type AppTokenInfo struct {
	ID      string    `json:"token_id"`
	App     string    `json:"app"`
	Creator string    `json:"creator_email"`
	Created time.Time `json:"created_at"`
	Expires time.Time `json:"expires_at"`
}

// TeamTokens is the team tokens resource.
type TeamTokens struct{ c *Client }

// TeamTokens returns the team tokens resource.
func (c *Client) TeamTokens() *TeamTokens { return &TeamTokens{c} }

// Create issues a team token: POST /teams/:team/tokens (team.token.create;
// members of the team, with a user's token).
func (t *TeamTokens) Create(team string, req *TeamTokenCreateRequest, w *WriteOptions) (*TeamTokenCreated, *WriteMeta, error) {
	var out TeamTokenCreated
	wm, err := t.c.write(http.MethodPost, "/teams/"+esc(team)+"/tokens", nil, req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// List returns the tokens of team: GET /teams/:team/tokens; with team "",
// those of every team the caller is a member of: GET /tokens.
func (t *TeamTokens) List(team string, q *QueryOptions) ([]TeamToken, *QueryMeta, error) {
	path := "/tokens"
	if team != "" {
		path = "/teams/" + esc(team) + "/tokens"
	}
	var out []TeamToken
	qm, err := t.c.query(path, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Revoke revokes a team token of one of the caller's teams:
// DELETE /tokens/:token_id (team.token.revoke). It stops working at once.
func (t *TeamTokens) Revoke(id string, w *WriteOptions) (*WriteMeta, error) {
	return t.c.write(http.MethodDelete, "/tokens/"+esc(id), nil, nil, nil, w)
}

// ListApp returns an app's tokens: GET /apps/:app/tokens (app.token.read;
// those who may issue them).
func (t *Tokens) ListApp(app string, q *QueryOptions) ([]AppTokenInfo, *QueryMeta, error) {
	var out []AppTokenInfo
	qm, err := t.c.query("/apps/"+esc(app)+"/tokens", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// RevokeApp revokes an app token by ID: DELETE /apps/:app/tokens/:id
// (app.token.revoke).
func (t *Tokens) RevokeApp(app, id string, w *WriteOptions) (*WriteMeta, error) {
	return t.c.write(http.MethodDelete, "/apps/"+esc(app)+"/tokens/"+esc(id), nil, nil, nil, w)
}
