package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/berthpaas/berth/engine/state"
)

// GET /api/v1/apps/:app/events/ — Server-Sent Events of the app's
// operation progress (pending -> deploying -> running, or failed with the
// reason), driven by a blocking query on the app's deploy record, with a
// keepalive comment every 15 seconds. ?until=final ends the stream at
// running, failed or undeployed.
func (s *Server) streamEvents(c *call) (any, error) {
	w, a, err := s.eng.WatchDeploy(c.ctx(), c.id, appTarget(c, "app"), 15*time.Second)
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
	for ctx.Err() == nil {
		d, index, err := w.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(c.w, "event: error\ndata: %q\n\n", "the store did not answer; retrying")
			fl.Flush()
			sleep(ctx, time.Second)
			continue
		}
		if d == nil {
			fmt.Fprint(c.w, ": keepalive\n\n")
			fl.Flush()
			continue
		}
		b, _ := json.Marshal(deployOut(d))
		fmt.Fprintf(c.w, "id: %d\nevent: %s\ndata: %s\n\n", index, d.State, b)
		fl.Flush()
		if untilFinal && (d.State == state.DeployRunning || d.State == state.DeployFailed || d.State == state.DeployUndeployed) {
			break
		}
	}
	return streamed{}, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
