// Command demo runs Rigger's whole loop on one machine and narrates it:
// the bundler as CI, a git server on loopback, two agents on the sim driver
// with real spiped tunnels between their database jails, then a good change,
// a bad one that rolls back by itself, and a git revert. demo.sh builds the
// binaries and runs it; cmd/demo's test runs the same scenario with
// assertions.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rigger-bsd/rigger/agent"
)

func main() {
	bin := flag.String("bin", "bin", "folder with the rigger-sim binary")
	infra := flag.String("infra", "testdata/infra/uirig", "example infra repo to start from")
	work := flag.String("work", "", "scratch folder (default: a new temporary folder, removed at the end)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *infra, *work); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, infra, work string) (err error) {
	keep := work != ""
	if work == "" {
		if work, err = os.MkdirTemp("", "rigger-demo-"); err != nil {
			return err
		}
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	d := &Demo{Bin: bin, Infra: infra, Work: work, Out: os.Stdout, WaveB: 3 * time.Second, BakeB: 2 * time.Second, HealthTimeout: 20 * time.Second}
	start := time.Now()
	defer func() {
		if cerr := d.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if !keep && err == nil {
			os.RemoveAll(work)
		} else {
			fmt.Printf("==> Kept %s (agent logs in */agent.log)\n", work)
		}
		if err == nil {
			fmt.Printf("==> Done in %s; every process the demo started is stopped.\n", time.Since(start).Round(100*time.Millisecond))
		}
	}()

	step := func(title string) { fmt.Printf("\n### %s\n", title) }

	step("1. Set up: infra repo, CI key, git server, two hosts")
	if err := d.Setup(ctx); err != nil {
		return err
	}

	step("2. First release: both hosts apply it from nothing")
	serial, err := d.Release(ctx)
	if err != nil {
		return err
	}
	if err := d.StartAgents(ctx); err != nil {
		return err
	}
	fmt.Println("==> A host's first bundle changes its /etc/rc.conf: installed, nothing activated, reboot required.")
	if err := d.BootWhenRequired(ctx, uint64(serial), 60*time.Second); err != nil {
		return err
	}
	if err := waitBoth(ctx, d, "serial 1 applied and healthy", agentApplied(serial)); err != nil {
		return err
	}
	for _, h := range Hosts {
		if err := d.PrintStatus(ctx, h); err != nil {
			return err
		}
	}

	step("3. A good change: one more admin address in pf's <xpeers> table, and serverB gated on serverA")
	since := time.Now()
	if err := d.Change("rollout: serverB waits until serverA proved a change healthy", d.GateChange); err != nil {
		return err
	}
	if err := d.Change("pf: let the new admin VPN exit in", GoodChange); err != nil {
		return err
	}
	if serial, err = d.Release(ctx); err != nil {
		return err
	}
	fmt.Printf("==> serverA is in the first wave; serverB follows at least %s later, and only once serverA has reported the change healthy for %s (DNS round-robin: never both broken at once)\n", d.WaveB, d.BakeB)
	if err := waitBoth(ctx, d, fmt.Sprintf("serial %d applied", serial), agentApplied(serial)); err != nil {
		return err
	}
	for _, h := range Hosts {
		fmt.Printf("==> %s activated only: %s\n", h, strings.Join(Activated(d.Root(h), since), ", "))
	}

	step("4. A bad change: the replication pipe PGC gets a key its peer does not have")
	if err := d.Change("spiped: rotate the replication key (on one side only: a mistake)", BadChange); err != nil {
		return err
	}
	if serial, err = d.Release(ctx); err != nil {
		return err
	}
	fmt.Println("==> The tunnel still accepts TCP connects; only an end-to-end PostgreSQL exchange shows it is broken.")
	st, err := d.WaitFor(ctx, "serverA", fmt.Sprintf("rollback of serial %d", serial), 60*time.Second, RolledBack(uint64(serial)))
	if err != nil {
		return err
	}
	fmt.Printf("==> serverA rolled back serial %d by itself and is back on serial %d: %s\n", serial, st.Current.Serial, st.RolledBack.Reason)
	var reason string
	if st, err = d.WaitFor(ctx, "serverB", "its gate to fail", 60*time.Second, GateFailed(uint64(serial), &reason)); err != nil {
		return err
	}
	fmt.Printf("==> serverB never applied serial %d and stays on serial %d: %s\n", serial, st.Current.Serial, reason)
	for _, h := range Hosts {
		if err := d.PrintStatus(ctx, h); err != nil {
			return err
		}
	}

	step("5. Emergency rollback the GitOps way: git revert + merge")
	if err := d.Revert(); err != nil {
		return err
	}
	if serial, err = d.Release(ctx); err != nil {
		return err
	}
	if err := waitBoth(ctx, d, fmt.Sprintf("serial %d applied", serial), agentApplied(serial)); err != nil {
		return err
	}
	fmt.Printf("==> serverB applied serial %d only after serverA had reported it healthy for %s\n", serial, d.BakeB)
	step("6. The fleet as the git server sees it")
	return d.PrintFleet(ctx)
}

func agentApplied(serial int) func(*agent.Status) bool { return Applied(uint64(serial)) }

func waitBoth(ctx context.Context, d *Demo, what string, cond func(*agent.Status) bool) error {
	for _, h := range Hosts {
		st, err := d.WaitFor(ctx, h, what, 60*time.Second, cond)
		if err != nil {
			return err
		}
		var checks []string
		for _, c := range st.Health {
			checks = append(checks, fmt.Sprintf("%s %dms", c.Name, c.LatencyMS))
		}
		fmt.Printf("==> %s: serial %d applied, healthy (%s)\n", h, st.Current.Serial, strings.Join(checks, ", "))
	}
	return nil
}
