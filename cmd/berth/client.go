package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/berthpaas/berth/api"
)

// The client side's plumbing: credentials, the api.Client, output and
// following an operation's progress.
//
// The server's address is -address, else BERTH_ADDR, else the one
// `berth login` saved, else http://127.0.0.1:8080. The token is -token,
// else BERTH_TOKEN, else the one `berth login` saved, which is sent only to
// the address it was saved for. The credentials file is
// ~/.config/berth/credentials (or $BERTH_CREDENTIALS), mode 0600.

type clientCreds struct {
	Addr  string `json:"addr"`
	Email string `json:"email"`
	Token string `json:"token"`
}

func credsPath() string {
	if p := os.Getenv("BERTH_CREDENTIALS"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "berth", "credentials")
}

func loadCreds() clientCreds {
	var c clientCreds
	if b, err := os.ReadFile(credsPath()); err == nil {
		_ = json.Unmarshal(b, &c)
	}
	return c
}

func saveCreds(c clientCreds) error {
	p := credsPath()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return os.WriteFile(p, b, 0o600)
}

// normAddr is an address as api.NewClient reads it, for comparing.
func normAddr(a string) string {
	if a == "" {
		return ""
	}
	if !strings.Contains(a, "://") {
		a = "http://" + a
	}
	return strings.TrimRight(a, "/")
}

// addr is the server's address of this invocation.
func (r *run) addr() string {
	if r.addrSet && r.address != "" {
		return normAddr(r.address)
	}
	if a := os.Getenv(api.AddrEnv); a != "" {
		return normAddr(a)
	}
	if a := loadCreds().Addr; a != "" {
		return normAddr(a)
	}
	return api.DefaultAddress
}

// tok is the token of this invocation.
func (r *run) tok(addr string) string {
	if r.tokenSet {
		return r.token
	}
	if t := os.Getenv(api.TokenEnv); t != "" {
		return t
	}
	if c := loadCreds(); c.Token != "" && (c.Addr == "" || normAddr(c.Addr) == addr) {
		return c.Token
	}
	return ""
}

// api is the client of this invocation's server.
func (r *run) api() (*api.Client, error) {
	a := r.addr()
	return api.NewClient(&api.Config{Address: a, Token: r.tok(a), HTTPClient: &http.Client{Timeout: 60 * time.Second}, UserAgent: "berth-cli/" + version})
}

// printJSON prints v indented.
func (r *run) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(r.Out, string(b))
	return err
}

// out prints a line.
func (r *run) outf(format string, a ...any) { fmt.Fprintf(r.Out, format+"\n", a...) }

// readSecret reads a password: from the environment variable env, else a
// line of standard input (after a prompt on the error stream).
func (r *run) readSecret(env, prompt string, br *bufio.Reader) (string, error) {
	if v := os.Getenv(env); v != "" {
		return v, nil
	}
	fmt.Fprint(r.Err, prompt)
	line, err := br.ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("no %s given (standard input is empty; or set %s)", strings.TrimSuffix(prompt, ": "), env)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// errInterrupted is returned when Ctrl-C stopped following an operation
// (the operation goes on on the server; the message says so).
var errInterrupted = errors.New("interrupted")

// follow prints the progress of the app's operation from the events
// stream until it settles: nil when it is running or undeployed, an error
// when it failed. With op, records of an earlier generation are skipped.
// Ctrl-C stops following (the operation goes on on the server).
func (r *run) follow(c *api.Client, app string, op *api.Operation) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if op != nil {
		r.outf("==> %s: %s (generation %d) submitted; following its progress (Ctrl-C stops following, not the operation)", app, op.Operation, op.Generation)
	}
	start := time.Now()
	type result struct {
		d   *api.Deploy
		err error
	}
	done := make(chan result, 1)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	last := ""
	printed := make(chan string)
	// The stream needs a client without the 60-second timeout of the
	// others: a deploy may take minutes.
	sc, err := api.NewClient(&api.Config{Address: c.Address(), Token: c.Token(), HTTPClient: &http.Client{}, UserAgent: "berth-cli/" + version})
	if err != nil {
		return err
	}
	go func() {
		send := func(line string) bool {
			select {
			case printed <- line:
				return true
			case <-sctx.Done():
				return false
			}
		}
		for failures := 0; ; {
			err := sc.Deploys().Events(sctx, app, true, func(ev api.DeployEvent) error {
				failures = 0
				if ev.Error != "" {
					send(fmt.Sprintf("    (the server: %s)", ev.Error))
					return nil
				}
				d := ev.Deploy
				if d == nil || op != nil && d.Generation < op.Generation {
					return nil
				}
				line := fmt.Sprintf("    %s %s: %s", time.Now().Format("15:04:05"), app, d.State)
				if d.Operation != "" {
					line += " (" + d.Operation + ")"
				}
				if d.Message != "" {
					line += ": " + d.Message
				}
				if !send(line) {
					return errStop
				}
				switch d.State {
				case api.DeployRunning, api.DeployFailed, api.DeployUndeployed:
					done <- result{d: d}
					return errStop
				}
				return nil
			})
			if errors.Is(err, errStop) || sctx.Err() != nil {
				return
			}
			// The stream ended early (a proxy, a restarted server): it is
			// taken up again, from the record as it is then.
			if failures++; failures > 5 {
				done <- result{err: err}
				return
			}
			select {
			case <-sctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	// The deploy record of an undeployed app may go away: poll for that.
	poll := time.NewTicker(2 * time.Second)
	defer poll.Stop()
	for {
		select {
		case line := <-printed:
			if line != last {
				r.outf("%s", line)
				last = line
			}
		case res := <-done:
			if res.err != nil {
				return fmt.Errorf("following %s: %w (it may go on on the server: berth status %s)", app, res.err, app)
			}
			return r.settled(app, res.d, start)
		case <-poll.C:
			if _, _, err := c.Deploys().Get(app, (&api.QueryOptions{}).WithContext(ctx)); api.IsNotFound(err) {
				r.outf("==> %s: undeployed", app)
				return nil
			}
		case <-ctx.Done():
			return r.interrupted(app)
		}
	}
}

var errStop = errors.New("stop")

func (r *run) settled(app string, d *api.Deploy, start time.Time) error {
	took := time.Since(start).Round(100 * time.Millisecond)
	switch d.State {
	case api.DeployFailed:
		msg := fmt.Sprintf("%s: %s failed after %s: %s", app, d.Operation, took, d.Message)
		if d.Reverted != nil {
			msg += fmt.Sprintf(" (reverted from %s)", d.Reverted.MetaVersion)
		}
		return errors.New(msg)
	case api.DeployUndeployed:
		r.outf("==> %s: undeployed in %s", app, took)
	default:
		r.outf("==> %s: running %s in %s", app, d.MetaVersion, took)
	}
	return nil
}

func (r *run) interrupted(app string) error {
	fmt.Fprintf(r.Err, "\n==> Stopped following %s. The operation continues on the server: watch it with\n    berth status %s    (or: curl -N $BERTH_ADDR/api/v1/apps/%s/events/)\n", app, app, app)
	return errInterrupted
}

// followIfStarted follows the app's operation when a write started one
// (a 202 with an operation); -detach skips it.
func (r *run) followIfStarted(c *api.Client, app string, op *api.Operation, detach bool) error {
	if op == nil {
		r.outf("%s: changed (not redeployed: it applies at the app's next deploy)", app)
		return nil
	}
	if detach {
		r.outf("%s: %s started (generation %d); watch it with: berth status %s", app, op.Operation, op.Generation, app)
		return nil
	}
	return r.follow(c, app, op)
}
