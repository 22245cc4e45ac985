package server

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
)

// releaseRoutes are the routes of releases, the deploy history and
// rollback (issue 10), for the route table.
func (s *Server) releaseRoutes() []route {
	const g, p = http.MethodGet, http.MethodPost
	return []route{
		{Method: g, Path: "/api/v1/repos/:app/releases", Query: pageQuery, Out: []api.Release{}, Action: engine.ActAppRead, Tag: "repos", Summary: "An app's pushed releases, newest first", h: s.listReleases},
		{Method: g, Path: "/api/v1/apps/:app/history", Query: pageQuery, Out: []api.HistoryEntry{}, Action: engine.ActAppRead, Tag: "deploys", Summary: "An app's deploy history, newest first (the last 100 operations)", h: s.deployHistory},
		{Method: p, Path: "/api/v1/apps/:app/rollback", In: api.RollbackRequest{}, InOptional: true, Out: api.Operation{}, Action: engine.ActAppRollback, Tag: "deploys", Status: 202, Summary: "Roll a deployed app back to a release (by default the one that ran before)", h: s.rollback},
	}
}

// GET /api/v1/repos/:app/releases/
func (s *Server) listReleases(c *call) (any, error) {
	rs, a, err := s.eng.Releases(c.ctx(), c.id, appTarget(c, "app"))
	if err != nil {
		return nil, err
	}
	out := []api.Release{}
	for _, r := range rs {
		v := api.Release{AppName: r.App, MetaVersion: r.MetaVersion, PushedBy: r.PushedBy, Pushed: r.Pushed, Image: r.Spec.Image,
			Resources: r.Spec.Resources, Procs: []api.ReleaseProc{}, Current: a.Deployed && a.MetaVersion == r.MetaVersion}
		for _, p := range r.Spec.Procs {
			v.Procs = append(v.Procs, api.ReleaseProc{Name: p.Name, Type: p.Type, Cmd: p.Cmd, Image: p.Image, Port: p.Port,
				NumInstances: p.NumInstances, CPU: p.CPU, MemoryMB: p.MemoryMB, Env: p.Env, HealthCheck: p.HealthCheck})
		}
		out = append(out, v)
	}
	return pageSlice(c, out, func(r api.Release) string { return newestFirst(r.Pushed.UnixNano()) + " " + r.MetaVersion })
}

// GET /api/v1/apps/:app/history/
func (s *Server) deployHistory(c *call) (any, error) {
	h, err := s.eng.History(c.ctx(), c.id, appTarget(c, "app"))
	if err != nil {
		return nil, err
	}
	out := []api.HistoryEntry{}
	for _, x := range h {
		v := api.HistoryEntry{Generation: x.Generation, Operation: x.Operation, MetaVersion: x.MetaVersion, Result: string(x.State),
			RevertedTo: x.RevertedTo, Message: x.Message, By: x.By, DurationMS: x.Duration.Milliseconds(),
			Started: timeOrNil(x.Started), Finished: timeOrNil(x.Finished)}
		if x.Reverted && x.State == state.DeployFailed {
			v.Result = api.ResultReverted
		}
		out = append(out, v)
	}
	return pageSlice(c, out, func(h api.HistoryEntry) string { return newestFirst(h.Generation) })
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// POST /api/v1/apps/:app/rollback/ [{"meta_version"}] — back to that
// release, or to the one that ran before the current one.
func (s *Server) rollback(c *call) (any, error) {
	app := appTarget(c, "app")
	var in api.RollbackRequest
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, errBodyTimeout) {
			return nil, err
		}
		return nil, badRequest("could not read the request body")
	}
	if strings.TrimSpace(string(body)) != "" {
		if err := decodeBytes(body, &in); err != nil {
			return nil, err
		}
	}
	ch, err := s.eng.Rollback(c.ctx(), c.id, app, in.MetaVersion)
	if err != nil {
		return nil, err
	}
	if c.target != "" {
		c.target = app + "@" + ch.App.MetaVersion
	}
	return accepted(ch), nil
}
