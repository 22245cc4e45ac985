// Command berth is the Berth PaaS control plane: the server, the operator
// commands, and the built-in service-broker plugins (re-exec'd by the
// server as `berth plugin <name>`).
package main

import (
	"fmt"
	"os"

	"github.com/berthpaas/berth/backends/local"
)

const usage = `berth — a PaaS control plane for Nomad, Consul and Vault

Usage:
  berth server [-config FILE] [-data-dir DIR] [-bind ADDR]
      Run the API server (both surfaces). With no config it runs on the
      embedded defaults (bbolt store, sealed secrets, local scheduler).
  berth admin create-user -email EMAIL [-password-file FILE] [-admin] [-config FILE]
      Create a user directly in the store (the first admin, for example).
      Without -password-file a random password is generated and printed.
  berth plugin NAME
      Serve a built-in service broker (mysql, redis, mongodb) over go-plugin.
  berth version
  berth help                            also lists the client commands (login, apps, push, deploy, ...)
`

var version = "0.1.0-dev"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = runServer(os.Args[2:])
	case "admin":
		err = runAdmin(os.Args[2:])
	case "plugin":
		err = runPlugin(os.Args[2:])
	case local.ShimCommand: // hidden: the local scheduler's process shim
		os.Exit(local.ShimMain(os.Args[2:]))
	case "version", "-version", "--version":
		fmt.Println("berth", version)
	case "help", "-h", "-help", "--help":
		fmt.Print(usage + "\n" + clientUsage)
	default:
		if isClientCommand(os.Args[1]) {
			err = runClient(os.Args[1], os.Args[2:], os.Stdin, os.Stdout)
			break
		}
		fmt.Fprintf(os.Stderr, "berth: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		os.Exit(1)
	}
}
