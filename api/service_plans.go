package api

// ServicePlan is one plan of a service (GET /services/:name/plans): a
// tier its broker offers.
type ServicePlan struct {
	ID          string `json:"id"`          // the plan's ID
	Name        string `json:"name"`        // the plan's name
	Description string `json:"description"` // what the plan is
}

// Plans returns the plans of a service the caller may use, from its
// broker's catalog: GET /services/:name/plans.
func (s *Services) Plans(name string, q *QueryOptions) ([]ServicePlan, *QueryMeta, error) {
	var out []ServicePlan
	qm, err := s.c.query("/services/"+esc(name)+"/plans", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}
