package api

import (
	"io"
	"net/http"

	"gopkg.in/yaml.v3"
)

// ServiceDefinition is the YAML body of POST and PUT /services:
//
//	id: mysql
//	broker: mysql            # mysql, redis, mongodb, or berth-broker-<name> in plugin_dir
//	endpoint:
//	  production: 127.0.0.1:3306
//	target: shared-mysql     # an operator's broker_target
//	team: myteam
//
// Settings (broker connection settings) are for site admins only; others
// name a Target.
type ServiceDefinition struct {
	ID       string            `yaml:"id"`                 // the service's name
	Broker   string            `yaml:"broker"`             // the broker plugin: mysql, redis, mongodb or an external one
	Endpoint map[string]string `yaml:"endpoint,omitempty"` // the backing endpoints by environment
	Settings map[string]string `yaml:"settings,omitempty"` // broker connection settings (site admins only)
	Target   string            `yaml:"target,omitempty"`   // one of the operator's broker targets
	// Team is the owner team (default: all of the creator's teams).
	Team string `yaml:"team,omitempty"`
	// Plan is the broker's plan id (default: its first).
	Plan string `yaml:"plan,omitempty"`
	Doc  string `yaml:"doc,omitempty"` // documentation shown by GET /services/:name/doc
}

// Service is the answer of POST /services: the service made. Settings are
// never shown, only their keys.
type Service struct {
	ID         string            `json:"id"`          // the service's name
	Broker     string            `json:"broker"`      // the broker plugin
	Endpoint   map[string]string `json:"endpoint"`    // the backing endpoints by environment
	OwnerTeams []string          `json:"owner_teams"` // the teams that manage it
	// Teams are the teams granted access (owners included).
	Teams       []string `json:"teams"`
	Plan        string   `json:"plan"`             // the broker's plan
	SettingKeys []string `json:"setting_keys"`     // the keys of the settings given (never their values)
	Target      string   `json:"target,omitempty"` // the operator's broker target it uses
}

// ServiceListItem is one service of GET /services (and of
// GET /services/instances, which answers the same).
type ServiceListItem struct {
	Service string `json:"service"` // the service's name
	// Instances are its instances' names; never null.
	Instances []string `json:"instances"`
}

// ServiceInstanceSummary is one instance of GET /services/:name (tsuru's
// capitalised field names, unlike ServiceInstance).
type ServiceInstanceSummary struct {
	Name        string   `json:"Name"`        // the instance's name
	Teams       []string `json:"Teams"`       // the teams that own it; never null
	Apps        []string `json:"Apps"`        // the apps it is bound to; never null
	ServiceName string   `json:"ServiceName"` // the service
}

// Services is the services resource (/services).
type Services struct{ c *Client }

// Services returns the services resource.
func (c *Client) Services() *Services { return &Services{c} }

// List returns the services granted to the caller's teams (all, for site
// admins), each with its instances: GET /services.
func (s *Services) List(q *QueryOptions) ([]ServiceListItem, *QueryMeta, error) {
	var out []ServiceListItem
	qm, err := s.c.query("/services", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

func yamlBody(def *ServiceDefinition) (*rawBody, error) {
	b, err := yaml.Marshal(def)
	if err != nil {
		return nil, err
	}
	return &rawBody{data: b, ctype: "application/yaml"}, nil
}

// Create defines a service: POST /services (service.create; team members).
// A taken id is a 409.
func (s *Services) Create(def *ServiceDefinition, w *WriteOptions) (*Service, *WriteMeta, error) {
	body, err := yamlBody(def)
	if err != nil {
		return nil, nil, err
	}
	var out Service
	wm, err := s.c.write(http.MethodPost, "/services", nil, body, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// CreateYAML defines a service from YAML text: POST /services.
func (s *Services) CreateYAML(def []byte, w *WriteOptions) (*Service, *WriteMeta, error) {
	var out Service
	wm, err := s.c.write(http.MethodPost, "/services", nil, &rawBody{data: def, ctype: "application/yaml"}, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Update changes a service: PUT /services (service.update; its owner
// teams). Its broker or target cannot change while it has instances (409).
func (s *Services) Update(def *ServiceDefinition, w *WriteOptions) (*WriteMeta, error) {
	body, err := yamlBody(def)
	if err != nil {
		return nil, err
	}
	return s.c.write(http.MethodPut, "/services", nil, body, nil, w)
}

// Instances returns a service's instances: GET /services/:name.
func (s *Services) Instances(name string, q *QueryOptions) ([]ServiceInstanceSummary, *QueryMeta, error) {
	var out []ServiceInstanceSummary
	qm, err := s.c.query("/services/"+esc(name), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Remove deletes a service: DELETE /services/:name (service.remove; 204).
// Refused (403) while it has instances.
func (s *Services) Remove(name string, w *WriteOptions) (*WriteMeta, error) {
	return s.c.write(http.MethodDelete, "/services/"+esc(name), nil, nil, nil, w)
}

// Doc returns a service's documentation (text): GET /services/:name/doc.
func (s *Services) Doc(name string, q *QueryOptions) (string, *QueryMeta, error) {
	r := s.c.newRequest(http.MethodGet, "/services/"+esc(name)+"/doc")
	r.setQuery(q)
	resp, rtt, err := s.c.do(r)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return "", nil, err
	}
	return string(b), queryMeta(resp, rtt), nil
}

// SetDoc replaces a service's documentation: PUT /services/:name/doc (text;
// audited as service.grant; its owner teams).
func (s *Services) SetDoc(name, doc string, w *WriteOptions) (*WriteMeta, error) {
	return s.c.write(http.MethodPut, "/services/"+esc(name)+"/doc", nil, &rawBody{data: []byte(doc), ctype: "text/plain"}, nil, w)
}

// Grant gives a team access to a service: PUT /services/:name/:team
// (service.grant; its owner teams).
func (s *Services) Grant(name, team string, w *WriteOptions) (*WriteMeta, error) {
	return s.c.write(http.MethodPut, "/services/"+esc(name)+"/"+esc(team), nil, nil, nil, w)
}

// Revoke takes a team's access away: DELETE /services/:name/:team
// (service.revoke). The last team cannot be revoked (403).
func (s *Services) Revoke(name, team string, w *WriteOptions) (*WriteMeta, error) {
	return s.c.write(http.MethodDelete, "/services/"+esc(name)+"/"+esc(team), nil, nil, nil, w)
}
