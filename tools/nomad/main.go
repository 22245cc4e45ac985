// Command nomad is Nomad v1.6.3 (MPL-2.0) built from the Go module proxy for
// Berth's optional end-to-end tests against a real Nomad (e2e/deploy_nomad_test.go).
// It is Nomad's own main without the grouped help: every command of
// command.Commands, including the hidden "executor" and "logmon" plugins
// that raw_exec tasks re-exec the binary as. Built by tools/nomad/build.sh.
package main

import (
	"fmt"
	"os"

	// As in Nomad's main.go: these packages' init funcs check os.Args and
	// drop into their own command logic when the binary is re-exec'd as a
	// task helper; they must be imported first.
	_ "github.com/hashicorp/nomad/client/allocrunner/taskrunner/getter"
	_ "github.com/hashicorp/nomad/client/logmon"
	_ "github.com/hashicorp/nomad/drivers/docker/docklog"
	_ "github.com/hashicorp/nomad/drivers/shared/executor"

	"github.com/hashicorp/nomad/command"
	"github.com/hashicorp/nomad/version"
	"github.com/mitchellh/cli"
)

func main() {
	args := os.Args[1:]
	meta := new(command.Meta)
	meta.SetupUi(args)
	agentUI := &cli.BasicUi{Reader: os.Stdin, Writer: os.Stdout, ErrorWriter: os.Stderr}
	c := &cli.CLI{
		Name:       "nomad",
		Version:    version.GetVersion().FullVersionNumber(true),
		Args:       args,
		Commands:   command.Commands(meta, agentUI),
		HelpWriter: os.Stdout,
	}
	code, err := c.Run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error executing CLI: %s\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}
