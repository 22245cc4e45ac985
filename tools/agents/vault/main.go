// Command vault is Vault v1.13.2 (MPL-2.0) built from its Go module for
// Berth's tests, which run "vault server -dev" on loopback. It is built by
// tools/agents/build.sh.
//
// github.com/snowflakedb/gosnowflake v1.6.3 (a Vault database plugin
// dependency) parses embedded CA certificates with negative serial numbers
// at init; Go 1.23+ refuses those unless x509negativeserial=1.

//go:debug x509negativeserial=1
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
