package main

import (
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthpaas/berth/api"
)

// actionsFlag collects a repeatable -action.
type actionsFlag []string

func (a *actionsFlag) String() string { return strings.Join(*a, ",") }
func (a *actionsFlag) Set(s string) error {
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*a = append(*a, x)
		}
	}
	return nil
}

// expiresSeconds turns -expires (a Go duration; "" or 0: the server's
// default) into seconds.
func expiresSeconds(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || (d > 0 && d < time.Second) {
		return 0, usagef("-expires wants a duration such as 720h or 30m, not %q", s)
	}
	return int64(d / time.Second), nil
}

func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04 MST")
}

func tokenCommands(g *registry) {
	g.noun("token", "Team tokens for CI: create, list, revoke", `
Team tokens are for automation (CI): a token acts for a team on the team's
apps, with only the actions it was given, until it expires or is revoked.
App tokens (one app) are under "berth app token".`)

	g.add("token create", func() *cmd {
		var team, desc, expires string
		var acts actionsFlag
		return &cmd{jsonOut: true, synopsis: "Create a team token (its value is shown once)",
			help: `
Creates a team token (POST /teams/:team/tokens): it acts on the apps of the
team (those whose owner or teams include it) with only the actions given,
e.g. -action app.push -action app.deploy -action app.read for a CI that
pushes and deploys. Only app actions that a member of the team may do can
be given; you must be a member of the team. The token's value is printed
now and never again: keep it in your CI's secrets. JSON: api.TeamTokenCreated.`,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&team, "team", "", "The team the token acts for (required).")
				fs.StringVar(&desc, "description", "", "What the token is for, shown in \"berth token list\".")
				fs.Var(&acts, "action", "An `action` the token may do (repeatable, or comma-separated):\ne.g. app.read, app.push, app.deploy, app.scale, app.restart, app.env.read, app.env.write.")
				fs.StringVar(&expires, "expires", "", "The token's lifetime, e.g. 720h (default: the server's users.app_token_ttl).")
			},
			run: func(r *run) error {
				if team == "" {
					return usagef("-team is required")
				}
				if len(acts) == 0 {
					return usagef("give the token at least one -action")
				}
				secs, err := expiresSeconds(expires)
				if err != nil {
					return err
				}
				t, _, err := r.cl.TeamTokens().Create(team, &api.TeamTokenCreateRequest{Description: desc, Actions: acts, ExpiresIn: secs}, nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(t)
				}
				r.outf("created team token %s for team %s (%s), expires %s", t.ID, t.Team, strings.Join(t.Actions, ", "), when(&t.Expires))
				r.outf("token: %s", t.Token)
				r.outf("This is the only time the token is shown. Use it as BERTH_TOKEN or 'Authorization: bearer <token>'.")
				return nil
			}}
	})
	g.add("token list", func() *cmd {
		var team string
		return &cmd{jsonOut: true, synopsis: "List the team tokens of your teams",
			help: `
Lists the team tokens of a team (GET /teams/:team/tokens) or of all your
teams (GET /tokens): ID, team, description, actions, creator, when it was
created, expires and was last used. Never the tokens' values.
JSON: []api.TeamToken.`,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&team, "team", "", "Only this team's tokens.")
			},
			run: func(r *run) error {
				l, _, err := r.cl.TeamTokens().List(team, nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(l)
				}
				tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTEAM\tDESCRIPTION\tACTIONS\tCREATOR\tCREATED\tEXPIRES\tLAST USED")
				for _, t := range l {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Team, t.Description, strings.Join(t.Actions, ","),
						t.Creator, when(&t.Created), when(&t.Expires), when(t.LastAccess))
				}
				return tw.Flush()
			}}
	})
	g.add("token revoke", func() *cmd {
		return &cmd{args: "ID", minArgs: 1, maxArgs: 1, synopsis: "Revoke a team token",
			help: `Revokes a team token of one of your teams (DELETE /tokens/:token_id); it stops working at once.`,
			run: func(r *run) error {
				if _, err := r.cl.TeamTokens().Revoke(r.args[0], nil); err != nil {
					return err
				}
				r.outf("revoked team token %s", r.args[0])
				return nil
			}}
	})

	g.noun("app token", "App tokens: create, list, revoke", `
App tokens act on one app, with the rights its maintainers' app tokens have
(read, push, deploy, scale, restart, env). Those who may create them (the
app's admins and owner) list and revoke them.`)
	g.add("app token create", func() *cmd {
		var expires string
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "Create an app token (its value is shown once)",
			help: `Creates a token acting on one app (POST /tokens). JSON: api.AppToken.`,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&expires, "expires", "", "The token's lifetime, e.g. 720h (default: the server's users.app_token_ttl).")
			},
			run: func(r *run) error {
				secs, err := expiresSeconds(expires)
				if err != nil {
					return err
				}
				t, _, err := r.cl.Tokens().Create(&api.AppTokenRequest{AppName: r.args[0], Expires: secs}, nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(t)
				}
				r.outf("created an app token for %s, expires in %s", t.AppName, time.Duration(t.Expires)*time.Second)
				r.outf("token: %s", t.Token)
				r.outf("This is the only time the token is shown.")
				return nil
			}}
	})
	g.add("app token list", func() *cmd {
		return &cmd{args: "APP", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "List an app's tokens",
			help: `Lists an app's tokens (GET /apps/:app/tokens): ID, creator, created, expires; never their values. JSON: []api.AppTokenInfo.`,
			run: func(r *run) error {
				l, _, err := r.cl.Tokens().ListApp(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(l)
				}
				tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tCREATOR\tCREATED\tEXPIRES")
				for _, t := range l {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Creator, when(&t.Created), when(&t.Expires))
				}
				return tw.Flush()
			}}
	})
	g.add("app token revoke", func() *cmd {
		return &cmd{args: "APP ID", minArgs: 2, maxArgs: 2, synopsis: "Revoke an app token",
			help: `Revokes an app token by its ID (DELETE /apps/:app/tokens/:id); it stops working at once.`,
			run: func(r *run) error {
				if _, err := r.cl.Tokens().RevokeApp(r.args[0], r.args[1], nil); err != nil {
					return err
				}
				r.outf("revoked app token %s of %s", r.args[1], r.args[0])
				return nil
			}}
	})
}
