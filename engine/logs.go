package engine

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/names"
)

// MaxLogLines is the most lines one logs request may ask for.
const MaxLogLines = 10000

// Logs reads an app's output (its instances' stdout and stderr) from the
// scheduler: the kept lines q selects, oldest first, then, with q.Follow,
// new ones until ctx ends (see backends.Scheduler.Logs). Whoever may read
// the app may read its logs (ActAppRead). An app whose output the
// scheduler has nothing of (never deployed) is KindNotFound.
func (s *Engine) Logs(ctx context.Context, id *Identity, app string, q backends.LogQuery) (<-chan backends.LogLine, error) {
	if err := names.App(app); err != nil {
		return nil, err
	}
	if _, err := s.LoadApp(ctx, id, app, ActAppRead); err != nil {
		return nil, err
	}
	if q.Proc != "" {
		if err := names.Proc(q.Proc); err != nil {
			return nil, InvalidField("proc", "%s", err.Error())
		}
	}
	if q.Lines < 0 || q.Lines > MaxLogLines {
		return nil, InvalidField("lines", "lines must be between 0 (all kept) and %d", MaxLogLines)
	}
	if q.Stream != "" && q.Stream != backends.StreamStdout && q.Stream != backends.StreamStderr {
		return nil, InvalidField("stream", "stream must be stdout or stderr")
	}
	if len(q.Instance) > 100 {
		return nil, InvalidField("instance", "instance must be an instance index or id")
	}
	if s.sched == nil {
		return nil, Unavailable("no scheduler is configured")
	}
	ch, err := s.sched.Logs(ctx, app, q)
	switch {
	case err == nil:
		return ch, nil
	case errors.Is(err, backends.ErrNotFound):
		return nil, notFound("app %q has no output: it has not been deployed", app)
	case errors.Is(err, backends.ErrBadLogQuery):
		return nil, InvalidField("instance", "%s", err.Error())
	case ctx.Err() != nil:
		return nil, ctx.Err()
	default:
		s.log.Warn("reading logs", "app", app, "error", err)
		if isBackendDown(err) {
			return nil, err // 503 naming the scheduler's backend, with Retry-After
		}
		return nil, Unavailable("the scheduler cannot read the logs of %q now", app)
	}
}

// LastStderr returns the last n lines (at most) that the app's instance
// which wrote to stderr last wrote there: on a failed deploy, the failing
// instance's last words. Nil when there are none or the scheduler cannot
// say within a few seconds. For the reconciler: the answer and the event of
// a failed deploy carry them (e.g. appended to the deploy's message).
func (s *Engine) LastStderr(ctx context.Context, app string, n int) []string {
	if s.sched == nil || n <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// A few instances' worth, to find the last writer's n among them.
	ch, err := s.sched.Logs(ctx, app, backends.LogQuery{Stream: backends.StreamStderr, Lines: 4 * n})
	if err != nil {
		return nil
	}
	var lines []backends.LogLine
	for l := range ch {
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		return nil
	}
	last := lines[len(lines)-1]
	var out []string
	for _, l := range lines {
		if l.Proc == last.Proc && l.Instance == last.Instance {
			out = append(out, l.Text)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// StderrMessage appends the last stderr lines to a deploy's failure
// message, as the answer and event of a failed deploy show it.
func StderrMessage(msg string, stderr []string) string {
	if len(stderr) == 0 {
		return msg
	}
	return msg + "; last lines of stderr:\n" + strings.Join(stderr, "\n")
}
