package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/berthpaas/berth/api"
)

func logsCommands(g *registry) {
	g.add("logs", func() *cmd {
		var q api.LogQuery
		var follow bool
		var since string
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "Print an app's output (stdout and stderr of its instances)",
			help: `
Prints the kept output of APP's instances, oldest first
(GET /api/v1/apps/:app/logs/): each line with its time, proc, instance and
stream. -f follows: new lines are printed as the instances write them,
until Ctrl-C. JSON: one api.LogLine per line.`,
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&follow, "f", false, "Follow: print new lines as they are written, until Ctrl-C.")
				fs.StringVar(&q.Proc, "proc", "", "Only this proc's instances (e.g. web).")
				fs.StringVar(&q.Instance, "instance", "", "Only this instance: its index (e.g. 0) or its id.")
				fs.StringVar(&q.Stream, "stream", "", "Only this stream: stdout or stderr.")
				fs.IntVar(&q.Lines, "n", 100, "Print the latest n lines (0: every kept line).")
				fs.StringVar(&since, "since", "", "Only lines written since then: a duration ago (10m, 2h) or a time (RFC 3339).")
			},
			run: func(r *run) error {
				switch q.Stream {
				case "", api.LogStdout, api.LogStderr:
				default:
					return usagef("-stream must be stdout or stderr, not %q", q.Stream)
				}
				if q.Lines < 0 {
					return usagef("-n must not be negative")
				}
				if since != "" {
					if d, err := time.ParseDuration(since); err == nil && d > 0 {
						q.SinceAgo = d
					} else if t, err := time.Parse(time.RFC3339Nano, since); err == nil {
						q.Since = t
					} else {
						return usagef("-since must be a duration (10m) or a time (2006-01-02T15:04:05Z), not %q", since)
					}
				}
				print := func(ln api.LogLine) error {
					if r.json {
						b, err := json.Marshal(ln)
						if err != nil {
							return err
						}
						_, err = fmt.Fprintln(r.Out, string(b))
						return err
					}
					ts := ""
					if ln.Time != nil {
						ts = ln.Time.UTC().Format("2006-01-02T15:04:05.000Z") + " "
					}
					_, err := fmt.Fprintf(r.Out, "%s%s.%d %s: %s\n", ts, ln.Proc, ln.Instance, ln.Stream, ln.Line)
					return err
				}
				if !follow {
					lines, _, err := r.cl.Logs().Get(r.args[0], q, nil)
					if err != nil {
						return err
					}
					for _, ln := range lines {
						if err := print(ln); err != nil {
							return err
						}
					}
					return nil
				}
				// A follow has no end of its own: a client without the
				// others' timeout, ended by Ctrl-C.
				sc, err := api.NewClient(&api.Config{Address: r.cl.Address(), Token: r.cl.Token(), HTTPClient: &http.Client{}, UserAgent: "berth-cli/" + version})
				if err != nil {
					return err
				}
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				err = sc.Logs().Follow(ctx, r.args[0], q, print)
				if errors.Is(err, context.Canceled) {
					return nil
				}
				return err
			}}
	})
}
