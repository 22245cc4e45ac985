// Command seedcheck checks that an OpenAPI document covers every endpoint
// the seed documents name:
//
//	go run ./tools/seedcheck -doc openapi.json docs/seeds/*.txt
//
// It exits 0 when every endpoint is covered, 1 listing those that are not,
// and 2 when the document or a seed cannot be read (the document must be a
// valid OpenAPI document, as kin-openapi loads and validates it).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/berthpaas/berth/server/openapi"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("seedcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	docPath := fs.String("doc", "openapi.json", "the OpenAPI document (JSON)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: seedcheck -doc openapi.json SEED...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	doc, err := os.ReadFile(*docPath)
	if err != nil {
		fmt.Fprintln(stderr, "seedcheck:", err)
		return 2
	}
	if _, err := openapi.NewValidator(doc); err != nil {
		fmt.Fprintf(stderr, "seedcheck: %s: %v\n", *docPath, err)
		return 2
	}
	eps, err := openapi.SeedEndpoints(fs.Args()...)
	if err != nil {
		fmt.Fprintln(stderr, "seedcheck:", err)
		return 2
	}
	missing := openapi.Uncovered(doc, eps)
	if len(missing) == 0 {
		fmt.Fprintf(stdout, "seedcheck: %s covers all %d endpoints of %d seed documents\n", *docPath, len(eps), fs.NArg())
		return 0
	}
	fmt.Fprintf(stdout, "seedcheck: %s does not cover %d of %d endpoints:\n", *docPath, len(missing), len(eps))
	for _, e := range missing {
		fmt.Fprintf(stdout, "  %s %s\t(%s)\n", e.Method, e.Path, e.Source)
	}
	return 1
}
