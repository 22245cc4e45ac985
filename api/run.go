package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// RunContentType is the content type of the answer of POST
// /api/v1/apps/:app/run/: JSON lines, RunLine after RunLine, the last one
// with ExitCode set.
const RunContentType = "application/x-ndjson"

// RunRequest is the body of POST /api/v1/apps/:app/run/: a one-off command
// run with the app's current release and env (public, private and bound
// services' credentials).
type RunRequest struct {
	// Command is the program and its arguments, run as they are (no
	// shell): ["sh", "-c", "env"].
	Command []string `json:"command"`
	// Proc is the proc whose release spec (image, resources, env) the
	// command runs with; "" is the release's first web proc or its only
	// proc.
	Proc string `json:"proc,omitempty"`
	// Timeout kills the command after it (a duration: "10m"; default 10m,
	// at most 24h).
	Timeout string `json:"timeout,omitempty"`
}

// RunLine is one line of the answer of a run: a line of the command's
// output (Stream and Line), or the last one (ExitCode, with Error when the
// command did not end by itself, e.g. its timeout killed it).
type RunLine struct {
	Stream   string `json:"stream,omitempty"` // LogStdout or LogStderr
	Line     string `json:"line,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	Error    string `json:"error,omitempty"`
	// The first line names the run: its ID, the proc and release it runs.
	RunID       string `json:"run_id,omitempty"`
	Proc        string `json:"proc,omitempty"`
	MetaVersion string `json:"meta_version,omitempty"`
}

// RunResult is how a run ended.
type RunResult struct {
	RunID       string
	Proc        string
	MetaVersion string
	ExitCode    int
	// Error is the server's word when the command did not end by itself
	// (its timeout, a scheduler failure); "" otherwise.
	Error string
}

// ErrRunIncomplete is returned (wrapped) when a run's answer ends without
// its exit code: the connection broke.
var ErrRunIncomplete = errors.New("api: the run's answer ended without an exit code")

// Runs runs one-off commands in apps (/api/v1/apps/:app/run).
type Runs struct{ c *Client }

// Runs returns the runs resource.
func (c *Client) Runs() *Runs { return &Runs{c} }

// Run runs req in app (whoever may deploy the app may), calling out for each
// line of its output as it comes, and returns how it ended. Ending ctx (or
// out returning an error, returned as is) closes the connection, which
// kills the command. The client's HTTPClient must not have a Timeout
// shorter than the command.
func (r *Runs) Run(ctx context.Context, app string, req *RunRequest, out func(stream, line string) error) (*RunResult, error) {
	rq := r.c.newRequest(http.MethodPost, "/api/v1/apps/"+esc(app)+"/run/")
	rq.ctx = ctx
	if err := rq.jsonBody(req); err != nil {
		return nil, err
	}
	resp, _, err := r.c.do(rq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	res := &RunResult{ExitCode: -1}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var ln RunLine
		if err := json.Unmarshal(b, &ln); err != nil {
			return nil, fmt.Errorf("api: decoding a line of the run: %w", err)
		}
		if ln.RunID != "" {
			res.RunID, res.Proc, res.MetaVersion = ln.RunID, ln.Proc, ln.MetaVersion
		}
		if ln.ExitCode != nil {
			res.ExitCode, res.Error = *ln.ExitCode, ln.Error
			return res, nil
		}
		if ln.Stream != "" && out != nil {
			if err := out(ln.Stream, ln.Line); err != nil {
				return nil, err
			}
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRunIncomplete, err)
	}
	return nil, ErrRunIncomplete
}
