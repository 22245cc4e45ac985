package osbserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/plugins/broker"
)

type planJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Free        bool   `json:"free"`
	Bindable    bool   `json:"bindable"`
}

type serviceJSON struct {
	ID                   string            `json:"id"`
	Name                 string            `json:"name"`
	Description          string            `json:"description"`
	Tags                 []string          `json:"tags"`
	Bindable             bool              `json:"bindable"`
	InstancesRetrievable bool              `json:"instances_retrievable"`
	BindingsRetrievable  bool              `json:"bindings_retrievable"`
	PlanUpdateable       bool              `json:"plan_updateable"`
	AllowContextUpdates  bool              `json:"allow_context_updates"`
	Metadata             map[string]string `json:"metadata"`
	Plans                []planJSON        `json:"plans"`
}

// offering is one Berth service as the catalog shows it, with the IDs of
// its broker's service and plans.
type offering struct {
	svc       *state.Service
	json      serviceJSON
	brokerSvc string
	plans     map[string]string // catalog plan ID -> broker plan ID
}

// installSeed is a random value kept in the Store, made the first time:
// it makes the catalog's IDs unique to this Berth installation (two
// installations with a service of the same name give different IDs) and
// stable across restarts.
func (s *Server) installSeed(ctx context.Context) (string, error) {
	s.mu.Lock()
	seed := s.seed
	s.mu.Unlock()
	if seed != "" {
		return seed, nil
	}
	type seedRec struct {
		Seed string `json:"seed"`
	}
	rec, _, err := state.Get[seedRec](ctx, s.store(), seedKey)
	if errors.Is(err, state.ErrNotFound) {
		_, err = state.Create(ctx, s.store(), seedKey, &seedRec{Seed: state.NewID()})
		if err != nil && !errors.Is(err, state.ErrExists) {
			return "", err
		}
		rec, _, err = state.Get[seedRec](ctx, s.store(), seedKey)
	}
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.seed = rec.Seed
	s.mu.Unlock()
	return rec.Seed, nil
}

// guid formats a digest of the seed and parts as a GUID.
func guid(seed string, parts ...string) string {
	d := digest(seed + "\x00" + strings.Join(parts, "\x00"))
	return d[0:8] + "-" + d[8:12] + "-" + d[12:16] + "-" + d[16:20] + "-" + d[20:32]
}

// cliName makes a CLI-friendly name: lower-case letters, digits and
// hyphens (what the 2.17 spec recommends and older checkers require).
func cliName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "default"
	}
	return b.String()
}

func nonEmpty(s, def string) string {
	if s = strings.TrimSpace(s); s != "" {
		if i := strings.IndexByte(s, '\n'); i > 0 {
			s = s[:i]
		}
		if len(s) > 255 {
			s = s[:255]
		}
		return s
	}
	return def
}

// offerings builds the catalog: the services granted to the team whose
// broker answers its catalog (a service whose broker cannot be reached is
// left out, and logged).
func (s *Server) offerings(ctx context.Context) ([]*offering, error) {
	seed, err := s.installSeed(ctx)
	if err != nil {
		return nil, err
	}
	svcs, err := s.eng.TeamServices(ctx, s.cfg.Team)
	if err != nil {
		return nil, err
	}
	var out []*offering
	for _, svc := range svcs {
		cat, err := s.brokerCatalog(ctx, svc)
		if err != nil || len(cat.Services) == 0 {
			s.log.Warn("osb: service left out of the catalog: its broker's catalog is unavailable", "service", svc.Name, "error", err)
			continue
		}
		bs := cat.Services[0]
		o := &offering{svc: svc, brokerSvc: bs.ID, plans: map[string]string{}}
		o.json = serviceJSON{
			ID: guid(seed, "service", svc.Name), Name: cliName(svc.Name),
			Description:          nonEmpty(svc.Doc, nonEmpty(bs.Description, fmt.Sprintf("%s (Berth service, broker %s)", svc.Name, svc.Broker))),
			Tags:                 []string{svc.Broker},
			Bindable:             true,
			InstancesRetrievable: true, BindingsRetrievable: true,
			Metadata: map[string]string{"displayName": svc.Name, "berth_broker": svc.Broker},
			Plans:    []planJSON{},
		}
		for _, p := range bs.Plans {
			if svc.Plan != "" && p.ID != svc.Plan {
				continue
			}
			id := guid(seed, "plan", svc.Name, p.ID)
			o.plans[id] = p.ID
			o.json.Plans = append(o.json.Plans, planJSON{ID: id, Name: cliName(p.Name),
				Description: nonEmpty(p.Description, "plan "+p.Name+" of "+svc.Name), Free: true, Bindable: true})
		}
		if len(o.json.Plans) == 0 {
			s.log.Warn("osb: service left out of the catalog: no plan", "service", svc.Name, "plan", svc.Plan)
			continue
		}
		out = append(out, o)
	}
	return out, nil
}

func (s *Server) brokerCatalog(ctx context.Context, svc *state.Service) (*broker.Catalog, error) {
	b, bctx, cancel, err := s.eng.ServiceBroker(ctx, svc)
	if err != nil {
		return nil, err
	}
	defer cancel()
	return b.Catalog(bctx)
}

// resolve finds the offering and broker plan of catalog IDs.
func (s *Server) resolve(ctx context.Context, serviceID, planID string) (*offering, string, error) {
	offs, err := s.offerings(ctx)
	if err != nil {
		return nil, "", err
	}
	for _, o := range offs {
		if o.json.ID != serviceID {
			continue
		}
		bp, ok := o.plans[planID]
		if !ok {
			return nil, "", fmt.Errorf("plan_id %q is not a plan of service %q in the catalog", planID, o.svc.Name)
		}
		return o, bp, nil
	}
	return nil, "", fmt.Errorf("service_id %q is not in the catalog", serviceID)
}

func (s *Server) catalog(w http.ResponseWriter, r *http.Request) {
	offs, err := s.offerings(r.Context())
	if e, ok := engine.AsError(err); ok && e.Kind == engine.KindNotFound {
		// Berth is misconfigured (the osb team does not exist): not a
		// missing endpoint.
		fail(w, http.StatusServiceUnavailable, "Unavailable", "the broker is not ready: "+err.Error())
		return
	}
	if err != nil {
		failErr(w, err)
		return
	}
	out := struct {
		Services []serviceJSON `json:"services"`
	}{Services: []serviceJSON{}}
	for _, o := range offs {
		out.Services = append(out.Services, o.json)
	}
	writeJSON(w, http.StatusOK, out)
}
