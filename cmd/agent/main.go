// Command agent applies this host's signed bundles from git. All logic
// lives in package agent/cli; this main only wires the process.
package main

import (
	"context"
	"os"

	"github.com/rigger-bsd/rigger/agent/cli"
	"github.com/rigger-bsd/rigger/apply/sim"
)

func main() {
	// The sim driver re-executes this binary for its stand-in services
	// (PostgreSQL, nginx); in that case this never returns.
	sim.ServiceMain()
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
