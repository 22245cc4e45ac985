package main

import (
	"bytes"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/posener/complete"
	"gopkg.in/yaml.v3"

	"github.com/berthpaas/berth/api"
)

func serviceCommands(g *registry) {
	g.noun("service", "Services (brokers of instances): list, info, create, update, remove, doc, grant, revoke", `
Services are the brokers that provision instances (mysql, redis, mongodb,
external OSB brokers). A service is described by a YAML file:

  id: mysql
  broker: mysql
  target: local-mysql      # one of the operator's broker targets
  team: myteam
  doc: MySQL databases`)
	g.add("service list", func() *cmd {
		return &cmd{jsonOut: true, synopsis: "List the services and their instances",
			help: `Lists the services you may use and their instances (GET /services). JSON: []api.ServiceListItem.`,
			run: func(r *run) error {
				l, _, err := r.cl.Services().List(nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(l)
				}
				tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SERVICE\tINSTANCES")
				for _, s := range l {
					fmt.Fprintf(tw, "%s\t%s\n", s.Service, strings.Join(s.Instances, ", "))
				}
				return tw.Flush()
			}}
	})
	g.add("service info", func() *cmd {
		return &cmd{args: "SERVICE", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "List a service's instances and their apps",
			help: `Lists the instances of SERVICE, their teams and apps (GET /services/:name). JSON: []api.ServiceInstanceSummary.`,
			run: func(r *run) error {
				l, _, err := r.cl.Services().Instances(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(l)
				}
				tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "INSTANCE\tTEAMS\tAPPS")
				for _, i := range l {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", i.Name, dash(strings.Join(i.Teams, ", ")), dash(strings.Join(i.Apps, ", ")))
				}
				return tw.Flush()
			}}
	})
	g.add("service create", func() *cmd {
		return &cmd{args: "FILE", minArgs: 1, maxArgs: 1, jsonOut: true, predict: complete.PredictFiles("*.yaml"),
			synopsis: "Register a service from a YAML file",
			help:     `Registers a service described by the YAML file FILE ("-": standard input) (POST /services). JSON: api.Service.`,
			run: func(r *run) error {
				b, err := readFileArg(r, r.args[0])
				if err != nil {
					return err
				}
				s, _, err := r.cl.Services().CreateYAML(b, nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(s)
				}
				r.outf("created service %s (broker %s)", s.ID, s.Broker)
				return nil
			}}
	})
	g.add("service update", func() *cmd {
		return &cmd{args: "FILE", minArgs: 1, maxArgs: 1, predict: complete.PredictFiles("*.yaml"),
			synopsis: "Change a service from a YAML file",
			help:     `Changes the service described (by its id) in the YAML file FILE ("-": standard input) (PUT /services).`,
			run: func(r *run) error {
				b, err := readFileArg(r, r.args[0])
				if err != nil {
					return err
				}
				var def api.ServiceDefinition
				dec := yaml.NewDecoder(bytes.NewReader(b))
				dec.KnownFields(true)
				if err := dec.Decode(&def); err != nil {
					return fmt.Errorf("%s: %w", r.args[0], err)
				}
				if _, err := r.cl.Services().Update(&def, nil); err != nil {
					return err
				}
				r.outf("updated service %s", def.ID)
				return nil
			}}
	})
	g.add("service remove", func() *cmd {
		return &cmd{args: "SERVICE", minArgs: 1, maxArgs: 1, synopsis: "Remove a service (it must have no instances)",
			help: `Removes SERVICE (DELETE /services/:name).`,
			run: func(r *run) error {
				if _, err := r.cl.Services().Remove(r.args[0], nil); err != nil {
					return err
				}
				r.outf("removed service %s", r.args[0])
				return nil
			}}
	})
	g.add("service doc", func() *cmd {
		var set string
		return &cmd{args: "SERVICE", minArgs: 1, maxArgs: 1, synopsis: "Show (or set) a service's documentation",
			help: `Prints the documentation of SERVICE (GET /services/:name/doc), or sets it from a file with -set (PUT).`,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&set, "set", "", "Set the documentation from this file (\"-\": standard input).")
			},
			run: func(r *run) error {
				if set != "" {
					b, err := readFileArg(r, set)
					if err != nil {
						return err
					}
					if _, err := r.cl.Services().SetDoc(r.args[0], string(b), nil); err != nil {
						return err
					}
					r.outf("set the documentation of %s", r.args[0])
					return nil
				}
				doc, _, err := r.cl.Services().Doc(r.args[0], nil)
				if err != nil {
					return err
				}
				if doc = strings.TrimRight(doc, "\n"); doc != "" {
					r.outf("%s", doc)
				}
				return nil
			}}
	})
	g.add("service grant", func() *cmd {
		return &cmd{args: "SERVICE TEAM", minArgs: 2, maxArgs: 2, synopsis: "Let a team use a service",
			help: `Lets TEAM make instances of SERVICE (PUT /services/:name/:team).`,
			run: func(r *run) error {
				if _, err := r.cl.Services().Grant(r.args[0], r.args[1], nil); err != nil {
					return err
				}
				r.outf("granted %s to team %s", r.args[0], r.args[1])
				return nil
			}}
	})
	g.add("service revoke", func() *cmd {
		return &cmd{args: "SERVICE TEAM", minArgs: 2, maxArgs: 2, synopsis: "Take a service from a team",
			help: `Takes SERVICE from TEAM (DELETE /services/:name/:team).`,
			run: func(r *run) error {
				if _, err := r.cl.Services().Revoke(r.args[0], r.args[1], nil); err != nil {
					return err
				}
				r.outf("revoked %s from team %s", r.args[0], r.args[1])
				return nil
			}}
	})

	g.noun("instance", "Service instances: list, create, info, status, remove", `
Service instances (a database, a cache, ...) provisioned from a service; bind
one to an app with "berth bind INSTANCE APP".`)
	g.add("instance list", func() *cmd {
		return &cmd{jsonOut: true, synopsis: "List the instances you may see, by service",
			help: `Lists the service instances you may see, by service (GET /services/instances). JSON: []api.ServiceListItem.`,
			run: func(r *run) error {
				l, _, err := r.cl.Instances().List(nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(l)
				}
				tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SERVICE\tINSTANCES")
				for _, s := range l {
					fmt.Fprintf(tw, "%s\t%s\n", s.Service, strings.Join(s.Instances, ", "))
				}
				return tw.Flush()
			}}
	})
	g.add("instance create", func() *cmd {
		var wait time.Duration
		return &cmd{args: "SERVICE NAME", minArgs: 2, maxArgs: 2, jsonOut: true, synopsis: "Provision an instance of a service",
			help: `
Provisions an instance NAME of SERVICE (POST /services/instances) and waits
(up to -wait) until it is ready. JSON: api.ServiceInstance.`,
			flags: func(fs *flag.FlagSet) {
				fs.DurationVar(&wait, "wait", 2*time.Minute, "How long to wait for the instance to be ready (0: do not wait).")
			},
			run: func(r *run) error {
				inst, _, err := r.cl.Instances().Create(&api.InstanceCreateRequest{Name: r.args[1], ServiceName: r.args[0]}, nil)
				if err != nil {
					return err
				}
				deadline := time.Now().Add(wait)
				for wait > 0 && inst.State != api.InstanceReady && time.Now().Before(deadline) {
					if strings.Contains(inst.State, "fail") {
						break
					}
					time.Sleep(500 * time.Millisecond)
					if inst, _, err = r.cl.Instances().Get(r.args[1], nil); err != nil {
						return err
					}
				}
				if r.json {
					return r.printJSON(inst)
				}
				r.outf("instance %s of %s: %s%s", inst.Name, inst.ServiceName, inst.State, msg(inst.Message))
				if wait > 0 && inst.State != api.InstanceReady {
					return fmt.Errorf("instance %s is %s, not ready", inst.Name, inst.State)
				}
				return nil
			}}
	})
	g.add("instance info", func() *cmd {
		return &cmd{args: "NAME", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "Show an instance: service, teams, apps, state",
			help: `Shows the instance NAME (GET /services/instances/:name). JSON: api.ServiceInstance.`,
			run: func(r *run) error {
				i, _, err := r.cl.Instances().Get(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(i)
				}
				tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "Name\t%s\nService\t%s\nState\t%s%s\nTeams\t%s\nApps\t%s\n", i.Name, i.ServiceName, i.State, msg(i.Message),
					dash(strings.Join(i.Teams, ", ")), dash(strings.Join(i.Apps, ", ")))
				return tw.Flush()
			}}
	})
	g.add("instance status", func() *cmd {
		return &cmd{args: "NAME", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "Show an instance's state as its broker sees it",
			help: `Shows the state of the instance NAME and its broker's word on it (GET /services/instances/:name/status). JSON: api.InstanceStatus.`,
			run: func(r *run) error {
				s, _, err := r.cl.Instances().Status(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(s)
				}
				r.outf("%s: %s (its broker's last operation: %s)%s", s.Name, s.State, s.Broker, msg(s.Description))
				return nil
			}}
	})
	g.add("instance remove", func() *cmd {
		return &cmd{args: "NAME", minArgs: 1, maxArgs: 1, synopsis: "Deprovision an instance (unbind it first)",
			help: `Deprovisions the instance NAME (DELETE /services/instances/:name). Refused while it is bound.`,
			run: func(r *run) error {
				if _, err := r.cl.Instances().Remove(r.args[0], nil); err != nil {
					return err
				}
				r.outf("removed instance %s", r.args[0])
				return nil
			}}
	})
	bindCommands(g)
}

