package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// releaseCommands are the commands of releases, rollback and the deploy
// history (issue 10).
func releaseCommands(g *registry) {
	g.noun("release", "An app's pushed releases: list", `
An app's releases: each push records one (berth push APP VERSION FILE);
"berth deploy APP [VERSION]" deploys one, "berth rollback APP [VERSION]"
goes back to an earlier one, "berth history APP" shows what was deployed.`)

	list := func() *cmd {
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "List an app's releases, newest first",
			help: `
Lists the releases pushed for APP, newest first (GET /api/v1/repos/:app/releases/):
version, who pushed it and when, and its procs (type, command or image,
instances, cpu, memory). The release the app is deployed at is marked with *.
JSON: []api.Release.`,
			run: func(r *run) error {
				rs, _, err := r.cl.Repos().Releases(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(rs)
				}
				if len(rs) == 0 {
					r.outf("%s has no releases: push one with \"berth push %s VERSION lain.yaml\"", r.args[0], r.args[0])
					return nil
				}
				tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tPUSHED\tBY\tPROCS")
				for _, rel := range rs {
					v := rel.MetaVersion
					if rel.Current {
						v += " *"
					}
					var procs []string
					for _, p := range rel.Procs {
						procs = append(procs, fmt.Sprintf("%s(%s) x%d", p.Name, p.Type, p.NumInstances))
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v, rel.Pushed.Local().Format(time.DateTime), dash(rel.PushedBy), strings.Join(procs, " "))
				}
				tw.Flush()
				r.outf("")
				tw = tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tPROC\tTYPE\tINSTANCES\tCPU\tMEMORY\tCOMMAND")
				for _, rel := range rs {
					for _, p := range rel.Procs {
						what := p.Cmd
						if p.Image != "" {
							what = p.Image
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%g\t%dM\t%s\n", rel.MetaVersion, p.Name, p.Type, p.NumInstances, p.CPU, p.MemoryMB, what)
					}
				}
				tw.Flush()
				return nil
			}}
	}
	g.add("release list", list)
	g.alias("releases", "release list", list)

	g.add("rollback", func() *cmd {
		var detach bool
		return &cmd{args: "APP [VERSION]", minArgs: 1, maxArgs: 2, jsonOut: true,
			synopsis: "Go back to the release that ran before (or to VERSION) and follow it",
			help: `
Rolls APP back to VERSION, or without it to the release that ran before the
current one (from the deploy history) (POST /api/v1/apps/:app/rollback/),
then follows the operation's progress from the events stream until it is
running or failed (exit 1, with the reason). Ctrl-C stops following; the
rollback goes on on the server ("berth status APP" shows it). With -json the
accepted operation is printed and not followed. JSON: api.Operation.`,
			flags: detachFlag(&detach),
			run: func(r *run) error {
				version := ""
				if len(r.args) > 1 {
					version = r.args[1]
				}
				op, _, err := r.cl.Deploys().Rollback(r.args[0], version, nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(op)
				}
				return r.followIfStarted(r.cl, r.args[0], op, detach)
			}}
	})

	g.add("history", func() *cmd {
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "Show an app's deploy history, newest first",
			help: `
Shows the operations on APP, newest first (GET /api/v1/apps/:app/history/):
when, who, which operation (deploy, rollback, auto-revert, scale, env,
restart, undeploy, ...), the release, the result (running, failed, reverted,
undeployed; or the state of the operation under way) with its message, and
how long it took. The last 100 operations are kept. JSON: []api.HistoryEntry.`,
			run: func(r *run) error {
				h, _, err := r.cl.Deploys().History(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(h)
				}
				if len(h) == 0 {
					r.outf("%s has no deploy history yet", r.args[0])
					return nil
				}
				tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "WHEN\tBY\tOPERATION\tVERSION\tRESULT\tDURATION")
				for _, x := range h {
					when := x.Finished
					if when == nil {
						when = x.Started
					}
					ws, took := "-", "-"
					if when != nil {
						ws = when.Local().Format(time.DateTime)
					}
					if x.DurationMS > 0 {
						took = x.Duration().Round(100 * time.Millisecond).String()
					}
					res := x.Result
					if x.RevertedTo != "" {
						res += " (to " + x.RevertedTo + ")"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ws, dash(x.By), x.Operation, dash(x.MetaVersion), res, took)
				}
				tw.Flush()
				for _, x := range h {
					if x.Message != "" {
						r.outf("")
						break
					}
				}
				for _, x := range h {
					if x.Message != "" {
						r.outf("generation %d (%s): %s", x.Generation, x.Operation, x.Message)
					}
				}
				return nil
			}}
	})
}
