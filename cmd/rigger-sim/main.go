// Command rigger-sim is the emulated fleet: `rigger-sim agent ...` is the
// agent with the sim driver (the freebsd driver on an emulated FreeBSD
// userland, apply/sim), which the production agent binary does not carry;
// `rigger-sim boot --root DIR` boots one sim host as /etc/rc would; `up`
// and `down` bring a whole infra repo up on loopback (see fleet.go).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rigger-bsd/rigger/apply/sim"
)

func main() {
	// The sim's stand-in services (PostgreSQL, nginx) re-execute this
	// binary; in that case this never returns.
	sim.ServiceMain()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
