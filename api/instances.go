package api

import "net/http"

// Service instance states (ServiceInstance.State).
const (
	InstanceReady = "ready"
)

// ServiceInstance is a provisioned instance of a service
// (POST /services/instances, GET /services/instances/:name).
type ServiceInstance struct {
	Name        string   `json:"name"`        // the instance's name
	ServiceName string   `json:"servicename"` // the service it was provisioned from
	Teams       []string `json:"teams"`       // the teams that own it; never null
	// Apps are the apps it is bound to; never null.
	Apps  []string `json:"apps"`
	State string   `json:"state"` // its state, e.g. ready
	// Message says why, when provisioning failed.
	Message string `json:"message,omitempty"`
	// Plan is the broker plan's ID it was provisioned on, when one was
	// chosen at creation (absent: the service's plan).
	Plan string `json:"plan,omitempty"`
}

// InstanceCreateRequest is the body of POST /services/instances.
type InstanceCreateRequest struct {
	Name        string `json:"name"`         // the instance's name
	ServiceName string `json:"service_name"` // the service to provision it from
	// Plan is one of the service's plans (GET /services/:name/plans), by
	// ID or name; default the service's plan.
	Plan string `json:"plan,omitempty"`
	// Team is the one team the instance is given to: one of the caller's
	// that the service is granted to; default all the caller's teams.
	Team string `json:"team,omitempty"`
}

// InstanceStatus is the answer of GET /services/instances/:name/status.
type InstanceStatus struct {
	Name  string `json:"name"`  // the instance's name
	State string `json:"state"` // its state in Berth
	// Broker is the broker's last-operation state, or "unreachable: …",
	// "gone: …" or "error: …".
	Broker      string `json:"broker"`
	Description string `json:"description,omitempty"` // the broker's description of its last operation
}

// Instances is the service instances resource (/services/instances).
type Instances struct{ c *Client }

// Instances returns the service instances resource.
func (c *Client) Instances() *Instances { return &Instances{c} }

// List is GET /services/instances: the same answer as Services().List.
func (i *Instances) List(q *QueryOptions) ([]ServiceListItem, *QueryMeta, error) {
	var out []ServiceListItem
	qm, err := i.c.query("/services/instances", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Create provisions an instance: POST /services/instances
// (service.instance.create). Broker failures are 502 (504 on a timeout).
func (i *Instances) Create(req *InstanceCreateRequest, w *WriteOptions) (*ServiceInstance, *WriteMeta, error) {
	var out ServiceInstance
	wm, err := i.c.write(http.MethodPost, "/services/instances", nil, req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Get returns an instance: GET /services/instances/:name.
func (i *Instances) Get(name string, q *QueryOptions) (*ServiceInstance, *QueryMeta, error) {
	var out ServiceInstance
	qm, err := i.c.query("/services/instances/"+esc(name), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Status asks the broker about an instance: GET /services/instances/:name/status.
func (i *Instances) Status(name string, q *QueryOptions) (*InstanceStatus, *QueryMeta, error) {
	var out InstanceStatus
	qm, err := i.c.query("/services/instances/"+esc(name)+"/status", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Remove deprovisions an instance: DELETE /services/instances/:name
// (service.instance.remove). Refused (403) while it is bound.
func (i *Instances) Remove(name string, w *WriteOptions) (*WriteMeta, error) {
	return i.c.write(http.MethodDelete, "/services/instances/"+esc(name), nil, nil, nil, w)
}

// Bind binds an instance to an app and redeploys a deployed app:
// PUT /services/instances/:name/:app (service.bind, and app.bind on the
// app). The answer is the variables the app gets.
func (i *Instances) Bind(name, app string, w *WriteOptions) (map[string]string, *WriteMeta, error) {
	var out map[string]string
	wm, err := i.c.write(http.MethodPut, "/services/instances/"+esc(name)+"/"+esc(app), nil, nil, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return out, wm, nil
}

// Unbind unbinds an instance from an app and redeploys it:
// DELETE /services/instances/:name/:app (service.unbind). The unbind
// cannot be undone once the broker has revoked the credentials: when the
// app's redeploy could not be started, the unbind still succeeds, and the
// answer's Status is not "ok" but the sentence that says the app was not
// redeployed, and why (its processes keep the revoked credentials until it
// is deployed again).
func (i *Instances) Unbind(name, app string, w *WriteOptions) (*Status, *WriteMeta, error) {
	var out Status
	wm, err := i.c.write(http.MethodDelete, "/services/instances/"+esc(name)+"/"+esc(app), nil, nil, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}
