package main

import (
	"strings"

	"github.com/berthpaas/berth/api"
)

func domainCommands(g *registry) {
	g.noun("domain", "An app's custom domains: list, add, remove", `
Custom domains (tsuru's cname) are extra host names the router sends to an
app's web proc, beside its own <app>.<apps domain>. On Nomad they become
routing tags of the app's Consul service. A host name belongs to one app
only.`)
	g.add("domain list", func() *cmd {
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "List an app's routes and custom domains",
			help: `
Lists the host names APP is routed at (GET /apps/:app/cname): its own first,
then its custom domains, marked. JSON: api.Domains.`,
			run: func(r *run) error {
				d, _, err := r.cl.Domains().List(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(d)
				}
				for _, h := range d.Routes {
					mark := ""
					for _, c := range d.CName {
						if c == h {
							mark = " (custom)"
						}
					}
					r.outf("%s%s", h, mark)
				}
				return nil
			}}
	})
	change := func(add bool) func() *cmd {
		return func() *cmd {
			var detach bool
			c := &cmd{args: "APP HOST...", minArgs: 2, maxArgs: -1, flags: detachFlag(&detach),
				run: func(r *run) error {
					var ch *api.DomainsChange
					var err error
					verb := "added"
					if add {
						ch, _, err = r.cl.Domains().Add(r.args[0], r.args[1:], nil)
					} else {
						verb = "removed"
						ch, _, err = r.cl.Domains().Remove(r.args[0], r.args[1:], nil)
					}
					if err != nil {
						return err
					}
					r.outf("%s %s: %s; routes: %s", r.args[0], verb, strings.Join(r.args[1:], ", "), strings.Join(ch.Routes, ", "))
					return r.followIfStarted(r.cl, r.args[0], ch.Operation, detach)
				}}
			if add {
				c.synopsis = "Add custom domains to an app (redeploys its routes)"
				c.help = `
Gives APP the host names HOST (POST /apps/:app/cname): DNS names such as
www.example.com, outside the apps domain; a host name another app has is
refused, naming that app. Point the name's DNS at the router. A deployed app's
routes are redeployed and followed until they settle (Ctrl-C stops
following; it goes on on the server).`
			} else {
				c.synopsis = "Remove custom domains from an app (redeploys its routes)"
				c.help = `
Takes the custom host names HOST from APP (DELETE /apps/:app/cname); the
router stops serving them. A deployed app's routes are redeployed and
followed until they settle.`
			}
			return c
		}
	}
	g.add("domain add", change(true))
	g.add("domain remove", change(false))
}
