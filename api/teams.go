package api

import "net/http"

// Team is a group of users that owns apps and is granted services
// (GET /teams, GET /teams/:team, POST /teams).
type Team struct {
	Name string `json:"name"` // the team's name
	// Users are the members' emails, sorted.
	Users []string `json:"users"`
}

// TeamCreateRequest is the body of POST /teams.
type TeamCreateRequest struct {
	Name string `json:"name"` // the team's name
}

// Teams is the teams resource (/teams).
type Teams struct{ c *Client }

// Teams returns the teams resource.
func (c *Client) Teams() *Teams { return &Teams{c} }

// List returns the caller's teams (every team, for site admins): GET /teams
// (user tokens only).
func (t *Teams) List(q *QueryOptions) ([]Team, *QueryMeta, error) {
	var out []Team
	qm, err := t.c.query("/teams", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Get returns a team the caller is a member of: GET /teams/:team.
func (t *Teams) Get(name string, q *QueryOptions) (*Team, *QueryMeta, error) {
	var out Team
	qm, err := t.c.query("/teams/"+esc(name), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Create makes a team whose first member is the caller: POST /teams
// (team.create). A name taken is a 409.
func (t *Teams) Create(name string, w *WriteOptions) (*Team, *WriteMeta, error) {
	var out Team
	wm, err := t.c.write(http.MethodPost, "/teams", nil, &TeamCreateRequest{Name: name}, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Remove deletes a team: DELETE /teams/:team (team.remove; members only).
// Refused (403) while it has access to apps, and (409) while services or
// service instances refer to it.
func (t *Teams) Remove(name string, w *WriteOptions) (*WriteMeta, error) {
	return t.c.write(http.MethodDelete, "/teams/"+esc(name), nil, nil, nil, w)
}

// AddUser adds a user to a team: PUT /teams/:team/:user (team.user.add;
// members only).
func (t *Teams) AddUser(team, email string, w *WriteOptions) (*WriteMeta, error) {
	return t.c.write(http.MethodPut, "/teams/"+esc(team)+"/"+esc(email), nil, nil, nil, w)
}

// RemoveUser removes a user from a team: DELETE /teams/:team/:user
// (team.user.remove; members only). The last member cannot leave (403).
func (t *Teams) RemoveUser(team, email string, w *WriteOptions) (*WriteMeta, error) {
	return t.c.write(http.MethodDelete, "/teams/"+esc(team)+"/"+esc(email), nil, nil, nil, w)
}
