package local

// Instance output. Every instance's stdout and stderr go to pipes that berth
// reads; each line is stamped with the time it was read and appended to
// DataDir/logs/<app>/<proc>.<index>.<stream>.log as "<RFC 3339 time> <text>".
// When a file would grow past LogMaxBytes it is rotated: .log becomes
// .log.1, .log.1 becomes .log.2, and so on; LogFiles files are kept per
// stream (the current one included). The files of an instance index are
// shared by its restarts and replacements (one writer per file, in berth),
// and stay after the app is stopped.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/names"
)

// Defaults of Config.LogMaxBytes and Config.LogFiles.
const (
	DefaultLogMaxBytes = 10 << 20
	DefaultLogFiles    = 3
)

// maxLineBytes is the longest line kept as one: longer ones are split.
const maxLineBytes = 64 << 10

// logPoll is how often a followed log is checked for new lines.
var logPoll = 200 * time.Millisecond

// logFile is one rotated log (one stream of one instance index).
type logFile struct {
	path  string
	max   int64
	files int
	refs  int // guarded by Scheduler.logMu

	mu   sync.Mutex
	f    *os.File
	size int64
}

// openLog returns the shared writer of path, with one more reference.
func (s *Scheduler) openLog(path string) *logFile {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	l := s.logs[path]
	if l == nil {
		l = &logFile{path: path, max: s.cfg.LogMaxBytes, files: s.cfg.LogFiles}
		s.logs[path] = l
	}
	l.refs++
	return l
}

// closeLog drops a reference to l, closing its file with the last one.
func (s *Scheduler) closeLog(l *logFile) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	l.refs--
	if l.refs > 0 {
		return
	}
	delete(s.logs, l.path)
	l.mu.Lock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	l.mu.Unlock()
}

