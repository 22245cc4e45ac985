package main

// The client CLI, on github.com/hashicorp/cli in the manner of the Nomad and
// Consul CLIs: `berth <noun> <verb> [options] ARGS`. Every command has -h,
// rejects unknown flags (exit 2), and takes the general options -address
// (BERTH_ADDR) and -token (BERTH_TOKEN); reads take -json and print the
// api type. Exit codes: 0 ok, 1 error, 2 usage.
//
// The commands are registered in commands() (commands_*.go, one file per
// noun); each is a *cmd (its name, arguments, help, flags and run func).

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/cli"

	"github.com/berthpaas/berth/api"
	"github.com/posener/complete"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Meta is what every command shares: its streams (tests swap them) and the
// general options.
type Meta struct {
	In       io.Reader
	Out, Err io.Writer
}

// usageError is a wrong use of a command: exit 2 with the command's usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// cmd is one command.
type cmd struct {
	m        *Meta
	name     string // e.g. "app info"
	args     string // the positional arguments in the usage line, e.g. "APP"
	synopsis string
	help     string // what it does, a paragraph or more
	minArgs  int
	maxArgs  int  // -1: any number
	local    bool // talks to no server: no -address/-token
	jsonOut  bool // a read: takes -json
	hidden   bool
	flags    func(fs *flag.FlagSet)
	predict  complete.Predictor
	run      func(r *run) error
}

// run is one invocation of a command.
type run struct {
	*Meta
	name    string
	args    []string
	json    bool
	address string
	token   string
	// addrSet and tokenSet say the options were given on the command line.
	addrSet, tokenSet bool
	c                 *cmd
	// cl is the API client (nil for a local command).
	cl *api.Client
}

func (c *cmd) flagSet(r *run) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if !c.local {
		fs.Func("address", "", func(s string) error { r.address, r.addrSet = s, true; return nil })
		fs.Func("token", "", func(s string) error { r.token, r.tokenSet = s, true; return nil })
	}
	if c.jsonOut {
		fs.BoolVar(&r.json, "json", false, "")
	}
	if c.flags != nil {
		c.flags(fs)
	}
	return fs
}

// Help is the command's usage, description and options.
func (c *cmd) Help() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: berth %s [options]", c.name)
	if c.args != "" {
		b.WriteString(" " + c.args)
	}
	b.WriteString("\n\n")
	for _, line := range strings.Split(strings.TrimSpace(c.help), "\n") {
		if line == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString("  " + line + "\n")
	}
	if !c.local {
		b.WriteString(generalOptions)
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	if c.jsonOut {
		fs.Bool("json", false, "Print the answer as JSON (the api type named above) instead of text.")
	}
	if c.flags != nil {
		c.flags(fs)
	}
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Usage, "(hidden)") {
			return
		}
		if first {
			b.WriteString("\nCommand Options:\n")
			first = false
		}
		name, usage := flag.UnquoteUsage(f)
		b.WriteString("\n  -" + f.Name)
		if name != "" {
			b.WriteString("=<" + name + ">")
		}
		b.WriteString("\n    " + strings.ReplaceAll(usage, "\n", "\n    "))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			b.WriteString(" Default: " + f.DefValue + ".")
		}
		b.WriteString("\n")
	})
	return strings.TrimRight(b.String(), "\n")
}

const generalOptions = `
General Options:

  -address=<addr>
    The address of the Berth server. Overrides the BERTH_ADDR environment
    variable and the address saved by "berth login". Default:
    http://127.0.0.1:8080.

  -token=<token>
    The token to authenticate with. Overrides the BERTH_TOKEN environment
    variable and the token saved by "berth login" (which is sent only to
    the address it was saved for).
`

func (c *cmd) Synopsis() string { return c.synopsis }

func (c *cmd) AutocompleteArgs() complete.Predictor {
	if c.predict != nil {
		return c.predict
	}
	return complete.PredictNothing
}

func (c *cmd) AutocompleteFlags() complete.Flags {
	fl := complete.Flags{}
	c.flagSet(&run{}).VisitAll(func(f *flag.Flag) {
		fl["-"+f.Name] = complete.PredictAnything
	})
	return fl
}

// Run parses the flags (also after the positional arguments, as
// `berth login EMAIL -address URL` always worked), checks the number of
// arguments, and runs the command.
func (c *cmd) Run(args []string) int {
	r := &run{Meta: c.m, name: c.name, c: c}
	fs := c.flagSet(r)
	pos, err := parseInterspersed(fs, args)
	if err == nil && len(pos) < c.minArgs {
		err = usagef("%s: not enough arguments", c.name)
	}
	if err == nil && c.maxArgs >= 0 && len(pos) > c.maxArgs {
		err = usagef("%s: too many arguments (%s)", c.name, strings.Join(pos[c.maxArgs:], " "))
	}
	if err != nil {
		fmt.Fprintf(c.m.Err, "Error: %v\n\n%s\n", err, c.Help())
		return exitUsage
	}
	r.args = pos
	if !c.local {
		if r.cl, err = r.api(); err != nil {
			fmt.Fprintf(c.m.Err, "Error: %v\n", err)
			return exitUsage
		}
	}
	if err := c.run(r); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(c.m.Err, "Error: %v\n\n%s\n", err, c.Help())
			return exitUsage
		}
		if errors.Is(err, errInterrupted) {
			return exitError
		}
		var ec exitCode
		if errors.As(err, &ec) {
			return int(ec)
		}
		fmt.Fprintf(c.m.Err, "Error: %v\n", err)
		return exitError
	}
	return exitOK
}

