package nomad

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
)

// fakeLogs serves task logs as Nomad's logs API does: from the start or a
// number of bytes back from the end, in frames of a few bytes; following,
// it sends what is appended until the context ends.
type fakeLogs struct {
	mu      sync.Mutex
	logs    map[string][]byte // alloc/task/stream -> content
	reads   []int64           // offsets asked for with origin end
	appends chan struct{}
}

func newFakeLogs() *fakeLogs {
	return &fakeLogs{logs: map[string][]byte{}, appends: make(chan struct{}, 100)}
}

func (f *fakeLogs) add(key, s string) {
	f.mu.Lock()
	f.logs[key] = append(f.logs[key], s...)
	f.mu.Unlock()
	f.appends <- struct{}{}
}

func (f *fakeLogs) Logs(ctx context.Context, allocID, task, stream, origin string, offset int64, follow bool) (<-chan []byte, <-chan error) {
	key := allocID + "/" + task + "/" + stream
	errc := make(chan error, 1)
	f.mu.Lock()
	data, ok := f.logs[key]
	if origin == "end" {
		f.reads = append(f.reads, offset)
	}
	f.mu.Unlock()
	if !ok {
		errc <- fmt.Errorf("no such log %s", key)
		return nil, errc
	}
	from := offset
	if origin == "end" {
		from = max(0, int64(len(data))-offset)
	}
	out := make(chan []byte)
	go func() {
		defer close(out)
		pos := from
		for {
			f.mu.Lock()
			data := f.logs[key]
			f.mu.Unlock()
			for pos < int64(len(data)) {
				end := min(pos+7, int64(len(data)))
				select {
				case out <- data[pos:end]:
				case <-ctx.Done():
					return
				}
				pos = end
			}
			if !follow {
				return
			}
			select {
			case <-f.appends:
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, errc
}

func numbered(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d of the output, padded to a fair length ..........................\n", i)
	}
	return b.String()
}

func TestReadLast(t *testing.T) {
	f := newFakeLogs()
	f.add("a1/web/stdout", numbered(500))
	ctx := context.Background()

	got, err := readLast(ctx, f, "a1", "web", "stdout", 3)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != strings.TrimSuffix(strings.ReplaceAll(numbered(500)[len(numbered(497)):], "\n", "|"), "|") {
		t.Fatalf("last 3: %q", got)
	}
	// Lines longer than the 200 bytes a line is first guessed at: 400 of
	// them take a second, larger window.
	f.add("a2/web/stdout", strings.ReplaceAll(numbered(500), "...", strings.Repeat(".", 100)))
	f.reads = nil
	long, err := readLast(ctx, f, "a2", "web", "stdout", 400)
	if err != nil {
		t.Fatal(err)
	}
	if len(long) != 400 || len(f.reads) < 2 || !strings.HasPrefix(long[0], "line 101 ") || !strings.HasPrefix(long[399], "line 500 ") {
		t.Fatalf("last 400 long lines: %d lines in %d reads, first %.20q", len(long), len(f.reads), long[0])
	}
	got, err = readLast(ctx, f, "a1", "web", "stdout", 400)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 400 || got[0] != strings.Split(numbered(101), "\n")[100] || got[399] != strings.Split(numbered(500), "\n")[499] {
		t.Fatalf("last 400: %d lines, first %q last %q", len(got), got[0], got[len(got)-1])
	}
	// Asking for more lines than there are gives them all, in one read.
	f.reads = nil
	got, _ = readLast(ctx, f, "a1", "web", "stdout", 1000)
	if len(got) != 500 || len(f.reads) != 1 {
		t.Fatalf("1000 of 500 lines: %d lines in %d reads", len(got), len(f.reads))
	}
	got, _ = readLast(ctx, f, "a1", "web", "stdout", 0)
	if len(got) != 500 || !strings.HasPrefix(got[0], "line 1 ") {
		t.Fatalf("every line: %d, first %q", len(got), got[0])
	}
	// A last line without its newline counts.
	f.add("a1/web/stderr", "first\nno newline")
	got, _ = readLast(ctx, f, "a1", "web", "stderr", 5)
	if strings.Join(got, "|") != "first|no newline" {
		t.Fatalf("stderr: %q", got)
	}
	if _, err := readLast(ctx, f, "gone", "web", "stdout", 5); err == nil {
		t.Fatal("a log that is not there read fine")
	}
}

func TestFollowSplitsFrames(t *testing.T) {
	f := newFakeLogs()
	f.add("a1/web/stdout", "old line\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- follow(ctx, f, "a1", "web", "stdout", "end", func(s string) bool { got <- s; return true })
	}()
	time.Sleep(50 * time.Millisecond)
	f.add("a1/web/stdout", "a new line, longer than a frame\nand ")
	f.add("a1/web/stdout", "another one\n")
	for _, want := range []string{"a new line, longer than a frame", "and another one"} {
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("followed %q, want %q", s, want)
			}
		case <-ctx.Done():
			t.Fatalf("no line %q", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow ended with %v", err)
	}
}

func TestSelectAllocs(t *testing.T) {
	now := time.Now()
	allocs := []*api.AllocationListStub{
		{ID: "aaaa1111-old", Name: "hello.web[0]", TaskGroup: "web", ClientStatus: api.AllocClientStatusFailed, ModifyTime: now.Add(-time.Hour).UnixNano()},
		{ID: "bbbb2222", Name: "hello.web[0]", TaskGroup: "web", ClientStatus: api.AllocClientStatusRunning, ModifyTime: now.UnixNano()},
		{ID: "cccc3333", Name: "hello.web[1]", TaskGroup: "web", ClientStatus: api.AllocClientStatusRunning, ModifyTime: now.UnixNano()},
		{ID: "dddd4444", Name: "hello.worker[0]", TaskGroup: "worker", ClientStatus: api.AllocClientStatusRunning, ModifyTime: now.UnixNano()},
	}
	ids := func(q backends.LogQuery) string {
		var out []string
		for _, a := range selectAllocs(allocs, q) {
			out = append(out, a.ID[:4])
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		q    backends.LogQuery
		want string
	}{
		{backends.LogQuery{}, "aaaa bbbb cccc dddd"},
		{backends.LogQuery{Proc: "web"}, "aaaa bbbb cccc"},
		{backends.LogQuery{Proc: "web", Instance: "0"}, "aaaa bbbb"},
		{backends.LogQuery{Instance: "cccc"}, "cccc"},
		{backends.LogQuery{Proc: "web", Since: now.Add(-time.Minute)}, "bbbb cccc"},
		{backends.LogQuery{Proc: "nosuch"}, ""},
	} {
		if got := ids(c.q); got != c.want {
			t.Errorf("select %+v = %q, want %q", c.q, got, c.want)
		}
	}
}
