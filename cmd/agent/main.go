// Command agent applies this host's signed bundles from git. All logic
// lives in package agent/cli; this main only wires the process. It carries
// the freebsd driver only: the sim driver, its emulated userland and its
// stand-in services are in `rigger-sim agent` (cmd/rigger-sim).
package main

import (
	"context"
	"os"

	"github.com/rigger-bsd/rigger/agent/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
