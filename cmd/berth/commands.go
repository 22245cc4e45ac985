package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/cli"
)

// registry collects the commands of one invocation.
type registry struct {
	m    *Meta
	cmds map[string]cli.CommandFactory
}

// add registers a command made fresh by mk for each run.
func (g *registry) add(name string, mk func() *cmd) {
	g.cmds[name] = func() (cli.Command, error) {
		c := mk()
		c.m, c.name = g.m, name
		return c, nil
	}
}

// alias registers old as a hidden alias of the command mk makes (the CLI's
// names before `berth <noun> <verb>`).
func (g *registry) alias(old, name string, mk func() *cmd) {
	g.cmds[old] = func() (cli.Command, error) {
		c := mk()
		c.m, c.name, c.hidden = g.m, old, true
		c.help = strings.TrimSpace(c.help) + fmt.Sprintf("\n\n(An alias of \"berth %s\".)", name)
		return c, nil
	}
}

// noun registers a noun without a verb.
func (g *registry) noun(name, synopsis, help string) {
	g.cmds[name] = func() (cli.Command, error) {
		return &nsCmd{m: g.m, name: name, synopsis: synopsis, help: help}, nil
	}
}

// commands are all the commands, by name ("app info").
func commands(m *Meta) map[string]cli.CommandFactory {
	g := &registry{m: m, cmds: map[string]cli.CommandFactory{}}
	userCommands(g)
	teamCommands(g)
	appCommands(g)
	deployCommands(g)
	envCommands(g)
	serviceCommands(g)
	releaseCommands(g)
	miscCommands(g)
	tokenCommands(g)
	runCommands(g)
	serverSideCommands(g)
	logsCommands(g)
	domainCommands(g)
	return g.cmds
}

// rawCmd is a command that parses its own flags (the server-side ones,
// which keep their flags as they were).
type rawCmd struct {
	m        *Meta
	synopsis string
	help     string
	run      func(args []string) error
}

func (c *rawCmd) Help() string     { return strings.TrimSpace(c.help) }
func (c *rawCmd) Synopsis() string { return c.synopsis }
func (c *rawCmd) Run(args []string) int {
	if err := c.run(args); err != nil {
		fmt.Fprintln(c.m.Err, "berth:", err)
		return exitError
	}
	return exitOK
}

func serverSideCommands(g *registry) {
	raw := func(name, synopsis, help string, run func([]string) error) {
		g.cmds[name] = func() (cli.Command, error) {
			return &rawCmd{m: g.m, synopsis: synopsis, help: help, run: run}, nil
		}
	}
	raw("server", "Run the Berth server (API, reconciler, console)", `
Usage: berth server [-config FILE] [-data-dir DIR] [-bind ADDR]

  Runs the API server (both surfaces), the reconciler and the web console.
  With no config it runs on the embedded defaults (bbolt store, sealed
  secrets, local scheduler).

Options:

  -config=<file>
    The config file (HCL); without it the embedded defaults serve.

  -data-dir=<dir>
    The data directory (overrides data_dir).

  -bind=<addr>
    The listen address host:port (overrides bind_addr).`, runServer)
	g.noun("admin", "Operator commands that work on the store directly", `
Operator commands, run on the server's host with its config; they work on
the store directly (stop the server first when it uses the embedded bbolt
store).`)
	raw("admin create-user", "Create a user directly in the store (e.g. the first admin)", `
Usage: berth admin create-user -email EMAIL [-admin] [-password-file FILE] [-config FILE]

  Creates a user directly in the store (the first admin, for example).
  Without -password-file a random password is generated and printed.

Options:

  -email=<email>
    The user's email (their login name).

  -admin
    Make the user a site admin.

  -password-file=<file>
    Read the password from this file; without it a random one is generated.

  -password-out=<file>
    Write the generated password to this file (mode 0600) instead of
    printing it.

  -if-missing
    Succeed without change when the user already exists.

  -config=<file>
    The config file (HCL).

  -data-dir=<dir>
    The data directory (overrides data_dir).`, func(args []string) error {
		return runAdmin(append([]string{"create-user"}, args...))
	})
	raw("admin put-secret", "Put a secret in Berth's Secrets (for a broker target's secret_refs)", `
Usage: berth admin put-secret [-key KEY] [-config FILE] [-data-dir DIR] PATH < value

  Sets key KEY of the secret at PATH in Berth's Secrets (sealed in the data
  dir, or Vault, as the config selects) to the value read from stdin (one
  trailing newline is dropped); the secret's other keys are kept, and a new
  version is written. A broker_target reads it with
  secret_refs = { password = "PATH" } (key: the setting's name) or
  "PATH#KEY"; osb.password_secret reads key "password". The value is never
  printed. Paths where Berth keeps its own secrets (apps/, services/,
  tokens/, ...) are refused. The sealed secrets can be written only while
  the server using the data dir is stopped; Vault's at any time (the broker
  reads the new value at its next configure).

    printf '%s' "$PASSWORD" | berth admin put-secret -config config.hcl brokers/partner

Options:

  -key=<key>
    The key of the secret to set (default "password").

  -config=<file>
    The config file (HCL).

  -data-dir=<dir>
    The data directory (overrides data_dir).`, func(args []string) error {
		return runPutSecret(args, os.Stdin)
	})
	g.add("version", func() *cmd {
		return &cmd{synopsis: "Print the version", local: true, help: "Prints the version of this binary.",
			run: func(r *run) error { r.outf("berth %s", version); return nil }}
	})
}
