package server

import (
	"errors"
	"io"
	"net/http"

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

type serviceListItem struct {
	Service   string   `json:"service"`
	Instances []string `json:"instances"`
}

// GET /services and GET /services/instances
func (s *Server) listServices(c *call) (any, error) {
	svcs, err := s.eng.ListServices(c.ctx(), c.id)
	if err != nil {
		return nil, err
	}
	out := []serviceListItem{}
	for _, si := range svcs {
		item := serviceListItem{Service: si.Service.Name, Instances: []string{}}
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
func serviceOut(svc *state.Service) map[string]any {
	endpoint := svc.Endpoint
	if endpoint == nil {
		endpoint = map[string]string{}
	}
	out := map[string]any{"id": svc.Name, "broker": svc.Broker, "endpoint": endpoint, "owner_teams": nonNil(svc.OwnerTeams), "teams": nonNil(svc.Teams), "plan": svc.Plan, "setting_keys": nonNil(svc.SettingKeys)}
	if svc.Target != "" {
		out["target"] = svc.Target
	}
	return out
}

// PUT /services (YAML) — update an existing service.
func (s *Server) updateService(c *call) (any, error) {
	name, err := s.eng.UpdateService(c.ctx(), c.id, serviceBody{c})
	if name != "" {
		c.target = name
	}
	return nil, err
}

// DELETE /services/:name — 204; 403 while it has instances.
func (s *Server) removeService(c *call) (any, error) {
	if err := s.eng.RemoveService(c.ctx(), c.id, c.param("name")); err != nil {
		return nil, err
	}
	return &reply{Status: http.StatusNoContent}, nil
}

type instanceOutView struct {
	Name        string   `json:"name"`
	ServiceName string   `json:"servicename"`
	Teams       []string `json:"teams"`
	Apps        []string `json:"apps"`
	State       string   `json:"state"`
	Message     string   `json:"message,omitempty"`
}

func instanceOut(i *state.ServiceInstance) instanceOutView {
	return instanceOutView{Name: i.Name, ServiceName: i.ServiceName, Teams: nonNil(i.Teams), Apps: nonNil(i.Apps), State: i.State, Message: i.Message}
}

// GET /services/:name — the service's instances.
func (s *Server) getService(c *call) (any, error) {
	si, err := s.eng.Service(c.ctx(), c.id, c.param("name"))
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, i := range si.Instances {
		out = append(out, map[string]any{"Name": i.Name, "Teams": nonNil(i.Teams), "Apps": nonNil(i.Apps), "ServiceName": i.ServiceName})
	}
	return out, nil
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
	return nil, s.eng.SetServiceDoc(c.ctx(), c.id, c.param("name"), c.r.Body)
}

// PUT /services/:name/:team — grant.
func (s *Server) grantService(c *call) (any, error) {
	return nil, s.eng.GrantService(c.ctx(), c.id, c.param("name"), c.param("team"))
}

// DELETE /services/:name/:team — revoke.
func (s *Server) revokeService(c *call) (any, error) {
	return nil, s.eng.RevokeService(c.ctx(), c.id, c.param("name"), c.param("team"))
}

// POST /services/instances {"name","service_name"}
func (s *Server) createInstance(c *call) (any, error) {
	var in struct {
		Name        string `json:"name"`
		ServiceName string `json:"service_name"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if names.Instance(in.Name) == nil {
		c.target = in.Name // the audit record names a valid instance name only
	}
	inst, err := s.eng.CreateInstance(c.ctx(), c.id, in.Name, in.ServiceName)
	if err != nil {
		return nil, err
	}
	return instanceOut(inst), nil
}

// DELETE /services/instances/:name — refused while bound.
func (s *Server) removeInstance(c *call, name string) (any, error) {
	c.target = name
	return nil, s.eng.RemoveInstance(c.ctx(), c.id, name)
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
	out := map[string]any{"name": st.Name, "state": st.State, "broker": st.Broker}
	if st.Description != "" {
		out["description"] = st.Description
	}
	return out, nil
}

// PUT /services/instances/:name/:app — bind; answers the env the app gets.
// A bind whose redeploy cannot be started is undone and fails (see
// engine.BindApp): a 200 always means the app is being given the
// credentials.
func (s *Server) bindInstance(c *call, name, appName string) (any, error) {
	c.target = name + "->" + appName
	return s.eng.BindApp(c.ctx(), c.id, name, appName)
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
		return map[string]string{"status": res.Warning}, nil
	}
	return nil, nil
}
