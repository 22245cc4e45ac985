// Command berth is the Berth PaaS control plane: the server, the operator
// commands, the client CLI (`berth <noun> <verb>`, on api/), and the
// built-in service-broker plugins (re-exec'd by the server as
// `berth plugin <name>`).
//
// `berth -h` lists the commands; `berth <command> -h` explains each.
package main

import (
	"fmt"
	"os"

	"github.com/berthpaas/berth/backends/local"
)

var version = "0.1.0-dev"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "plugin": // hidden: the server re-execs itself as a broker plugin
			if err := runPlugin(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "berth:", err)
				os.Exit(1)
			}
			return
		case local.ShimCommand: // hidden: the local scheduler's process shim
			os.Exit(local.ShimMain(os.Args[2:]))
		}
	}
	osExit(runCLI(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
