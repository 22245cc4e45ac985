package main

import (
	"flag"
	"sort"
	"strings"

	"github.com/berthpaas/berth/api"
)

func envCommands(g *registry) {
	get := func() *cmd {
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "List an app's variables (private ones masked)",
			help: `
Lists the environment variables of APP (GET /apps/:app/env); private values
are shown as "*** (private)". JSON: []api.EnvVar.`,
			run: func(r *run) error {
				vars, _, err := r.cl.Env().List(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(vars)
				}
				for _, v := range vars {
					r.outf("%s=%s", v.Name, v.Value)
				}
				return nil
			}}
	}
	g.add("env", func() *cmd {
		c := get()
		c.synopsis = "An app's environment: get, set, unset (env APP lists it)"
		c.help = strings.TrimSpace(c.help) + "\n\n\"berth env APP\" is \"berth env get APP\"."
		return c
	})
	g.add("env get", get)

	set := func() *cmd {
		var private, noRestart, detach bool
		return &cmd{args: "APP KEY=VALUE...", minArgs: 2, maxArgs: -1, synopsis: "Set variables (redeploys a deployed app)",
			help: `
Sets variables of APP (POST /apps/:app/env). A deployed app is redeployed
with them and the redeploy is followed until it settles (Ctrl-C stops
following; it goes on on the server). Private values are kept in Secrets and
shown masked.`,
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&private, "private", false, "Keep the values private (in Secrets; shown masked).")
				fs.BoolVar(&noRestart, "no-restart", false, "Set them without redeploying the app (they apply at its next deploy).")
				detachFlag(&detach)(fs)
			},
			run: func(r *run) error {
				req := &api.EnvSetRequest{Private: private, NoRestart: noRestart}
				for _, a := range r.args[1:] {
					k, v, ok := strings.Cut(a, "=")
					if !ok || k == "" {
						return usagef("%q is not KEY=VALUE", a)
					}
					req.Envs = append(req.Envs, api.EnvSetVar{Name: k, Value: v})
				}
				sort.Slice(req.Envs, func(i, j int) bool { return req.Envs[i].Name < req.Envs[j].Name })
				op, _, err := r.cl.Env().Set(r.args[0], req, nil)
				if err != nil {
					return err
				}
				r.outf("set %d variable(s) of %s", len(req.Envs), r.args[0])
				return r.followIfStarted(r.cl, r.args[0], op, detach || noRestart)
			}}
	}
	g.add("env set", set)
	g.alias("env-set", "env set", set)

	unset := func() *cmd {
		var noRestart, detach bool
		return &cmd{args: "APP KEY...", minArgs: 2, maxArgs: -1, synopsis: "Remove variables (redeploys a deployed app)",
			help: `
Removes variables of APP (DELETE /apps/:app/env). A deployed app is
redeployed without them and the redeploy is followed until it settles.`,
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&noRestart, "no-restart", false, "Remove them without redeploying the app.")
				detachFlag(&detach)(fs)
			},
			run: func(r *run) error {
				op, _, err := r.cl.Env().Unset(r.args[0], &api.EnvUnsetRequest{Names: r.args[1:], NoRestart: noRestart}, nil)
				if err != nil {
					return err
				}
				r.outf("unset %s of %s", strings.Join(r.args[1:], ", "), r.args[0])
				return r.followIfStarted(r.cl, r.args[0], op, detach || noRestart)
			}}
	}
	g.add("env unset", unset)
	g.alias("env-unset", "env unset", unset)
}

// followBinding follows the redeploy a bind or unbind starts on a deployed
// app (their answer names no operation: the app's deploy record tells).
func (r *run) followBinding(app string, detach bool) error {
	d, _, err := r.cl.Deploys().Get(app, nil)
	if api.IsNotFound(err) {
		r.outf("%s is not deployed: the change applies at its next deploy", app)
		return nil
	}
	if err != nil {
		return err
	}
	if detach {
		r.outf("%s: redeploying (generation %d); watch it with: berth status %s", app, d.Generation, app)
		return nil
	}
	return r.follow(r.cl, app, &api.Operation{AppName: app, Generation: d.Generation, Operation: d.Operation})
}

func bindCommands(g *registry) {
	g.add("bind", func() *cmd {
		var detach bool
		return &cmd{args: "INSTANCE APP", minArgs: 2, maxArgs: 2, jsonOut: true, synopsis: "Bind a service instance to an app",
			help: `
Binds the service instance INSTANCE to APP (PUT /services/instances/:name/:app):
the app gets the instance's variables and, when deployed, is redeployed;
the redeploy is followed until it settles (Ctrl-C stops following). Prints
the names of the variables; -json prints them with their values and does
not follow the redeploy. JSON: map[string]string.`,
			flags: detachFlag(&detach),
			run: func(r *run) error {
				vars, _, err := r.cl.Instances().Bind(r.args[0], r.args[1], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(vars)
				}
				names := make([]string, 0, len(vars))
				for k := range vars {
					names = append(names, k)
				}
				sort.Strings(names)
				r.outf("bound %s to %s; the app gets %s", r.args[0], r.args[1], strings.Join(names, ", "))
				return r.followBinding(r.args[1], detach)
			}}
	})
	g.add("unbind", func() *cmd {
		var detach bool
		return &cmd{args: "INSTANCE APP", minArgs: 2, maxArgs: 2, synopsis: "Unbind a service instance from an app",
			help: `
Unbinds INSTANCE from APP (DELETE /services/instances/:name/:app); a
deployed app is redeployed without its variables, followed until it settles.`,
			flags: detachFlag(&detach),
			run: func(r *run) error {
				st, _, err := r.cl.Instances().Unbind(r.args[0], r.args[1], nil)
				if err != nil {
					return err
				}
				r.outf("unbound %s from %s", r.args[0], r.args[1])
				if st.Status != "ok" { // the unbind is done, but no redeploy was started: the server says why
					r.outf("%s", st.Status)
					return nil
				}
				return r.followBinding(r.args[1], detach)
			}}
	})
}
