package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine"
)

// logsRoute is the route table's entry of GET /api/v1/apps/:app/logs/.
func (s *Server) logsRoute() route {
	return route{
		Method: http.MethodGet, Path: "/api/v1/apps/:app/logs", Action: engine.ActAppRead, Tag: "apps", Stream: true, StreamType: "application/x-ndjson",
		Query: []queryParam{
			{Name: "proc", Doc: "only this proc's instances"},
			{Name: "instance", Doc: "only this instance: its index (0, 1, ...) or its id"},
			{Name: "stream", Doc: "stdout or stderr only"},
			{Name: "lines", Type: "integer", Doc: "the latest N lines (default: every kept line, at most 10000 asked)"},
			{Name: "since", Doc: "lines written since: an RFC 3339 time or a duration ago (10m, 1h30m)"},
			{Name: "follow", Type: "boolean", Doc: "true: keep the answer open and send new lines until the client goes away"},
		},
		Summary: "An app's output: JSON lines (application/x-ndjson) of {time, proc, instance, stream, line}",
		h:       s.streamLogs,
	}
}

// GET /api/v1/apps/:app/logs/ — the app's output as JSON lines
// (api.LogLine), oldest first, each flushed as it is written; with
// follow=true the answer stays open, sending new lines, until the client
// goes away.
func (s *Server) streamLogs(c *call) (any, error) {
	if s.forwardToHolder(c) {
		return streamed{}, nil
	}
	qs := c.r.URL.Query()
	q := backends.LogQuery{Proc: qs.Get("proc"), Instance: qs.Get("instance"), Stream: qs.Get("stream")}
	if v := qs.Get("lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, engine.InvalidField("lines", "lines must be a number of lines, not %q", v)
		}
		q.Lines = n
	}
	if v := qs.Get("since"); v != "" {
		t, err := parseSince(v, time.Now())
		if err != nil {
			return nil, err
		}
		q.Since = t
	}
	switch v := strings.ToLower(qs.Get("follow")); v {
	case "", "false", "0":
	case "true", "1":
		q.Follow = true
	default:
		return nil, engine.InvalidField("follow", "follow must be true or false, not %q", v)
	}
	fl, ok := c.w.(http.Flusher)
	if !ok {
		return nil, errStatus(500, "streaming is not supported here")
	}
	ctx := c.ctx()
	lines, err := s.eng.Logs(ctx, c.id, c.param("app"), q)
	if err != nil {
		return nil, err
	}
	h := c.w.Header()
	h.Set("Content-Type", api.LogContentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.w.WriteHeader(http.StatusOK)
	fl.Flush()
	enc := json.NewEncoder(c.w)
	for l := range lines {
		out := api.LogLine{Proc: l.Proc, Instance: l.Instance, Stream: l.Stream, Line: l.Text}
		if !l.Time.IsZero() {
			t := l.Time.UTC()
			out.Time = &t
		}
		if enc.Encode(out) != nil {
			break // the client went away: ctx ends, and with it the reading
		}
		// Flush when nothing more is waiting, so that a burst goes out in
		// a few writes and a followed line at once.
		if len(lines) == 0 {
			fl.Flush()
		}
	}
	fl.Flush()
	// Drain what the scheduler may still send until ctx ends.
	go func() {
		for range lines {
		}
	}()
	return streamed{}, nil
}

// parseSince reads since: an RFC 3339 time, or a duration before now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, engine.InvalidField("since", "since must be an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (10m), not %q", v)
}
