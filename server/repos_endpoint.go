package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/names"
)

// repoOut is the LAIN view of a registered app.
func repoOut(r *engine.RegisteredApp) api.Repo {
	a := r.App
	return api.Repo{AppName: a.Name, AppType: a.AppType, GitURL: a.GitURL, Owner: a.Owner, Teams: r.Teams, MetaVersion: a.MetaVersion, Created: a.Created}
}

// POST /api/v1/repos/ {"appname"[, "apptype"]}
func (s *Server) createRepo(c *call) (any, error) {
	var in api.RepoCreateRequest
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	c.target = in.AppName
	r, err := s.eng.RegisterRepo(c.ctx(), c.id, engine.NewApp{Name: in.AppName, AppType: in.AppType, TeamOwner: in.Team})
	if err != nil {
		return nil, err
	}
	return &reply{Status: http.StatusCreated, Body: repoOut(r)}, nil
}

// GET /api/v1/repos/
func (s *Server) listRepos(c *call) (any, error) {
	p, err := pageOf(c)
	if err != nil {
		return nil, err
	}
	rs, next, err := s.eng.ListReposPage(c.ctx(), c.id, p)
	if err != nil {
		return nil, err
	}
	setNext(c, next)
	out := make([]api.Repo, 0, len(rs))
	for _, r := range rs {
		out = append(out, repoOut(r))
	}
	return out, nil
}

// GET /api/v1/repos/:app/
func (s *Server) getRepo(c *call) (any, error) {
	r, err := s.eng.GetRepo(c.ctx(), c.id, appTarget(c, "app"))
	if err != nil {
		return nil, err
	}
	return repoOut(r), nil
}

// GET /api/v1/repos/:app/details/
func (s *Server) repoDetails(c *call) (any, error) {
	d, err := s.eng.GetRepoDetails(c.ctx(), c.id, appTarget(c, "app"))
	if err != nil {
		return nil, err
	}
	out := api.RepoDetails{AppName: d.App.Name, GitURL: d.App.GitURL, MetaVersion: d.App.MetaVersion, Deployed: d.App.Deployed}
	if d.Latest != nil {
		out.LatestMetaVersion = d.Latest.MetaVersion
	}
	return out, nil
}

func roleOut(r *engine.AppRole) api.Role {
	return api.Role{AppName: r.App, Username: r.User, Role: r.Role}
}

// GET /api/v1/repos/:app/roles/ — the caller's role.
func (s *Server) myRole(c *call) (any, error) {
	r, err := s.eng.MyRole(c.ctx(), c.id, appTarget(c, "app"))
	if err != nil {
		return nil, err
	}
	return roleOut(r), nil
}

// GET /api/v1/repos/:app/roles/:username/
func (s *Server) userRole(c *call) (any, error) {
	r, err := s.eng.UserRole(c.ctx(), c.id, appTarget(c, "app"), c.param("username"))
	if err != nil {
		return nil, err
	}
	return roleOut(r), nil
}

func maintainerOut(m *engine.Maintainer) api.Maintainer {
	return api.Maintainer{Username: m.Email, Role: m.Role}
}

// GET /api/v1/repos/:app/maintainers/
func (s *Server) listMaintainers(c *call) (any, error) {
	ms, err := s.eng.Maintainers(c.ctx(), c.id, appTarget(c, "app"))
	if err != nil {
		return nil, err
	}
	out := make([]api.Maintainer, 0, len(ms))
	for i := range ms {
		out = append(out, maintainerOut(&ms[i]))
	}
	return pageSlice(c, out, func(m api.Maintainer) string { return m.Username })
}

// GET /api/v1/repos/:app/maintainers/:username/
func (s *Server) getMaintainer(c *call) (any, error) {
	m, err := s.eng.GetMaintainer(c.ctx(), c.id, appTarget(c, "app"), c.param("username"))
	if err != nil {
		return nil, err
	}
	return maintainerOut(m), nil
}

// maintainerTarget names app/user in the audit record of a maintainer
// change, unless the request named no valid user (or app).
func maintainerTarget(c *call, app, user string, err error) {
	if email, eerr := names.Email(user); eerr == nil && names.App(app) == nil && !errors.Is(err, engine.ErrInvalid) {
		c.target = app + "/" + email
	}
}

// POST /api/v1/repos/:app/maintainers/ {"username","role"}
func (s *Server) addMaintainer(c *call) (any, error) {
	app := appTarget(c, "app")
	var in api.MaintainerAddRequest
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	m, err := s.eng.AddMaintainer(c.ctx(), c.id, app, in.Username, in.Role)
	maintainerTarget(c, app, in.Username, err)
	if err != nil {
		return nil, err
	}
	return &reply{Status: http.StatusCreated, Body: maintainerOut(m)}, nil
}

