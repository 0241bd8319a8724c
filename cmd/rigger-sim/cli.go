package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	agentcli "github.com/rigger-bsd/rigger/agent/cli"
	"github.com/rigger-bsd/rigger/apply/sim"
)

// Exit codes of up (the contract): 0 every revision applied and healthy
// on every host, 4 a host rolled back, 1 anything else; 2 usage.
const (
	exitOK         = 0
	exitError      = 1
	exitUsage      = 2
	exitRolledBack = 4
)

const usage = `usage:
  rigger-sim up --repo DIR [--then DIR2 ...] [--json] [--keep] [--work DIR]
  rigger-sim down [--work DIR]
  rigger-sim boot --root DIR
  rigger-sim agent [agent flags and command ...]
`

// Main runs rigger-sim with args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "agent":
		return agentcli.Main(ctx, args[1:], stdout, stderr)
	case "boot":
		fs := flag.NewFlagSet("boot", flag.ContinueOnError)
		fs.SetOutput(stderr)
		root := fs.String("root", "", "sandbox root of the sim host")
		if err := fs.Parse(args[1:]); err != nil || *root == "" {
			fmt.Fprint(stderr, usage)
			return exitUsage
		}
		out, err := sim.Boot(*root)
		fmt.Fprint(stdout, out)
		if err != nil {
			fmt.Fprintf(stderr, "rigger-sim: boot: %v\n", err)
			return exitError
		}
		return exitOK
	case "up":
		return up(ctx, args[1:], stdout, stderr)
	case "down":
		return down(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "rigger-sim: unknown command %q\n%s", args[0], usage)
	return exitUsage
}