func miscCommands(g *registry) {
	g.noun("quota", "A user's app quota: get, set", `How many apps a user may own.`)
	g.add("quota get", func() *cmd {
		return &cmd{args: "EMAIL", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "Show a user's app quota",
			help: `Shows the app quota of EMAIL (GET /quota/:email). JSON: api.Quota.`,
			run: func(r *run) error {
				q, _, err := r.cl.Quotas().Get(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(q)
				}
				r.outf("%s: may own %d app(s); %d more available", r.args[0], q.Items, q.Available)
				return nil
			}}
	})
	g.add("quota set", func() *cmd {
		return &cmd{args: "EMAIL LIMIT", minArgs: 2, maxArgs: 2, synopsis: "Set a user's app quota (site admins)",
			help: `Sets the app quota of EMAIL to LIMIT apps, 0 or more (PUT /quota/:email).`,
			run: func(r *run) error {
				n, err := strconv.Atoi(r.args[1])
				if err != nil {
					return usagef("LIMIT must be a number, not %q", r.args[1])
				}
				if _, err := r.cl.Quotas().Set(r.args[0], n, nil); err != nil {
					return err
				}
				r.outf("quota of %s set to %d", r.args[0], n)
				return nil
			}}
	})
	g.add("events", func() *cmd {
		var limit int
		var before string
		return &cmd{jsonOut: true, synopsis: "Show the audit log (site admins)",
			help: `
Shows the audit log, newest first (GET /api/v1/events/): who did what to
what, and the outcome. The next page is -before with the cursor printed at
the end. JSON: api.EventsPage.`,
			flags: func(fs *flag.FlagSet) {
				fs.IntVar(&limit, "limit", 50, "How many events to show.")
				fs.StringVar(&before, "before", "", "Show the events before this cursor (the previous page's next).")
			},
			run: func(r *run) error {
				p, _, err := r.cl.Events().List(limit, before, nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(p)
				}
				tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tTARGET\tOUTCOME")
				for _, e := range p.Events {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s%s\n", e.Time.Local().Format(time.DateTime), e.Actor, e.Action, e.Target, e.Outcome, msg(e.Detail))
				}
				tw.Flush()
				if p.Next != "" {
					r.outf("(more: berth events -before %s)", p.Next)
				}
				return nil
			}}
	})
}
