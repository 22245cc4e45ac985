package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// LAIN-style views of a registered app.

type repoView struct {
	AppName     string    `json:"appname"`
	AppType     string    `json:"apptype"`
	GitURL      string    `json:"giturl"`
	Owner       string    `json:"owner"`
	Teams       []string  `json:"teams"`
	MetaVersion string    `json:"meta_version"`
	Created     time.Time `json:"created"`
}

func repoOut(a *state.App) repoView {
	ts := engine.AppTeams(a)
	sort.Strings(ts)
	if ts == nil {
		ts = []string{}
	}
	return repoView{AppName: a.Name, AppType: a.AppType, GitURL: a.GitURL, Owner: a.Owner, Teams: ts, MetaVersion: a.MetaVersion, Created: a.Created}
}

// POST /api/v1/repos/ {"appname"[, "apptype"]}
func (s *Server) createRepo(c *call) (any, error) {
	var in struct {
		AppName   string `json:"appname"`
		AppType   string `json:"apptype"`
		TeamOwner string `json:"team"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	c.target = in.AppName
	if in.AppType == state.AppTypeResourceInstance {
		return nil, badRequest("resource instances are created by deploying an app that uses the resource")
	}
	a, err := s.eng.RegisterApp(c.ctx(), c.id, engine.NewApp{Name: in.AppName, AppType: in.AppType, TeamOwner: in.TeamOwner})
	if err != nil {
		return nil, err
	}
	return &reply{Status: http.StatusCreated, Body: repoOut(a)}, nil
}

// GET /api/v1/repos/
func (s *Server) listRepos(c *call) (any, error) {
	apps, err := s.eng.VisibleApps(c.ctx(), c.id)
	if err != nil {
		return nil, err
	}
	out := make([]repoView, 0, len(apps))
	for _, a := range apps {
		out = append(out, repoOut(a))
	}
	return out, nil
}

// GET /api/v1/repos/:app/
func (s *Server) getRepo(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppRead)
	if err != nil {
		return nil, err
	}
	return repoOut(a), nil
}

// GET /api/v1/repos/:app/details/
func (s *Server) repoDetails(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppRead)
	if err != nil {
		return nil, err
	}
	latest, err := s.eng.LatestRelease(c.ctx(), a.Name)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"appname": a.Name, "giturl": a.GitURL, "meta_version": a.MetaVersion, "deployed": a.Deployed, "latest_meta_version": ""}
	if latest != nil {
		out["latest_meta_version"] = latest.MetaVersion
	}
	return out, nil
}

type roleView struct {
	AppName  string `json:"appname"`
	Username string `json:"username"`
	Role     string `json:"role"`
}

// GET /api/v1/repos/:app/roles/ — the caller's role.
func (s *Server) myRole(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppRead)
	if err != nil {
		return nil, err
	}
	if c.id.AppToken {
		return roleView{AppName: a.Name, Username: c.id.Name(), Role: state.RoleDeveloper}, nil
	}
	teams, err := s.eng.TeamsOf(c.ctx(), a)
	if err != nil {
		return nil, err
	}
	role := s.eng.RoleOn(c.id, a, teams)
	if role == "" && c.id.Admin {
		role = "site-admin"
	}
	return roleView{AppName: a.Name, Username: c.id.Email, Role: role}, nil
}

// GET /api/v1/repos/:app/roles/:username/
func (s *Server) userRole(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppMaintRead)
	if err != nil {
		return nil, err
	}
	email, err := names.Email(c.param("username"))
	if err != nil {
		return nil, err
	}
	teams, err := s.eng.TeamsOf(c.ctx(), a)
	if err != nil {
		return nil, err
	}
	role := s.eng.RoleOn(&engine.Identity{Email: email}, a, teams)
	if role == "" {
		return nil, notFound("%s has no role on app %q", email, a.Name)
	}
	return roleView{AppName: a.Name, Username: email, Role: role}, nil
}

type maintainerView struct {
	Username string `json:"username"`
	Role     string `json:"role"`
}

func maintainersOut(a *state.App) []maintainerView {
	out := make([]maintainerView, 0, len(a.Maintainers))
	for u, r := range a.Maintainers {
		out = append(out, maintainerView{Username: u, Role: r})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out
}

// GET /api/v1/repos/:app/maintainers/
func (s *Server) listMaintainers(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppMaintRead)
	if err != nil {
		return nil, err
	}
	return maintainersOut(a), nil
}

// GET /api/v1/repos/:app/maintainers/:username/
func (s *Server) getMaintainer(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppMaintRead)
	if err != nil {
		return nil, err
	}
	email, err := names.Email(c.param("username"))
	if err != nil {
		return nil, err
	}
	role, ok := a.Maintainers[email]
	if !ok {
		return nil, notFound("%s is not a maintainer of app %q", email, a.Name)
	}
	return maintainerView{Username: email, Role: role}, nil
}

// callerRank is the caller's role rank on an app (site admins rank above owners).
func (s *Server) callerRank(c *call, a *state.App) (int, error) {
	if c.id.Admin {
		return state.RoleRank(state.RoleOwner) + 1, nil
	}
	teams, err := s.eng.TeamsOf(c.ctx(), a)
	if err != nil {
		return 0, err
	}
	return state.RoleRank(s.eng.RoleOn(c.id, a, teams)), nil
}

// POST /api/v1/repos/:app/maintainers/ {"username","role"}
func (s *Server) addMaintainer(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppMaintWrite)
	if err != nil {
		return nil, err
	}
	var in struct {
		Username string `json:"username"`
		Role     string `json:"role"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	email, err := names.Email(in.Username)
	if err != nil {
		return nil, err
	}
	if in.Role == "" {
		in.Role = state.RoleDeveloper
	}
	if state.RoleRank(in.Role) == 0 {
		return nil, badRequest("role must be owner, admin or developer, not %q", in.Role)
	}
	rank, err := s.callerRank(c, a)
	if err != nil {
		return nil, err
	}
	if state.RoleRank(in.Role) > rank {
		return nil, forbidden("you may not grant %s: it is above your own role on app %q", in.Role, a.Name)
	}
	c.target = a.Name + "/" + email
	err = engine.UpdateForUser(c.ctx(), s.store, state.AppKey(a.Name), email, func(a *state.App) error {
		if _, ok := a.Maintainers[email]; ok {
			return conflict("%s is already a maintainer of app %q", email, a.Name)
		}
		a.Maintainers[email] = in.Role
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &reply{Status: http.StatusCreated, Body: maintainerView{Username: email, Role: in.Role}}, nil
}

// DELETE /api/v1/repos/:app/maintainers/:username/
func (s *Server) removeMaintainer(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppMaintWrite)
	if err != nil {
		return nil, err
	}
	email, err := names.Email(c.param("username"))
	if err != nil {
		return nil, err
	}
	rank, err := s.callerRank(c, a)
	if err != nil {
		return nil, err
	}
	c.target = a.Name + "/" + email
	_, _, err = state.Update(c.ctx(), s.store, state.AppKey(a.Name), func(a *state.App) error {
		role, ok := a.Maintainers[email]
		if !ok {
			return notFound("%s is not a maintainer of app %q", email, a.Name)
		}
		if state.RoleRank(role) > rank {
			return forbidden("you may not remove a maintainer whose role (%s) is above yours", role)
		}
		if role == state.RoleOwner {
			owners := 0
			for _, r := range a.Maintainers {
				if r == state.RoleOwner {
					owners++
				}
			}
			if owners == 1 {
				return forbidden("%s is the last owner of app %q", email, a.Name)
			}
		}
		delete(a.Maintainers, email)
		return nil
	})
	return nil, err
}

// POST /api/v1/repos/:app/push/ — record a pushed release. The body is
// lain.yaml (YAML or JSON) with meta_version, or {"meta_version", "spec":
// {...}} / {"meta_version", "lain_yaml": "..."}.
func (s *Server) push(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppPush)
	if err != nil {
		return nil, err
	}
	mv, spec, err := parsePush(c)
	if err != nil {
		return nil, err
	}
	if spec.AppName != "" && spec.AppName != a.Name {
		return nil, badRequest("the release spec is for app %q, not %q", spec.AppName, a.Name)
	}
	if err := s.eng.CheckResourceUse(c.ctx(), c.id, spec.Resources); err != nil {
		return nil, err
	}
	c.target = a.Name + "@" + mv
	by := c.id.Name()
	rel := &state.Release{App: a.Name, MetaVersion: mv, Spec: *spec, Pushed: time.Now().UTC(), PushedBy: by}
	if _, err := state.Create(c.ctx(), s.store, state.ReleaseKey(a.Name, mv), rel); errors.Is(err, state.ErrExists) {
		old, _, gerr := state.Get[state.Release](c.ctx(), s.store, state.ReleaseKey(a.Name, mv))
		if gerr != nil {
			return nil, gerr
		}
		ob, _ := json.Marshal(old.Spec)
		nb, _ := json.Marshal(spec)
		if !bytes.Equal(ob, nb) {
			return nil, conflict("meta_version %s of app %q was already pushed with a different spec", mv, a.Name)
		}
		return map[string]any{"appname": a.Name, "meta_version": mv, "status": "unchanged", "procs": spec.Procs}, nil
	} else if err != nil {
		return nil, err
	}
	s.eng.Notify(c.ctx(), engine.NotifyImagePush, map[string]any{
		"event": engine.NotifyImagePush, "appname": a.Name, "meta_version": mv, "pushed_by": by, "time": rel.Pushed,
	})
	return &reply{Status: http.StatusCreated, Body: map[string]any{"appname": a.Name, "meta_version": mv, "status": "pushed", "procs": spec.Procs}}, nil
}

func parsePush(c *call) (string, *release.Spec, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(c.r.Body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", nil, err
		}
		return "", nil, badRequest("could not read the request body")
	}
	if len(bytes.TrimSpace(buf.Bytes())) == 0 {
		return "", nil, badRequest("the push needs a body: meta_version and the release spec (lain.yaml as YAML or JSON)")
	}
	var raw map[string]any
	ct, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if ct == "application/json" {
		if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
			return "", nil, badRequest("invalid JSON: %v", err)
		}
	} else if err := release.CheckYAML(buf.Bytes(), release.ReleaseYAMLLimits); err != nil {
		return "", nil, err
	} else if err := yaml.Unmarshal(buf.Bytes(), &raw); err != nil {
		return "", nil, badRequest("the body is neither JSON nor YAML: %v", err)
	}
	if raw == nil {
		return "", nil, badRequest("the body must be an object")
	}
	mv, _ := raw["meta_version"].(string)
	if q := c.r.URL.Query().Get("meta_version"); mv == "" {
		mv = q
	}
	if mv == "" {
		return "", nil, badRequest("meta_version is required (\"<unix time>-<git sha>\")")
	}
	if err := names.MetaVersion(mv); err != nil {
		return "", nil, err
	}
	delete(raw, "meta_version")
	var spec *release.Spec
	var err error
	switch {
	case raw["spec"] != nil:
		m, ok := raw["spec"].(map[string]any)
		if !ok || len(raw) != 1 {
			return "", nil, badRequest("spec must be an object, and the only field beside meta_version")
		}
		spec, err = release.FromMap(m)
	case raw["lain_yaml"] != nil:
		y, ok := raw["lain_yaml"].(string)
		if !ok || len(raw) != 1 {
			return "", nil, badRequest("lain_yaml must be a string, and the only field beside meta_version")
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
