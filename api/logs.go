package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// LogContentType is the content type of GET /api/v1/apps/:app/logs/: JSON
// lines, one LogLine per line.
const LogContentType = "application/x-ndjson"

// Log streams.
const (
	LogStdout = "stdout"
	LogStderr = "stderr"
)

// LogLine is one line of an app instance's output.
type LogLine struct {
	// Time is when the line was written (the local scheduler stamps each
	// line); absent when the scheduler does not keep it (Nomad: lines read
	// while following carry the time they were received).
	Time     *time.Time `json:"time,omitempty"`
	Proc     string     `json:"proc"`
	Instance int        `json:"instance"` // the instance's index within its proc
	Stream   string     `json:"stream"`   // LogStdout or LogStderr
	Line     string     `json:"line"`     // the text, without its newline
}

// LogQuery selects the lines of a logs request. Zero values select all.
type LogQuery struct {
	Proc string // one proc's instances
	// Instance is one instance: its index ("0") or its id as the app's
	// units show it.
	Instance string
	Stream   string // LogStdout or LogStderr only
	Lines    int    // the latest Lines lines (0: every kept line, up to the server's limit)
	// Since skips lines written before it.
	Since time.Time
	// SinceAgo, if Since is zero, skips lines older than this (sent as a
	// duration, e.g. "10m").
	SinceAgo time.Duration
}

func (q LogQuery) values(follow bool) url.Values {
	v := url.Values{}
	if q.Proc != "" {
		v.Set("proc", q.Proc)
	}
	if q.Instance != "" {
		v.Set("instance", q.Instance)
	}
	if q.Stream != "" {
		v.Set("stream", q.Stream)
	}
	if q.Lines > 0 {
		v.Set("lines", strconv.Itoa(q.Lines))
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	} else if q.SinceAgo > 0 {
		v.Set("since", q.SinceAgo.String())
	}
	if follow {
		v.Set("follow", "true")
	}
	return v
}

// Logs is the output of apps (/api/v1/apps/:app/logs).
type Logs struct{ c *Client }

// Logs returns the logs resource.
func (c *Client) Logs() *Logs { return &Logs{c} }

// Get returns the kept lines of the app's output that q selects, oldest
// first: GET /api/v1/apps/:app/logs/ (whoever may read the app).
func (l *Logs) Get(app string, q LogQuery, opts *QueryOptions) ([]LogLine, *QueryMeta, error) {
	var out []LogLine
	r := l.c.newRequest(http.MethodGet, "/api/v1/apps/"+esc(app)+"/logs/")
	r.setQuery(opts)
	for k, vs := range q.values(false) {
		r.params[k] = vs
	}
	resp, rtt, err := l.c.do(r)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if err := readLogLines(resp, func(ln LogLine) error { out = append(out, ln); return nil }); err != nil {
		return nil, nil, err
	}
	return out, queryMeta(resp, rtt), nil
}

// Follow reads the kept lines q selects, then new ones as the app's
// instances write them (?follow=true), calling fn for each, until ctx ends
// (returned as ctx.Err()), fn returns an error (returned as is) or the
// server ends the stream (nil). The client's HTTPClient must not have a
// Timeout shorter than the stream.
func (l *Logs) Follow(ctx context.Context, app string, q LogQuery, fn func(LogLine) error) error {
	r := l.c.newRequest(http.MethodGet, "/api/v1/apps/"+esc(app)+"/logs/")
	r.ctx = ctx
	r.params = q.values(true)
	resp, _, err := l.c.do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = readLogLines(resp, fn)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func readLogLines(resp *http.Response, fn func(LogLine) error) error {
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var ln LogLine
		if err := json.Unmarshal(b, &ln); err != nil {
			return fmt.Errorf("api: decoding a log line: %w", err)
		}
		if err := fn(ln); err != nil {
			return err
		}
	}
	return sc.Err()
}