// parseInterspersed parses flags anywhere among the arguments; after "--"
// everything is an argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// nsCmd is a noun without a verb (e.g. `berth app`): it lists its verbs.
type nsCmd struct {
	m        *Meta
	name     string
	synopsis string
	help     string
}

func (n *nsCmd) Help() string {
	return fmt.Sprintf("Usage: berth %s <subcommand> [options] [args]\n\n  %s", n.name,
		strings.ReplaceAll(strings.TrimSpace(n.help), "\n", "\n  "))
}
func (n *nsCmd) Synopsis() string { return n.synopsis }
func (n *nsCmd) Run(args []string) int {
	fmt.Fprintln(n.m.Err, "Error: missing subcommand")
	fmt.Fprintln(n.m.Err)
	fmt.Fprintln(n.m.Err, n.Help())
	fmt.Fprintln(n.m.Err)
	fmt.Fprintln(n.m.Err, subcommandList(n.m, n.name))
	return exitUsage
}

// subcommandList lists the verbs of a noun, as the cli's help does.
func subcommandList(m *Meta, noun string) string {
	cmds := commands(m)
	var names []string
	width := 0
	for k := range cmds {
		if strings.HasPrefix(k, noun+" ") && !strings.Contains(k[len(noun)+1:], " ") {
			names = append(names, k)
			if w := len(k) - len(noun) - 1; w > width {
				width = w
			}
		}
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("Subcommands:")
	for _, k := range names {
		c, _ := cmds[k]()
		fmt.Fprintf(&b, "\n    %-*s    %s", width, k[len(noun)+1:], c.Synopsis())
	}
	return b.String()
}

// runCLI runs the client CLI (and the server commands) with args (without
// the program name) and returns the exit code.
func runCLI(args []string, in io.Reader, out, errw io.Writer) int {
	m := &Meta{In: in, Out: out, Err: errw}
	cmds := commands(m)
	var hidden []string
	for k, f := range cmds {
		if c, _ := f(); c != nil {
			if cc, ok := c.(*cmd); ok && cc.hidden {
				hidden = append(hidden, k)
			}
		}
	}
	if len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch strings.TrimLeft(args[0], "-") {
		case "h", "help", "v", "version", "autocomplete-install", "autocomplete-uninstall":
		default:
			fmt.Fprintf(errw, "Error: unknown option %s before a command (options go after the command)\n\n%s\n", args[0], topHelp(cmds))
			return exitUsage
		}
	}
	c := &cli.CLI{
		Name:                  "berth",
		Args:                  args,
		Version:               "berth " + version,
		Commands:              cmds,
		HiddenCommands:        hidden,
		HelpFunc:              func(map[string]cli.CommandFactory) string { return topHelp(cmds) },
		HelpWriter:            out,
		ErrorWriter:           errw,
		Autocomplete:          true,
		AutocompleteInstall:   "autocomplete-install",
		AutocompleteUninstall: "autocomplete-uninstall",
	}
	code, err := c.Run()
	if err != nil {
		fmt.Fprintf(errw, "Error: %v\n", err)
		return exitError
	}
	if code == 127 { // no such command: the cli printed the help
		if len(args) > 0 {
			fmt.Fprintf(errw, "Error: unknown command %q\n", strings.Join(args, " "))
		}
		return exitUsage
	}
	return code
}

// topHelp is `berth -h`: the top-level commands by kind.
func topHelp(cmds map[string]cli.CommandFactory) string {
	var client, server []string
	width := 0
	for k, f := range cmds {
		if strings.Contains(k, " ") {
			continue
		}
		c, _ := f()
		if cc, ok := c.(*cmd); ok && cc.hidden {
			continue
		}
		if len(k) > width {
			width = len(k)
		}
		if serverCommands[k] {
			server = append(server, k)
		} else {
			client = append(client, k)
		}
	}
	sort.Strings(client)
	sort.Strings(server)
	var b strings.Builder
	b.WriteString("Usage: berth [-version] [-help] [-autocomplete-(un)install] <command> [args]\n\n")
	b.WriteString("Berth is a PaaS control plane for Nomad, Consul and Vault. `berth server` runs it;\n")
	b.WriteString("the other commands are its client. `berth <command> -h` tells more about each.\n\n")
	list := func(title string, names []string) {
		b.WriteString(title + ":\n")
		for _, k := range names {
			c, _ := cmds[k]()
			fmt.Fprintf(&b, "    %-*s    %s\n", width, k, c.Synopsis())
		}
		b.WriteString("\n")
	}
	list("Client commands", client)
	list("Server commands", server)
	b.WriteString(`Environment:
    BERTH_ADDR          the server's address (else the one "berth login" saved,
                        else http://127.0.0.1:8080); -address overrides it
    BERTH_TOKEN         the token to use (else the one "berth login" saved);
                        -token overrides it
    BERTH_PASSWORD      the password for "berth login" and "berth user create"
    BERTH_CREDENTIALS   the credentials file (default ~/.config/berth/credentials)

Exit codes: 0 success, 1 error, 2 wrong usage (unknown command, flag or arguments).`)
	return b.String()
}

// serverCommands are the top-level commands that run on the server's host.
var serverCommands = map[string]bool{"server": true, "admin": true, "plugin": true}

// osExit is os.Exit (tests do not call main).
var osExit = os.Exit
