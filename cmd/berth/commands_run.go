package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/berthpaas/berth/api"
)

// exitCode is an error that makes the command exit with that status (and
// print nothing more): `berth run` exits with the command's.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func runCommands(g *registry) {
	g.add("run", func() *cmd {
		var proc, timeout string
		return &cmd{args: "APP -- CMD [ARGS...]", minArgs: 2, maxArgs: -1,
			synopsis: "Run a one-off command with an app's release and env",
			help: `
Runs CMD with its ARGS (as they are: no shell; use "sh -c '...'" for one)
with APP's current release and the environment its instances get: public
and private variables and the credentials of bound services (POST
/api/v1/apps/:app/run/). On the local scheduler it is a child process with
the app's isolation; on Nomad a batch job, removed when it ends.

The command's stdout and stderr are printed as they come, on berth's stdout
and stderr; berth exits with the command's exit status. Ctrl-C (or losing
the connection) kills the command. Whoever may deploy APP may run commands
in it; each run is in the audit log.

Example:

  berth run hello -- sh -c 'env | sort'`,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&proc, "proc", "", "The proc whose release spec (image, resources, env) the command runs with.\nDefault: the release's first web proc, or its only proc.")
				fs.StringVar(&timeout, "timeout", "", "Kill the command after this long (10m, 1h). Default: the server's, 10m.")
			},
			run: func(r *run) error {
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				a := r.addr()
				// No client timeout: the command may run for long.
				cl, err := api.NewClient(&api.Config{Address: a, Token: r.tok(a), HTTPClient: &http.Client{}, UserAgent: "berth-cli/" + version})
				if err != nil {
					return err
				}
				req := &api.RunRequest{Command: r.args[1:], Proc: proc, Timeout: timeout}
				res, err := cl.Runs().Run(ctx, r.args[0], req, func(stream, line string) error {
					w := r.Out
					if stream == api.LogStderr {
						w = r.Err
					}
					_, err := fmt.Fprintln(w, line)
					return err
				})
				if errors.Is(err, context.Canceled) {
					fmt.Fprintln(r.Err, "\n==> Interrupted: the command was killed.")
					return exitCode(130)
				}
				if err != nil {
					return err
				}
				if res.Error != "" {
					fmt.Fprintf(r.Err, "==> %s\n", res.Error)
				}
				if res.ExitCode != 0 {
					code := res.ExitCode
					if code < 0 || code > 255 {
						code = exitError
					}
					return exitCode(code)
				}
				return nil
			}}
	})
}
