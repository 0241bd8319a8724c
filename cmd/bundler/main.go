// Command bundler compiles an infra repo into signed per-host bundles.
// All logic lives in package bundler/cli; this main only wires the process.
package main

import (
	"context"
	"os"

	"github.com/rigger-bsd/rigger/bundler/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
