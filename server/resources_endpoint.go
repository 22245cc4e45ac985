package server

// GET /api/v1/resources/:resource/instances/
func (s *Server) listResourceInstances(c *call) (any, error) {
	p, err := pageOf(c)
	if err != nil {
		return nil, err
	}
	ds, next, err := s.eng.ResourceInstancesPage(c.ctx(), c.id, appTarget(c, "resource"), p)
	if err != nil {
		return nil, err
	}
	setNext(c, next)
	return deployedList(ds), nil
}