// write appends one line, stamped with t (the time now when zero: taken
// under the lock, so that the times in a file never go back), rotating
// first if the line would take the file past its limit.
func (l *logFile) write(t time.Time, text []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.IsZero() {
		t = time.Now()
	}
	line := make([]byte, 0, len(text)+40)
	line = t.UTC().AppendFormat(line, time.RFC3339Nano)
	line = append(line, ' ')
	line = append(line, text...)
	line = append(line, '\n')
	if l.f == nil {
		if err := l.open(); err != nil {
			return err
		}
	}
	if l.size > 0 && l.size+int64(len(line)) > l.max {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(line)
	l.size += int64(n)
	return err
}

func (l *logFile) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// rotate shifts path.N-1 to path.N ... path to path.1 (dropping the oldest)
// and opens a new, empty path.
func (l *logFile) rotate() error {
	l.f.Close()
	l.f = nil
	if l.files <= 1 {
		if err := os.Truncate(l.path, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return l.open()
	}
	_ = os.Remove(fmt.Sprintf("%s.%d", l.path, l.files-1))
	for i := l.files - 2; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", l.path, i), fmt.Sprintf("%s.%d", l.path, i+1))
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return l.open()
}

// outputPipe is where one stream of a running instance goes: w is given to
// the process, and a goroutine writes what comes out of r, line by line, to
// the instance's log file.
type outputPipe struct {
	s      *Scheduler
	w      *os.File
	r      *os.File
	log    *logFile
	done   chan struct{}
	closeW sync.Once
}

func (s *Scheduler) newOutputPipe(app, proc string, index int, stream string) (*outputPipe, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p := &outputPipe{s: s, r: r, w: w, done: make(chan struct{}),
		log: s.openLog(filepath.Join(s.cfg.DataDir, "logs", app, fmt.Sprintf("%s.%d.%s.log", proc, index, stream)))}
	go p.copy()
	return p, nil
}

func (p *outputPipe) copy() {
	defer close(p.done)
	br := bufio.NewReaderSize(p.r, maxLineBytes)
	warned := false
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 {
			b = bytes.TrimSuffix(b, []byte("\n"))
			if werr := p.log.write(time.Time{}, b); werr != nil && !warned {
				warned = true
				p.s.log.Warn("cannot write instance output", "path", p.log.path, "error", werr)
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// started closes berth's copy of the write end (the process has its own).
func (p *outputPipe) started() { p.closeW.Do(func() { p.w.Close() }) }

// finish waits for the process's output to be written (until every holder
// of the write end is gone, or grace has passed), then releases the pipe.
func (p *outputPipe) finish(grace time.Duration) {
	p.started()
	t := time.NewTimer(grace)
	select {
	case <-p.done:
	case <-t.C:
		p.r.Close() // ends the copy
		<-p.done
	}
	t.Stop()
	p.r.Close()
	p.s.closeLog(p.log)
}

// logName is the parsed name of a log file: <proc>.<index>.<stream>.log[.N].
type logName struct {
	proc   string
	index  int
	stream string
	gen    int // 0 = current, N = .log.N
}

func parseLogName(name string) (logName, bool) {
	var n logName
	base, suffix, _ := strings.Cut(name, ".log")
	if suffix != "" {
		if suffix[0] != '.' {
			return n, false
		}
		g, err := strconv.Atoi(suffix[1:])
		if err != nil || g < 1 {
			return n, false
		}
		n.gen = g
	}
	parts := strings.Split(base, ".")
	if len(parts) != 3 || (parts[2] != backends.StreamStdout && parts[2] != backends.StreamStderr) {
		return n, false
	}
	i, err := strconv.Atoi(parts[1])
	if err != nil || i < 0 {
		return n, false
	}
	n.proc, n.index, n.stream = parts[0], i, parts[2]
	return n, true
}

// parseLogLine splits a kept line into its time and text; a line without a
// time (written before lines were stamped) has the zero time.
func parseLogLine(b []byte) (time.Time, string) {
	if i := bytes.IndexByte(b, ' '); i > 0 {
		if t, err := time.Parse(time.RFC3339Nano, string(b[:i])); err == nil {
			return t, string(b[i+1:])
		}
	}
	return time.Time{}, string(b)
}

// streamKey is one stream of one instance index.
type streamKey struct {
	proc   string
	index  int
	stream string
}

func (k streamKey) path(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("%s.%d.%s.log", k.proc, k.index, k.stream))
}

// tail reads one stream's current file from where it left off, across
// rotations.
type tail struct {
	key     streamKey
	path    string
	f       *os.File
	off     int64
	pending []byte // a line not yet complete
}

// read returns the complete lines added since the last read. When the file
// has been rotated away, the rest of the old file is read first.
func (t *tail) read() [][]byte {
	var out [][]byte
	for range 2 {
		if t.f == nil {
			f, err := os.Open(t.path)
			if err != nil {
				return out
			}
			t.f, t.off, t.pending = f, 0, nil
		}
		out = append(out, t.readFile()...)
		fi, err := os.Stat(t.path)
		if err == nil && sameFile(t.f, fi) {
			if fi.Size() < t.off { // truncated (LogFiles 1)
				t.off, t.pending = 0, nil
				continue
			}
			return out
		}
		// Rotated: what was written to the old file before it moved has
		// been read (one writer, whole lines). Files rotated since (newer
		// than the old one) are read whole; then on with the current one.
		if len(t.pending) > 0 {
			out = append(out, t.pending)
		}
		out = append(out, t.rotatedSince()...)
		t.f.Close()
		t.f = nil
	}
	return out
}

// rotatedSince reads the rotated files newer than t.f (path.K-1 ... path.1
// when t.f is now path.K).
func (t *tail) rotatedSince() [][]byte {
	var out [][]byte
	for k := 1; ; k++ {
		fi, err := os.Stat(fmt.Sprintf("%s.%d", t.path, k))
		if err != nil {
			return nil // t.f is gone: what was in it and in between is lost
		}
		if !sameFile(t.f, fi) {
			continue
		}
		for g := k - 1; g >= 1; g-- {
			f, err := os.Open(fmt.Sprintf("%s.%d", t.path, g))
			if err != nil {
				continue
			}
			r := &tail{f: f}
			out = append(out, r.readFile()...)
			if len(r.pending) > 0 {
				out = append(out, r.pending)
			}
			f.Close()
		}
		return out
	}
}

func (t *tail) readFile() [][]byte {
	var out [][]byte
	buf := make([]byte, 64<<10)
	for {
		n, err := t.f.ReadAt(buf, t.off)
		t.off += int64(n)
		data := append(t.pending, buf[:n]...)
		t.pending = nil
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			out = append(out, data[:i])
			data = data[i+1:]
		}
		if len(data) > 0 {
			t.pending = slices.Clone(data)
		}
		if err != nil || n == 0 {
			return out
		}
	}
}

func (t *tail) close() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}

func sameFile(f *os.File, fi os.FileInfo) bool {
	cur, err := f.Stat()
	return err == nil && os.SameFile(cur, fi)
}

// Logs reads the kept output of the app's instances (see
// backends.Scheduler).
func (s *Scheduler) Logs(ctx context.Context, appName string, q backends.LogQuery) (<-chan backends.LogLine, error) {
	if err := names.App(appName); err != nil {
		return nil, fmt.Errorf("%w: %v", backends.ErrNotFound, err)
	}
	sel, err := s.logSelector(appName, q)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(s.cfg.DataDir, "logs", appName)
	s.mu.Lock()
	_, running := s.apps[appName]
	s.mu.Unlock()
	keys, err := logKeys(dir, sel)
	if err != nil {
		return nil, err
	}
	if !running {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("%w: app %s has no instances and no kept output", backends.ErrNotFound, appName)
		}
	}
	tails := map[streamKey]*tail{}
	var lines []backends.LogLine
	for _, k := range keys {
		got, t := readKept(dir, k, q)
		tails[k] = t
		lines = append(lines, got...)
	}
	sortLines(lines)
	if q.Lines > 0 && len(lines) > q.Lines {
		lines = lines[len(lines)-q.Lines:]
	}
	// The reader ends with ctx or with the scheduler (Close waits for it).
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		for _, t := range tails {
			t.close()
		}
		return nil, errors.New("local scheduler: closed")
	}
	s.readers.Add(1)
	s.mu.Unlock()
	ch := make(chan backends.LogLine, 64)
	go func() {
		defer s.readers.Done()
		defer close(ch)
		defer func() {
			for _, t := range tails {
				t.close()
			}
		}()
		if !s.send(ctx, ch, lines) || !q.Follow {
			return
		}
		tick := time.NewTicker(logPoll)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.quit:
				return
			case <-tick.C:
			}
			// Instances started since (or files not there before).
			if ks, err := logKeys(dir, sel); err == nil {
				for _, k := range ks {
					if tails[k] == nil {
						tails[k] = &tail{key: k, path: k.path(dir)}
					}
				}
			}
			var batch []backends.LogLine
			for _, t := range tails {
				for _, b := range t.read() {
					batch = append(batch, toLine(t.key, b))
				}
			}
			sortLines(batch)
			if !s.send(ctx, ch, batch) {
				return
			}
		}
	}()
	return ch, nil
}

