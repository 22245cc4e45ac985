package api

// Resources is the LAIN resources' instances (/api/v1/resources).
type Resources struct{ c *Client }

// Resources returns the resources resource.
func (c *Client) Resources() *Resources { return &Resources{c} }

// Instances returns the resource instances of a resource (one app per
// client app that uses it): GET /api/v1/resources/:resource/instances/
// (app.read on the resource). A registered app that is not a resource is
// a 404.
func (r *Resources) Instances(resource string, q *QueryOptions) ([]DeployedApp, *QueryMeta, error) {
	var out []DeployedApp
	qm, err := r.c.query("/api/v1/resources/"+esc(resource)+"/instances/", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}
