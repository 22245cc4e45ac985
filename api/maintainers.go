package api

import "net/http"

// Maintainer is a user with a role on an app
// (GET /api/v1/repos/:app/maintainers/...).
type Maintainer struct {
	Username string `json:"username"` // the user's email
	// Role is owner, admin or developer.
	Role string `json:"role"`
}

// MaintainerAddRequest is the body of POST /api/v1/repos/:app/maintainers/.
type MaintainerAddRequest struct {
	Username string `json:"username"` // the user's email
	// Role is owner, admin or developer (default developer); at most the
	// caller's own.
	Role string `json:"role,omitempty"`
}

// Maintainers is an app's maintainers (/api/v1/repos/:app/maintainers).
type Maintainers struct{ c *Client }

// Maintainers returns the maintainers resource.
func (c *Client) Maintainers() *Maintainers { return &Maintainers{c} }

// List returns the app's maintainers, sorted:
// GET /api/v1/repos/:app/maintainers/ (maintainers' read).
func (m *Maintainers) List(app string, q *QueryOptions) ([]Maintainer, *QueryMeta, error) {
	var out []Maintainer
	qm, err := m.c.query("/api/v1/repos/"+esc(app)+"/maintainers/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Get returns one maintainer: GET /api/v1/repos/:app/maintainers/:username/.
func (m *Maintainers) Get(app, email string, q *QueryOptions) (*Maintainer, *QueryMeta, error) {
	var out Maintainer
	qm, err := m.c.query("/api/v1/repos/"+esc(app)+"/maintainers/"+esc(email)+"/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Add gives a user a role on the app: POST /api/v1/repos/:app/maintainers/
// (repo.maintainer.add; 201).
func (m *Maintainers) Add(app string, req *MaintainerAddRequest, w *WriteOptions) (*Maintainer, *WriteMeta, error) {
	var out Maintainer
	wm, err := m.c.write(http.MethodPost, "/api/v1/repos/"+esc(app)+"/maintainers/", nil, req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Remove takes a user's role away: DELETE
// /api/v1/repos/:app/maintainers/:username/ (repo.maintainer.remove). The
// last owner cannot be removed (403).
func (m *Maintainers) Remove(app, email string, w *WriteOptions) (*WriteMeta, error) {
	return m.c.write(http.MethodDelete, "/api/v1/repos/"+esc(app)+"/maintainers/"+esc(email)+"/", nil, nil, nil, w)
}