func (s *Scheduler) send(ctx context.Context, ch chan<- backends.LogLine, lines []backends.LogLine) bool {
	for _, l := range lines {
		select {
		case ch <- l:
		case <-ctx.Done():
			return false
		case <-s.quit:
			return false
		}
	}
	return true
}

func toLine(k streamKey, b []byte) backends.LogLine {
	t, text := parseLogLine(b)
	return backends.LogLine{Time: t, Proc: k.proc, Instance: k.index, Stream: k.stream, Text: text}
}

func sortLines(lines []backends.LogLine) {
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].Time.Before(lines[j].Time) })
}

// logSelector turns the query's proc, instance and stream into a filter.
func (s *Scheduler) logSelector(appName string, q backends.LogQuery) (func(streamKey) bool, error) {
	index := -1
	if q.Instance != "" {
		id := q.Instance
		// The instance ID is app/proc/index.
		if rest, ok := strings.CutPrefix(id, appName+"/"); ok {
			proc, idx, ok := strings.Cut(rest, "/")
			if !ok || (q.Proc != "" && q.Proc != proc) {
				return nil, fmt.Errorf("%w: instance %q", backends.ErrNotFound, q.Instance)
			}
			q.Proc, id = proc, idx
		}
		i, err := strconv.Atoi(id)
		if err != nil || i < 0 {
			return nil, fmt.Errorf("%w: instance %q is neither an index nor an instance id", backends.ErrBadLogQuery, q.Instance)
		}
		index = i
	}
	if q.Stream != "" && q.Stream != backends.StreamStdout && q.Stream != backends.StreamStderr {
		return nil, fmt.Errorf("%w: stream %q is neither stdout nor stderr", backends.ErrBadLogQuery, q.Stream)
	}
	return func(k streamKey) bool {
		return (q.Proc == "" || k.proc == q.Proc) && (index < 0 || k.index == index) && (q.Stream == "" || k.stream == q.Stream)
	}, nil
}

// logKeys lists the streams in dir that sel selects.
func logKeys(dir string, sel func(streamKey) bool) ([]streamKey, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seen := map[streamKey]bool{}
	var keys []streamKey
	for _, e := range ents {
		n, ok := parseLogName(e.Name())
		if !ok {
			continue
		}
		k := streamKey{n.proc, n.index, n.stream}
		if !seen[k] && sel(k) {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// readKept reads one stream's kept lines that q selects (time, last
// Lines), rotated files first, and returns a tail positioned after them.
func readKept(dir string, k streamKey, q backends.LogQuery) ([]backends.LogLine, *tail) {
	var lines []backends.LogLine
	keep := func(b []byte) {
		l := toLine(k, b)
		if !q.Since.IsZero() && l.Time.Before(q.Since) {
			return
		}
		lines = append(lines, l)
		if q.Lines > 0 && len(lines) >= 2*q.Lines {
			lines = append(lines[:0], lines[len(lines)-q.Lines:]...)
		}
	}
	path := k.path(dir)
	var gens []int
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if n, ok := parseLogName(e.Name()); ok && n.gen > 0 && (streamKey{n.proc, n.index, n.stream}) == k {
				gens = append(gens, n.gen)
			}
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(gens)))
	for _, g := range gens {
		f, err := os.Open(fmt.Sprintf("%s.%d", path, g))
		if err != nil {
			continue
		}
		br := bufio.NewReaderSize(f, maxLineBytes)
		for {
			b, err := br.ReadSlice('\n')
			if len(b) > 0 {
				keep(bytes.TrimSuffix(b, []byte("\n")))
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		f.Close()
	}
	t := &tail{key: k, path: path}
	for _, b := range t.read() {
		keep(b)
	}
	if q.Lines > 0 && len(lines) > q.Lines {
		lines = lines[len(lines)-q.Lines:]
	}
	return lines, t
}
