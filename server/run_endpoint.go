package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
)

// runRoutes are the route table's entries of one-off commands.
func (s *Server) runRoutes() []route {
	return []route{{
		Method: http.MethodPost, Path: "/api/v1/apps/:app/run", Action: engine.ActAppRun, Tag: "apps",
		In: api.RunRequest{}, Stream: true, StreamType: api.RunContentType,
		Summary: "Run a one-off command with the app's release and env: JSON lines (application/x-ndjson) of {stream, line}, then {exit_code}; closing the connection kills it",
		h:       s.runCommand,
	}}
}

// runOutputLine is a line of the command's output in the answer (line
// present even when empty).
type runOutputLine struct {
	Stream string `json:"stream"`
	Line   string `json:"line"`
}

// POST /api/v1/apps/:app/run/ — runs the command and streams its output as
// JSON lines, each flushed as it comes: first {run_id, proc, meta_version},
// then {stream, line} per line, then {exit_code} (with error when the
// command did not end by itself). The client going away kills the command.
func (s *Server) runCommand(c *call) (any, error) {
	var in api.RunRequest
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	req := engine.RunRequest{Command: in.Command, Proc: in.Proc}
	if in.Timeout != "" {
		d, err := time.ParseDuration(in.Timeout)
		if err != nil || d <= 0 {
			return nil, engine.InvalidField("timeout", "timeout must be a duration (10m, 1h30m), not %q", in.Timeout)
		}
		req.Timeout = d
	}
	fl, ok := c.w.(http.Flusher)
	if !ok {
		return nil, errStatus(500, "streaming is not supported here")
	}
	rc, err := s.eng.Run(c.ctx(), c.id, c.param("app"), req)
	if err != nil {
		return nil, err
	}
	h := c.w.Header()
	h.Set("Content-Type", api.RunContentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(c.w)
	_ = enc.Encode(api.RunLine{RunID: rc.ID, Proc: rc.Proc, MetaVersion: rc.MetaVersion})
	fl.Flush()
	broken := false
	for l := range rc.Lines {
		if broken {
			continue // the client went away: ctx ends, and with it the command
		}
		if enc.Encode(runOutputLine{Stream: l.Stream, Line: l.Text}) != nil {
			broken = true
			continue
		}
		if len(rc.Lines) == 0 {
			fl.Flush()
		}
	}
	res := <-rc.Result
	end := api.RunLine{ExitCode: &res.ExitCode}
	if res.Err != nil {
		end.Error = res.Err.Error()
		if ee, ok := engine.AsError(res.Err); ok {
			end.Error = ee.Error()
		} else if errors.Is(res.Err, c.ctx().Err()) {
			end.Error = "the request ended: the command was killed"
		}
	}
	if !broken {
		_ = enc.Encode(end)
		fl.Flush()
	}
	return streamed{}, nil
}
