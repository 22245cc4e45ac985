package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/posener/complete"

	"github.com/berthpaas/berth/api"
)

func appCommands(g *registry) {
	g.noun("app", "Apps: list, create, info, open, remove, restart, swap", `
Apps: register and remove them, see one in full (URLs, state, procs and
instances, bound services, last deploy), restart, swap two apps' routes.
Releases are recorded with "berth push" and deployed with "berth deploy".`)

	list := func() *cmd {
		return &cmd{jsonOut: true, synopsis: "List the apps you may see",
			help: `Lists the apps you may see (GET /apps). JSON: []api.App.`,
			run: func(r *run) error {
				apps, _, err := r.cl.Apps().List(nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(apps)
				}
				tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATE\tRELEASE\tUNITS\tTEAM\tADDRESS")
				for _, a := range apps {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d units\t%s\t%s\n", a.Name, dash(a.State), dash(a.MetaVersion), len(a.Units), dash(a.TeamOwner), dash(a.Ip))
				}
				return tw.Flush()
			}}
	}
	g.add("app list", list)
	g.alias("apps", "app list", list)

	create := func() *cmd {
		var platform, team string
		return &cmd{args: "NAME", minArgs: 1, maxArgs: 1, synopsis: "Register an app",
			help: `
Registers an app (POST /apps): lowercase letters, digits and dashes. Record a
release with "berth push", then "berth deploy" it.`,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&platform, "platform", "", "The app's platform (one of GET /platforms).")
				fs.StringVar(&team, "team", "", "The team that owns it (default: yours, when you are in one team).")
			},
			run: func(r *run) error {
				res, _, err := r.cl.Apps().Create(&api.AppCreateRequest{Name: r.args[0], Platform: platform, TeamOwner: team}, nil)
				if err != nil {
					return err
				}
				r.outf("created app %s (repository %s)", r.args[0], res.RepositoryURL)
				return nil
			}}
	}
	g.add("app create", create)
	g.alias("app-create", "app create", create)

	g.add("app info", func() *cmd {
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "Show an app: URLs, state, procs, instances, services, last deploy",
			help: `
Shows an app in one view: its URLs, state, release, teams, procs and their
instances with addresses, the service instances bound to it, and its last
deploy (GET /apps/:app, GET /api/v1/apps/:app/, GET /services/:name).
JSON: api.AppInfo.`,
			run: func(r *run) error {
				info, err := r.cl.Apps().Info(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(info)
				}
				a := info.App
				tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "Name\t%s\n", a.Name)
				fmt.Fprintf(tw, "URL\t%s\n", dash(strings.Join(info.URLs, " ")))
				fmt.Fprintf(tw, "Owner\t%s (team %s)\n", a.Owner, dash(a.TeamOwner))
				fmt.Fprintf(tw, "Teams\t%s\n", dash(strings.Join(a.Teams, ", ")))
				if a.Platform != "" {
					fmt.Fprintf(tw, "Platform\t%s\n", a.Platform)
				}
				if info.Deployed == nil {
					fmt.Fprintf(tw, "State\tnot deployed\n")
				} else {
					d := info.Deployed
					fmt.Fprintf(tw, "State\t%s\n", d.State)
					fmt.Fprintf(tw, "Release\t%s\n", dash(d.MetaVersion))
					if d.Deploy != nil {
						fmt.Fprintf(tw, "Last deploy\t%s: %s by %s at %s%s\n", d.Deploy.Operation, d.Deploy.State, dash(d.Deploy.By),
							d.Deploy.Updated.Local().Format(time.DateTime), msg(d.Deploy.Message))
					}
				}
				tw.Flush()
				if info.Deployed != nil {
					r.outf("")
					printProcs(r, info.Deployed.Procs)
				}
				r.outf("")
				if len(info.Bound) == 0 {
					r.outf("Bound services: none")
				} else {
					r.outf("Bound services:")
					for _, b := range info.Bound {
						r.outf("  %s (service %s)", b.Name, b.ServiceName)
					}
				}
				return nil
			}}
	})

	g.add("app open", func() *cmd {
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "Print the app's URL",
			help: `
Prints the app's URL(s), one a line (from its routes). On the local
scheduler the built-in router serves them (by Host header) at its own
address, e.g. curl -H 'Host: hello.apps.localhost' http://127.0.0.1:8081/.
JSON: []string.`,
			run: func(r *run) error {
				info, err := r.cl.Apps().Info(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(info.URLs)
				}
				if len(info.URLs) == 0 {
					return fmt.Errorf("app %s has no route", r.args[0])
				}
				for _, u := range info.URLs {
					r.outf("%s", u)
				}
				return nil
			}}
	})

	remove := func() *cmd {
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, synopsis: "Remove an app (undeploy it first)",
			help: `Removes an app and everything it has (DELETE /apps/:app): env, releases, bindings, tokens.`,
			run: func(r *run) error {
				if _, err := r.cl.Apps().Remove(r.args[0], nil); err != nil {
					return err
				}
				r.outf("removed app %s", r.args[0])
				return nil
			}}
	}
	g.add("app remove", remove)
	g.alias("app-remove", "app remove", remove)

	restart := func() *cmd {
		var detach bool
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, synopsis: "Restart every instance of a deployed app",
			help: `
Restarts every instance of a deployed app (GET /apps/:app/restart) and
follows the operation until it settles (Ctrl-C stops following; the
restart goes on on the server).`,
			flags: detachFlag(&detach),
			run: func(r *run) error {
				op, _, err := r.cl.Apps().Restart(r.args[0], nil)
				if err != nil {
					return err
				}
				return r.followIfStarted(r.cl, r.args[0], op, detach)
			}}
	}
	g.add("app restart", restart)
	g.alias("restart", "app restart", restart)

	g.add("app swap", func() *cmd {
		return &cmd{args: "APP1 APP2", minArgs: 2, maxArgs: 2, jsonOut: true, synopsis: "Swap the routes of two apps",
			help: `Swaps the routes (URLs) of two apps (PUT /swap). JSON: api.SwapResult.`,
			run: func(r *run) error {
				res, _, err := r.cl.Apps().Swap(r.args[0], r.args[1], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(res)
				}
				for _, a := range []string{r.args[0], r.args[1]} {
					r.outf("%s: %s", a, dash(strings.Join(res[a], " ")))
				}
				return nil
			}}
	})
}

