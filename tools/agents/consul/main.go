// Command consul is a minimal Consul v1.14.8 (MPL-2.0) agent used by Berth's
// tests: it carries only the "agent" and "version" commands, enough to run
// "consul agent -dev" on loopback. It is built by tools/agents/build.sh.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/consul/command/agent"
	consulcli "github.com/hashicorp/consul/command/cli"
	"github.com/hashicorp/consul/command/version"
	"github.com/mitchellh/cli"
)

func main() {
	ui := &consulcli.BasicUI{
		BasicUi: cli.BasicUi{Writer: os.Stdout, ErrorWriter: os.Stderr},
	}
	c := &cli.CLI{
		Name: "consul",
		Args: os.Args[1:],
		Commands: map[string]cli.CommandFactory{
			"agent":   func() (cli.Command, error) { return agent.New(ui), nil },
			"version": func() (cli.Command, error) { return version.New(ui), nil },
		},
		HelpWriter:  os.Stdout,
		ErrorWriter: os.Stderr,
	}
	if c.IsVersion() {
		os.Exit(version.New(ui).Run(nil))
	}
	code, err := c.Run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error executing CLI: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}