// DELETE /api/v1/repos/:app/maintainers/:username/
func (s *Server) removeMaintainer(c *call) (any, error) {
	app := appTarget(c, "app")
	err := s.eng.RemoveMaintainer(c.ctx(), c.id, app, c.param("username"))
	maintainerTarget(c, app, c.param("username"), err)
	if err != nil {
		return nil, err
	}
	return api.Status{Status: "ok"}, nil
}

// POST /api/v1/repos/:app/push/ — record a pushed release. The body is
// lain.yaml (YAML or JSON) with meta_version, or {"meta_version", "spec":
// {...}} / {"meta_version", "lain_yaml": "..."} (api.PushRequest).
func (s *Server) push(c *call) (any, error) {
	app := appTarget(c, "app")
	mv, spec, err := parsePush(c)
	if err != nil {
		return nil, err
	}
	p, err := s.eng.PushRelease(c.ctx(), c.id, app, mv, spec)
	if err == nil || errors.Is(err, engine.ErrConflict) {
		c.target = app + "@" + mv
	}
	if err != nil {
		return nil, err
	}
	out := api.PushResult{AppName: p.Release.App, MetaVersion: p.Release.MetaVersion, Status: "pushed", Procs: releaseProcsOut(p.Release.Spec.Procs)}
	if p.Unchanged {
		out.Status = "unchanged"
		return out, nil
	}
	return &reply{Status: http.StatusCreated, Body: out}, nil
}

// releaseProcsOut is a release's procs as the push answers them (null for
// none, as the release records them).
func releaseProcsOut(ps []release.Proc) []api.ReleaseProc {
	if ps == nil {
		return nil
	}
	out := make([]api.ReleaseProc, 0, len(ps))
	for _, p := range ps {
		out = append(out, api.ReleaseProc{Name: p.Name, Type: p.Type, Cmd: p.Cmd, Image: p.Image, Port: p.Port,
			NumInstances: p.NumInstances, CPU: p.CPU, MemoryMB: p.MemoryMB, Env: p.Env, HealthCheck: p.HealthCheck})
	}
	return out
}

// The fields of a push's body, by api.PushRequest's names.
var (
	fMV   = jsonName(api.PushRequest{}, "MetaVersion")
	fSpec = jsonName(api.PushRequest{}, "Spec")
	fYAML = jsonName(api.PushRequest{}, "LainYAML")
)

// jsonName is the JSON name of the field f of the struct v.
func jsonName(v any, f string) string {
	sf, ok := reflect.TypeOf(v).FieldByName(f)
	if !ok {
		panic("server: no field " + f + " in " + reflect.TypeOf(v).String())
	}
	name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
	return name
}

// parsePush reads a push's body: lain.yaml itself (YAML, or the same as
// JSON) with meta_version, or an api.PushRequest (JSON, or the same as
// YAML). A meta_version in the body wins over the query's.
func parsePush(c *call) (string, *release.Spec, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(c.r.Body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", nil, err
		}
		return "", nil, engine.Invalid("could not read the request body")
	}
	if len(bytes.TrimSpace(buf.Bytes())) == 0 {
		return "", nil, engine.Invalid("the push needs a body: meta_version and the release spec (lain.yaml as YAML or JSON)")
	}
	var raw map[string]any
	ct, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if ct == "application/json" {
		if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
			return "", nil, engine.Invalid("invalid JSON: %v", err)
		}
	} else if err := release.CheckYAML(buf.Bytes(), release.ReleaseYAMLLimits); err != nil {
		return "", nil, err
	} else if err := yaml.Unmarshal(buf.Bytes(), &raw); err != nil {
		return "", nil, engine.Invalid("the body is neither JSON nor YAML: %v", err)
	}
	if raw == nil {
		return "", nil, engine.Invalid("the body must be an object")
	}
	mv, _ := raw[fMV].(string)
	if q := c.r.URL.Query().Get(fMV); mv == "" {
		mv = q
	}
	if mv == "" {
		return "", nil, engine.Invalid("meta_version is required (\"<unix time>-<git sha>\")")
	}
	if err := names.MetaVersion(mv); err != nil {
		return "", nil, err
	}
	delete(raw, fMV)
	var spec *release.Spec
	var err error
	switch {
	case raw[fSpec] != nil:
		m, ok := raw[fSpec].(map[string]any)
		if !ok || len(raw) != 1 {
			return "", nil, engine.Invalid("spec must be an object, and the only field beside meta_version")
		}
		spec, err = release.FromMap(m)
	case raw[fYAML] != nil:
		y, ok := raw[fYAML].(string)
		if !ok || len(raw) != 1 {
			return "", nil, engine.Invalid("lain_yaml must be a string, and the only field beside meta_version")
		}
		spec, err = release.Parse([]byte(y))
	default:
		spec, err = release.FromMap(raw)
	}
	if err != nil {
		return "", nil, err
	}
	return mv, spec, nil
}
