package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
)

// GET /api/v1/apps/:app/events/ — Server-Sent Events of the app's
// operation progress (pending -> deploying -> running, or failed with the
// reason), driven by a blocking query on the app's deploy record, with a
// keepalive comment every 15 seconds. ?until=final ends the stream at
// running, failed or undeployed.
func (s *Server) streamEvents(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppRead)
	if err != nil {
		return nil, err
	}
	untilFinal := c.r.URL.Query().Get("until") == "final"
	fl, ok := c.w.(http.Flusher)
	if !ok {
		return nil, errStatus(500, "streaming is not supported here")
	}
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.w.WriteHeader(http.StatusOK)
	fmt.Fprintf(c.w, ": events of app %s\n\n", a.Name)
	fl.Flush()
	ctx := c.ctx()
	var index uint64
	var last []byte
	for ctx.Err() == nil {
		p, meta, err := s.store.Get(ctx, state.DeployKey(a.Name), &backends.QueryOptions{WaitIndex: index, WaitTime: 15 * time.Second})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(c.w, "event: error\ndata: %q\n\n", "the store did not answer; retrying")
			fl.Flush()
			engine.Sleep(ctx, time.Second)
			continue
		}
		if meta.LastIndex < index {
			index = 0
		} else {
			index = meta.LastIndex
		}
		if p == nil || string(p.Value) == string(last) {
			fmt.Fprint(c.w, ": keepalive\n\n")
			fl.Flush()
			continue
		}
		last = p.Value
		var d state.Deploy
		if json.Unmarshal(p.Value, &d) != nil {
			continue
		}
		b, _ := json.Marshal(d)
		fmt.Fprintf(c.w, "id: %d\nevent: %s\ndata: %s\n\n", index, d.State, b)
		fl.Flush()
		if untilFinal && (d.State == state.DeployRunning || d.State == state.DeployFailed || d.State == state.DeployUndeployed) {
			break
		}
	}
	return streamed{}, nil
}
