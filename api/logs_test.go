package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

const talkYAML = "appname: talk\nworker:\n  cmd: sh -c 'echo out-line; echo err-line >&2; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done'\n  memory: 16m\n"

// TestLogs reads a deployed worker's output with Logs().Get and its
// filters, and follows it with Logs().Follow until the context ends or
// the callback stops it.
func TestLogs(t *testing.T) {
	s := startServer(t, true)
	dev := devWithTeam(t, s)
	if _, _, err := dev.Repos().Create(&api.RepoCreateRequest{AppName: "talk"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dev.Repos().PushYAML("talk", "1700000000-abc", []byte(talkYAML), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dev.Deploys().Deploy(&api.DeployRequest{AppName: "talk"}, nil); err != nil {
		t.Fatal(err)
	}

	var all []api.LogLine
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		all, _, err = dev.Logs().Get("talk", api.LogQuery{}, nil)
		if e, ok := err.(*api.Error); ok && e.Status == http.StatusNotFound && time.Now().Before(deadline) {
			all = nil // not submitted to the scheduler yet
		} else if err != nil {
			t.Fatal(err)
		}
		if has(all, api.LogStdout, "out-line") && has(all, api.LogStderr, "err-line") && has(all, api.LogStdout, "tick 2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs did not show the worker's output: %+v", all)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, l := range all {
		if l.Proc != "worker" || l.Instance != 0 || l.Time == nil {
			t.Fatalf("line %d: %+v", i, l)
		}
		if i > 0 && l.Time.Before(*all[i-1].Time) {
			t.Fatalf("lines not oldest first: %+v then %+v", all[i-1], l)
		}
	}

	errs, _, err := dev.Logs().Get("talk", api.LogQuery{Stream: api.LogStderr}, nil)
	if err != nil || len(errs) != 1 || errs[0].Line != "err-line" {
		t.Fatalf("stderr only: %+v %v", errs, err)
	}
	two, _, err := dev.Logs().Get("talk", api.LogQuery{Proc: "worker", Instance: "0", Lines: 2}, nil)
	if err != nil || len(two) != 2 {
		t.Fatalf("the latest 2 lines: %+v %v", two, err)
	}
	if ls, _, err := dev.Logs().Get("talk", api.LogQuery{SinceAgo: time.Hour}, nil); err != nil || !has(ls, api.LogStdout, "out-line") {
		t.Fatalf("since an hour ago: %+v %v", ls, err)
	}
	if ls, _, err := dev.Logs().Get("talk", api.LogQuery{Since: time.Now().Add(time.Minute)}, nil); err != nil || len(ls) != 0 {
		t.Fatalf("since a minute from now: %+v %v", ls, err)
	}
	_, _, err = dev.Logs().Get("nosuch", api.LogQuery{}, nil)
	apiError(t, err, http.StatusNotFound)
	_, _, err = dev.Logs().Get("talk", api.LogQuery{Stream: "both"}, nil)
	apiError(t, err, http.StatusBadRequest)

	// Follow gets lines written after it started; the context ends it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	var fresh int
	err = dev.Logs().Follow(ctx, "talk", api.LogQuery{Stream: api.LogStdout, Lines: 1}, func(l api.LogLine) error {
		if strings.HasPrefix(l.Line, "tick ") && l.Time != nil && l.Time.After(start) {
			if fresh++; fresh == 3 {
				cancel()
			}
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || fresh < 3 {
		t.Fatalf("follow ended by its context: %v after %d new lines", err, fresh)
	}
	// The callback's error ends it and is returned as is.
	stop := errors.New("enough")
	err = dev.Logs().Follow(context.Background(), "talk", api.LogQuery{}, func(api.LogLine) error { return stop })
	if err != stop {
		t.Fatalf("follow stopped by its callback: %v", err)
	}
}

func has(ls []api.LogLine, stream, line string) bool {
	for _, l := range ls {
		if l.Stream == stream && l.Line == line {
			return true
		}
	}
	return false
}
