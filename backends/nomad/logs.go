package nomad

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
)

// Logs reads the output of the app's allocations from Nomad's allocation
// logs API (AllocFS().Logs), task = proc, for stdout and stderr: the
// allocations of the app's jobs that Nomad still has (so the output of a
// crashed allocation stays readable until Nomad garbage-collects it).
//
// Nomad keeps no time per line: lines read from what was kept carry none,
// followed lines the time they were received, and Since skips the
// allocations that had stopped before it. Lines of one allocation come in
// order, stdout's before stderr's; allocations in the order they were
// created. Lines is met by reading that many bytes back from the end
// (origin "end" with an offset), more until enough lines are read. Follow
// then streams the running allocations' new output (and that of
// allocations placed later, checked every few seconds) from the end:
// a line written in the instant between the two reads may be missed.
func (s *Scheduler) Logs(ctx context.Context, app string, q backends.LogQuery) (<-chan backends.LogLine, error) {
	if q.Stream != "" && q.Stream != backends.StreamStdout && q.Stream != backends.StreamStderr {
		return nil, fmt.Errorf("%w: stream %q is neither stdout nor stderr", backends.ErrBadLogQuery, q.Stream)
	}
	allocs, err := s.appAllocs(ctx, app)
	if err != nil {
		return nil, err
	}
	if len(allocs) == 0 {
		job, err := s.info(ctx, app)
		if err != nil {
			return nil, err
		}
		if job == nil {
			return nil, fmt.Errorf("nomad: app %q: %w", app, backends.ErrNotFound)
		}
	}
	sel := selectAllocs(allocs, q)
	src := apiLogs{s}
	var lines []backends.LogLine
	for _, a := range sel {
		for _, stream := range streams(q) {
			got, err := readLast(ctx, src, a.ID, a.TaskGroup, stream, q.Lines)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				// An allocation whose client is gone has no logs to give.
				s.log.Debug("no logs of allocation", "alloc", a.ID, "stream", stream, "error", err)
				continue
			}
			for _, t := range got {
				lines = append(lines, backends.LogLine{Proc: a.TaskGroup, Instance: allocIndex(a.Name), Stream: stream, Text: t})
			}
		}
	}
	if q.Lines > 0 && len(lines) > q.Lines {
		lines = lines[len(lines)-q.Lines:]
	}
	// The reader ends with ctx or with the scheduler (Close waits for it).
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	ch := make(chan backends.LogLine, 64)
	go func() {
		defer s.wg.Done()
		defer cancel()
		defer stop()
		defer close(ch)
		for _, l := range lines {
			select {
			case ch <- l:
			case <-ctx.Done():
				return
			}
		}
		if q.Follow {
			s.followLogs(ctx, src, app, q, sel, ch)
		}
	}()
	return ch, nil
}

// logFollowPoll is how often a follow looks for newly placed allocations.
var logFollowPoll = 3 * time.Second

func (s *Scheduler) followLogs(ctx context.Context, src logSource, app string, q backends.LogQuery, known []*api.AllocationListStub, ch chan<- backends.LogLine) {
	var wg sync.WaitGroup
	defer wg.Wait()
	seen := map[string]bool{}
	start := func(a *api.AllocationListStub, origin string) {
		seen[a.ID] = true
		if a.ClientStatus != api.AllocClientStatusPending && a.ClientStatus != api.AllocClientStatusRunning {
			return
		}
		for _, stream := range streams(q) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := follow(ctx, src, a.ID, a.TaskGroup, stream, origin, func(text string) bool {
					l := backends.LogLine{Time: time.Now(), Proc: a.TaskGroup, Instance: allocIndex(a.Name), Stream: stream, Text: text}
					select {
					case ch <- l:
						return true
					case <-ctx.Done():
						return false
					}
				})
				if err != nil && ctx.Err() == nil {
					s.log.Warn("following the logs of an allocation ended", "alloc", a.ID, "stream", stream, "error", err)
				}
			}()
		}
	}
	for _, a := range known {
		start(a, "end")
	}
	t := time.NewTicker(logFollowPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		allocs, err := s.appAllocs(ctx, app)
		if err != nil {
			continue
		}
		for _, a := range selectAllocs(allocs, q) {
			if !seen[a.ID] {
				start(a, "start")
			}
		}
	}
}

// appAllocs lists the allocations of every job of the app, oldest first.
func (s *Scheduler) appAllocs(ctx context.Context, app string) ([]*api.AllocationListStub, error) {
	ids, err := s.appJobs(ctx, app)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 || ids[0] != app {
		ids = append([]string{app}, ids...)
	}
	var all []*api.AllocationListStub
	for _, id := range ids {
		more, err := s.allocations(ctx, id)
		if err != nil {
			return nil, err
		}
		all = append(all, more...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].CreateIndex < all[j].CreateIndex })
	return all, nil
}

