package server

// GET /api/v1/resources/:resource/instances/
func (s *Server) listResourceInstances(c *call) (any, error) {
	ds, err := s.eng.ResourceInstances(c.ctx(), c.id, appTarget(c, "resource"))
	if err != nil {
		return nil, err
	}
	return deployedList(ds), nil
}