func detachFlag(detach *bool) func(fs *flag.FlagSet) {
	return func(fs *flag.FlagSet) {
		fs.BoolVar(detach, "detach", false, "Answer once the operation is accepted instead of following it.")
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func msg(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// printProcs prints procs and their instances.
func printProcs(r *run, procs []api.Proc) {
	tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROC\tTYPE\tINSTANCES\tCPU\tMEMORY\tCOMMAND")
	for _, p := range procs {
		what := p.Cmd
		if p.Image != "" {
			what = p.Image
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%g\t%s\t%s\n", p.ProcName, p.Type, p.NumInstances, p.CPU, p.Memory, what)
	}
	tw.Flush()
	n := 0
	for _, p := range procs {
		n += len(p.Instances)
	}
	if n == 0 {
		return
	}
	r.outf("")
	tw = tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tSTATE\tADDRESS\tRESTARTS\tMESSAGE")
	for _, p := range procs {
		for _, i := range p.Instances {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", i.Name, i.State, dash(i.Address), i.Restarts, i.Message)
		}
	}
	tw.Flush()
}

func deployCommands(g *registry) {
	g.add("push", func() *cmd {
		return &cmd{args: "APP VERSION FILE", minArgs: 3, maxArgs: 3, jsonOut: true,
			predict:  complete.PredictFiles("*.yaml"),
			synopsis: "Record a release from a lain.yaml (YAML or JSON)",
			help: `
Records a release of APP at VERSION (e.g. 1700000000-abc1234) from FILE, a
lain.yaml ("-": standard input), with procs that have cmd or image, port,
num_instances, cpu, memory, env and healthcheck (POST /api/v1/repos/:app/push/).
Deploy it with "berth deploy APP". JSON: api.PushResult.`,
			run: func(r *run) error {
				spec, err := readFileArg(r, r.args[2])
				if err != nil {
					return err
				}
				res, _, err := r.cl.Repos().PushYAML(r.args[0], r.args[1], spec, nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(res)
				}
				r.outf("pushed %s %s (%s)", res.AppName, res.MetaVersion, res.Status)
				for _, p := range res.Procs {
					what := p.Cmd
					if p.Image != "" {
						what = p.Image
					}
					r.outf("  %s (%s) x%d  cpu %g  memory %dM  %s", p.Name, p.Type, p.NumInstances, p.CPU, p.MemoryMB, what)
				}
				return nil
			}}
	})

	g.add("deploy", func() *cmd {
		var detach bool
		var deadline, autoRevert string
		return &cmd{args: "APP [VERSION]", minArgs: 1, maxArgs: 2, predict: complete.PredictNothing,
			synopsis: "Deploy the latest (or that) release and follow it",
			help: `
Deploys APP at its latest pushed release, or at VERSION (also to roll back
to an earlier one) (POST /api/v1/apps/, PUT /api/v1/apps/:app/), then follows
the operation's progress from the events stream until it is running or
failed (exit 1, with the reason). Ctrl-C stops following; the deploy goes on
on the server ("berth status APP" shows it).`,
			flags: func(fs *flag.FlagSet) {
				detachFlag(&detach)(fs)
				fs.StringVar(&deadline, "progress-deadline", "", "How long the deploy may take to become healthy, e.g. 90s (1s-24h).")
				fs.StringVar(&autoRevert, "auto-revert", "", "true or false: return to the last running release when the deploy fails.")
			},
			run: func(r *run) error {
				var pol api.DeployPolicy
				if deadline != "" {
					pol.ProgressDeadline = &deadline
				}
				if autoRevert != "" {
					b, err := strconv.ParseBool(autoRevert)
					if err != nil {
						return usagef("-auto-revert wants true or false, not %q", autoRevert)
					}
					pol.AutoRevert = &b
				}
				var op *api.Operation
				var err error
				if len(r.args) > 1 {
					op, _, err = r.cl.Deploys().DeployVersion(r.args[0], &api.DeployVersionRequest{MetaVersion: r.args[1], DeployPolicy: pol}, nil)
				} else {
					op, _, err = r.cl.Deploys().Deploy(&api.DeployRequest{AppName: r.args[0], DeployPolicy: pol}, nil)
				}
				if err != nil {
					return err
				}
				return r.followIfStarted(r.cl, r.args[0], op, detach)
			}}
	})

	g.add("undeploy", func() *cmd {
		var detach bool
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, synopsis: "Stop every instance of an app",
			help:  `Undeploys APP (DELETE /api/v1/apps/:app/) and follows it until nothing runs.`,
			flags: detachFlag(&detach),
			run: func(r *run) error {
				op, _, err := r.cl.Deploys().Undeploy(r.args[0], nil)
				if err != nil {
					return err
				}
				return r.followIfStarted(r.cl, r.args[0], op, detach)
			}}
	})

	g.add("status", func() *cmd {
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "Show a deployed app's state, procs and instances",
			help: `
Shows a deployed app (GET /api/v1/apps/:app/): its state, release, URL, last
operation, procs and instances with their addresses. JSON: api.DeployedApp.`,
			run: func(r *run) error {
				d, _, err := r.cl.Deploys().Get(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(d)
				}
				line := fmt.Sprintf("%s %s: %s", d.AppName, dash(d.MetaVersion), d.State)
				if d.Operation != "" {
					line += " (" + d.Operation + ")"
				}
				r.outf("%s%s", line, msg(d.Message))
				for _, rt := range d.Routes {
					r.outf("URL: http://%s/", rt)
				}
				r.outf("")
				printProcs(r, d.Procs)
				return nil
			}}
	})

	scale := func() *cmd {
		var detach bool
		return &cmd{args: "APP PROC N", minArgs: 3, maxArgs: 3, synopsis: "Run N instances of a proc",
			help:  `Scales PROC of APP to N instances (PATCH /api/v1/apps/:app/procs/:proc/) and follows it.`,
			flags: detachFlag(&detach),
			run: func(r *run) error {
				n, err := strconv.Atoi(r.args[2])
				if err != nil || n < 0 {
					return usagef("N must be a number of instances, not %q", r.args[2])
				}
				op, _, err := r.cl.Procs().Scale(r.args[0], r.args[1], n, nil)
				if err != nil {
					return err
				}
				return r.followIfStarted(r.cl, r.args[0], op, detach)
			}}
	}
	g.add("scale", scale)
	g.noun("proc", "An app's procs: list, scale, patch, deploy, undeploy", `
The procs of a deployed app (web, worker, ...): their instances, CPU and memory.`)
	g.add("proc scale", scale)
	g.add("proc list", func() *cmd {
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "List an app's procs and instances",
			help: `Lists the procs of APP and their instances (GET /api/v1/apps/:app/procs/). JSON: []api.Proc.`,
			run: func(r *run) error {
				procs, _, err := r.cl.Procs().List(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(procs)
				}
				printProcs(r, procs)
				return nil
			}}
	})
	g.add("proc patch", func() *cmd {
		var detach bool
		var cpu float64
		var memory string
		instances := -1
		return &cmd{args: "APP PROC", minArgs: 2, maxArgs: 2, synopsis: "Change a proc's CPU, memory or instances",
			help: `Changes PROC of APP (PATCH /api/v1/apps/:app/procs/:proc/) and follows the redeploy.`,
			flags: func(fs *flag.FlagSet) {
				detachFlag(&detach)(fs)
				fs.Float64Var(&cpu, "cpu", 0, "The CPU, in cores (e.g. 0.5).")
				fs.StringVar(&memory, "memory", "", "The memory, e.g. 128m or 1g.")
				fs.IntVar(&instances, "instances", -1, "The number of instances (as berth proc scale does).")
			},
			run: func(r *run) error {
				req := &api.ProcPatchRequest{}
				if cpu != 0 {
					req.CPU = &cpu
				}
				if memory != "" {
					req.Memory = memory
				}
				if instances >= 0 {
					req.NumInstances = &instances
				}
				if req.CPU == nil && req.Memory == nil && req.NumInstances == nil {
					return usagef("give -cpu, -memory or -instances")
				}
				op, _, err := r.cl.Procs().Patch(r.args[0], r.args[1], req, nil)
				if err != nil {
					return err
				}
				return r.followIfStarted(r.cl, r.args[0], op, detach)
			}}
	})
	g.add("proc deploy", func() *cmd {
		var detach bool
		return &cmd{args: "APP PROC", minArgs: 2, maxArgs: 2, synopsis: "Deploy one proc again",
			help:  `Deploys PROC of APP again (POST /api/v1/apps/:app/procs/) and follows it.`,
			flags: detachFlag(&detach),
			run: func(r *run) error {
				op, _, err := r.cl.Procs().Deploy(r.args[0], r.args[1], nil)
				if err != nil {
					return err
				}
				return r.followIfStarted(r.cl, r.args[0], op, detach)
			}}
	})
	g.add("proc undeploy", func() *cmd {
		var detach bool
		return &cmd{args: "APP PROC", minArgs: 2, maxArgs: 2, synopsis: "Stop one proc",
			help:  `Undeploys PROC of APP (DELETE /api/v1/apps/:app/procs/:proc/) and follows it.`,
			flags: detachFlag(&detach),
			run: func(r *run) error {
				op, _, err := r.cl.Procs().Undeploy(r.args[0], r.args[1], nil)
				if err != nil {
					return err
				}
				return r.followIfStarted(r.cl, r.args[0], op, detach)
			}}
	})
}
