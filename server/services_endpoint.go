package server

import (
	"errors"
	"io"
	"net/http"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// The services API (tsuru 1.2 and 1.3): each handler reads the request,
// calls one engine operation and builds the answer.

// serviceBody is the request body as the engine reads it: a read error
// that is not the body's size (413) or its timeout (408) is the client's
// fault (400), as decode has it.
type serviceBody struct{ c *call }

func (b serviceBody) Read(p []byte) (int, error) {
	n, err := b.c.r.Body.Read(p)
	if err != nil && err != io.EOF {
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) && !errors.Is(err, errBodyTimeout) {
			err = badRequest("could not read the request body")
		}
	}
	return n, err
}

// GET /services and GET /services/instances
func (s *Server) listServices(c *call) (any, error) {
	p, err := pageOf(c)
	if err != nil {
		return nil, err
	}
	svcs, next, err := s.eng.ListServicesPage(c.ctx(), c.id, p)
	if err != nil {
		return nil, err
	}
	setNext(c, next)
	out := []api.ServiceListItem{}
	for _, si := range svcs {
		item := api.ServiceListItem{Service: si.Service.Name, Instances: []string{}}
		for _, i := range si.Instances {
			item.Instances = append(item.Instances, i.Name)
		}
		out = append(out, item)
	}
	return out, nil
}

// POST /services (YAML)
func (s *Server) createService(c *call) (any, error) {
	name, svc, err := s.eng.CreateService(c.ctx(), c.id, serviceBody{c})
	if name != "" {
		c.target = name
	}
	if err != nil {
		return nil, err
	}
	return serviceOut(svc), nil
}

// serviceOut is the answer of POST /services (api.Service): a service with
// no endpoint or settings answers {} and [] for them, as its documented
// type says, not null.
func serviceOut(svc *state.Service) *api.Service {
	endpoint := svc.Endpoint
	if endpoint == nil {
		endpoint = map[string]string{}
	}
	return &api.Service{ID: svc.Name, Broker: svc.Broker, Endpoint: endpoint, OwnerTeams: nonNil(svc.OwnerTeams), Teams: nonNil(svc.Teams), Plan: svc.Plan, SettingKeys: nonNil(svc.SettingKeys), Target: svc.Target}
}

// PUT /services (YAML) — update an existing service.
func (s *Server) updateService(c *call) (any, error) {
	name, err := s.eng.UpdateService(c.ctx(), c.id, serviceBody{c})
	if name != "" {
		c.target = name
	}
	if err != nil {
		return nil, err
	}
	return okStatus, nil
}

// DELETE /services/:name — 204; 403 while it has instances.
func (s *Server) removeService(c *call) (any, error) {
	if err := s.eng.RemoveService(c.ctx(), c.id, c.param("name")); err != nil {
		return nil, err
	}
	return &reply{Status: http.StatusNoContent}, nil
}

// instanceOut is a service instance as the API shows it
// (api.ServiceInstance).
func instanceOut(i *state.ServiceInstance) *api.ServiceInstance {
	return &api.ServiceInstance{Name: i.Name, ServiceName: i.ServiceName, Teams: nonNil(i.Teams), Apps: nonNil(i.Apps), State: i.State, Message: i.Message, Plan: i.Plan}
}

// GET /services/:name — the service's instances.
func (s *Server) getService(c *call) (any, error) {
	si, err := s.eng.Service(c.ctx(), c.id, c.param("name"))
	if err != nil {
		return nil, err
	}
	out := []api.ServiceInstanceSummary{}
	for _, i := range si.Instances {
		out = append(out, api.ServiceInstanceSummary{Name: i.Name, Teams: nonNil(i.Teams), Apps: nonNil(i.Apps), ServiceName: i.ServiceName})
	}
	return pageSlice(c, out, func(i api.ServiceInstanceSummary) string { return i.Name })
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// GET /services/:name/doc
func (s *Server) getServiceDoc(c *call) (any, error) {
	doc, err := s.eng.ServiceDoc(c.ctx(), c.id, c.param("name"))
	if err != nil {
		return nil, err
	}
	return textReply(doc), nil
}

// PUT /services/:name/doc (text)
func (s *Server) putServiceDoc(c *call) (any, error) {
	return statusOf(s.eng.SetServiceDoc(c.ctx(), c.id, c.param("name"), c.r.Body))
}

// PUT /services/:name/:team — grant.
func (s *Server) grantService(c *call) (any, error) {
	return statusOf(s.eng.GrantService(c.ctx(), c.id, c.param("name"), c.param("team")))
}

// DELETE /services/:name/:team — revoke.
func (s *Server) revokeService(c *call) (any, error) {
	return statusOf(s.eng.RevokeService(c.ctx(), c.id, c.param("name"), c.param("team")))
}

// POST /services/instances {"name","service_name"}
func (s *Server) createInstance(c *call) (any, error) {
	var in api.InstanceCreateRequest
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if names.Instance(in.Name) == nil {
		c.target = in.Name // the audit record names a valid instance name only
	}
	inst, err := s.eng.CreateInstanceWith(c.ctx(), c.id, engine.InstanceRequest{Name: in.Name, Service: in.ServiceName, Plan: in.Plan, Team: in.Team})
	if err != nil {
		return nil, err
	}
	return instanceOut(inst), nil
}

// DELETE /services/instances/:name — refused while bound.
func (s *Server) removeInstance(c *call, name string) (any, error) {
	c.target = name
	return statusOf(s.eng.RemoveInstance(c.ctx(), c.id, name))
}

// GET /services/instances/:name
func (s *Server) getInstance(c *call, name string) (any, error) {
	inst, err := s.eng.Instance(c.ctx(), c.id, name)
	if err != nil {
		return nil, err
	}
	return instanceOut(inst), nil
}

// GET /services/instances/:name/status
func (s *Server) instanceStatus(c *call, name string) (any, error) {
	st, err := s.eng.InstanceStatus(c.ctx(), c.id, name)
	if err != nil {
		return nil, err
	}
	return &api.InstanceStatus{Name: st.Name, State: st.State, Broker: st.Broker, Description: st.Description}, nil
}

// PUT /services/instances/:name/:app — bind; answers the env the app gets.
// A bind whose redeploy cannot be started is undone and fails (see
// engine.BindApp): a 200 always means the app is being given the
// credentials.
func (s *Server) bindInstance(c *call, name, appName string) (any, error) {
	c.target = name + "->" + appName
	env, err := s.eng.BindApp(c.ctx(), c.id, name, appName)
	if err != nil {
		return nil, err
	}
	if env == nil { // a broker that gave no credentials: an empty object, not null
		env = map[string]string{}
	}
	return env, nil
}

// DELETE /services/instances/:name/:app — unbind. The unbind cannot be
// undone once the broker has revoked the credentials: when the app's
// redeploy cannot be started, the answer is still 200 (api.Status), its
// status not "ok" but the sentence that says the app was not redeployed
// and why.
func (s *Server) unbindInstance(c *call, name, appName string) (any, error) {
	c.target = name + "->" + appName
	res, err := s.eng.UnbindApp(c.ctx(), c.id, name, appName)
	if err != nil {
		return nil, err
	}
	if res.Warning != "" {
		return api.Status{Status: res.Warning}, nil
	}
	return okStatus, nil
}

// okStatus is the answer of a change that has nothing more to say.
var okStatus = api.Status{Status: "ok"}

// statusOf is the answer of a change that has nothing more to say:
// api.Status "ok", or the error.
func statusOf(err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return okStatus, nil
}
