package api

// Platform is one platform apps may name (GET /platforms).
type Platform struct {
	Name string `json:"Name"` // the platform's name
}

// Platforms is the platforms resource (/platforms).
type Platforms struct{ c *Client }

// Platforms returns the platforms resource.
func (c *Client) Platforms() *Platforms { return &Platforms{c} }

// List returns the configured platforms: GET /platforms (any token).
func (p *Platforms) List(q *QueryOptions) ([]Platform, *QueryMeta, error) {
	var out []Platform
	qm, err := p.c.query("/platforms", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}