// selectAllocs keeps the allocations q selects: its proc (task group), its
// instance (index, or allocation ID or a prefix of one), and, with Since,
// those still running then.
func selectAllocs(allocs []*api.AllocationListStub, q backends.LogQuery) []*api.AllocationListStub {
	var out []*api.AllocationListStub
	for _, a := range allocs {
		if q.Proc != "" && a.TaskGroup != q.Proc {
			continue
		}
		if q.Instance != "" && fmt.Sprint(allocIndex(a.Name)) != q.Instance && !strings.HasPrefix(a.ID, q.Instance) {
			continue
		}
		terminal := a.ClientStatus != api.AllocClientStatusPending && a.ClientStatus != api.AllocClientStatusRunning
		if !q.Since.IsZero() && terminal && time.Unix(0, a.ModifyTime).Before(q.Since) {
			continue
		}
		out = append(out, a)
	}
	return out
}

func streams(q backends.LogQuery) []string {
	if q.Stream != "" {
		return []string{q.Stream}
	}
	return []string{backends.StreamStdout, backends.StreamStderr}
}

// logSource reads the log of one task of one allocation: data chunks as
// Nomad's log frames carry them; the chunks channel is closed at the end
// (at once when not following), a failure comes on the error channel.
type logSource interface {
	Logs(ctx context.Context, allocID, task, stream, origin string, offset int64, follow bool) (<-chan []byte, <-chan error)
}

type apiLogs struct{ s *Scheduler }

func (a apiLogs) Logs(ctx context.Context, allocID, task, stream, origin string, offset int64, follow bool) (<-chan []byte, <-chan error) {
	errc := make(chan error, 1)
	alloc, _, err := a.s.client.Allocations().Info(allocID, a.s.q(ctx))
	if err != nil {
		errc <- a.s.unavailable(ctx, "allocation "+allocID, err)
		return nil, errc
	}
	frames, ferr := a.s.stream.AllocFS().Logs(alloc, follow, task, stream, origin, offset, ctx.Done(), a.s.q(ctx))
	if frames == nil {
		return nil, ferr
	}
	out := make(chan []byte)
	go func() {
		defer close(out)
		for {
			select {
			case f, ok := <-frames:
				if !ok {
					return
				}
				if len(f.Data) == 0 {
					continue
				}
				select {
				case out <- f.Data:
				case <-ctx.Done():
					return
				}
			case err := <-ferr:
				errc <- err
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, errc
}

// maxLogWindow bounds how far back from the end readLast reads.
const maxLogWindow = 16 << 20

// readLast reads the last n lines (n = 0: all) of one task's stream: from
// the start when n is 0, else a window from the end that grows until it
// holds n whole lines or the whole log.
func readLast(ctx context.Context, src logSource, allocID, task, stream string, n int) ([]string, error) {
	if n <= 0 {
		b, err := readAll(ctx, src, allocID, task, stream, "start", 0)
		if err != nil {
			return nil, err
		}
		return splitLines(b), nil
	}
	window := int64(n) * 200
	for {
		b, err := readAll(ctx, src, allocID, task, stream, "end", window)
		if err != nil {
			return nil, err
		}
		lines := splitLines(b)
		whole := int64(len(b)) < window // the window reached the start of the log
		if !whole && len(lines) > 0 {
			lines = lines[1:] // the first one is cut
		}
		if len(lines) >= n || whole || window >= maxLogWindow {
			if len(lines) > n {
				lines = lines[len(lines)-n:]
			}
			return lines, nil
		}
		window *= 4
	}
}

func readAll(ctx context.Context, src logSource, allocID, task, stream, origin string, offset int64) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	data, errc := src.Logs(ctx, allocID, task, stream, origin, offset, false)
	var buf bytes.Buffer
	for {
		select {
		case b, ok := <-data:
			if !ok {
				return buf.Bytes(), nil
			}
			buf.Write(b)
		case err := <-errc:
			if err == nil {
				err = errors.New("log stream ended")
			}
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// splitLines splits output into lines without their newlines; a last line
// without a newline counts.
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	parts := strings.Split(string(b), "\n")
	return parts
}

// follow streams one task's stream from origin, calling emit for every
// whole line until ctx ends, the log ends or emit returns false.
//
// Nomad reads origin "end" at offset 0 as the start of the last log file
// (client/fs_endpoint.go findClosest: offset 0 is its base case), so the
// end is asked for as one byte before it: the last line's newline, which
// is dropped. (An empty log file is then read from its start, which is its
// end.)
func follow(ctx context.Context, src logSource, allocID, task, stream, origin string, emit func(string) bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var offset int64
	skipNewline := false
	if origin == "end" {
		offset, skipNewline = 1, true
	}
	data, errc := src.Logs(ctx, allocID, task, stream, origin, offset, true)
	var pending []byte
	for {
		select {
		case b, ok := <-data:
			if !ok {
				if len(pending) > 0 {
					emit(string(pending))
				}
				return nil
			}
			if skipNewline && len(b) > 0 {
				if b[0] == '\n' {
					b = b[1:]
				}
				skipNewline = false
			}
			pending = append(pending, b...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				if !emit(string(pending[:i])) {
					return nil
				}
				pending = pending[i+1:]
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			return nil
		}
	}
}
