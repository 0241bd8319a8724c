package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/apply/sim"
	"github.com/rigger-bsd/rigger/cmd/internal/simfleet"
)

// multi is a repeatable flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// keepFile records a kept fleet for `rigger-sim down`.
const keepFile = "rigger-sim.json"

type kept struct {
	Roots []string `json:"roots"`
}

// wave matches a host's rollout delay: the fleet applies every host
// within seconds (rollout waves are the agents' business, not the
// change's), each host still in a wave of its own.
var wave = regexp.MustCompile(`(?m)^(\s+wave:\s*)\S+`)

// spreadWaves puts the hosts of the repo at dir one second apart, in
// file order: hosts behind one name must not share a wave (bundler check
// refuses it).
func spreadWaves(dir string) error {
	p := filepath.Join(dir, "topology.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	n := 0
	b = wave.ReplaceAllFunc(b, func(m []byte) []byte {
		prefix := wave.FindSubmatch(m)[1]
		n++
		return fmt.Appendf(append([]byte(nil), prefix...), "%ds", n-1)
	})
	return os.WriteFile(p, b, 0o644)
}

// HostResult is one host's outcome of one revision (--json).
type HostResult struct {
	Revision string   `json:"revision"`
	Host     string   `json:"host"`
	Serial   uint64   `json:"serial"`
	Outcome  string   `json:"outcome"` // applied | rolled-back | refused | error
	Healthy  bool     `json:"healthy"`
	Booted   bool     `json:"booted"` // the revision needed a reboot, which rigger-sim did
	Units    []string `json:"units,omitempty"`
	Live     []string `json:"live,omitempty"` // the live host steps the agent ran
	Health   []string `json:"health,omitempty"`
	Reason   string   `json:"reason,omitempty"`
}

// up brings every host of --repo up as a sim host, applies each --then
// revision after it, and reports per host.
func up(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	repo := fs.String("repo", "", "infra repo to bring up")
	var then multi
	fs.Var(&then, "then", "a later revision of the repo to apply after (repeatable)")
	asJSON := fs.Bool("json", false, "print one JSON object per host and revision")
	keep := fs.Bool("keep", false, "leave the hosts and agents running (stop them with rigger-sim down)")
	work := fs.String("work", "", "scratch folder (default: a new temporary folder)")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long each revision may take on every host")
	if err := fs.Parse(args); err != nil || *repo == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if *work == "" {
		dir, err := os.MkdirTemp("", "rigger-sim-")
		if err != nil {
			fmt.Fprintf(stderr, "rigger-sim: %v\n", err)
			return exitError
		}
		*work = dir
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "rigger-sim: %v\n", err)
		return exitError
	}
	f := &simfleet.Fleet{
		Agent: []string{exe, "agent"}, Infra: *repo, Work: *work, Out: stderr, HealthTimeout: 30 * time.Second,
		Edit: spreadWaves,
	}
	code := exitError
	defer func() {
		if *keep {
			f.Stop() // agents and the git server end with this process; hosts stay
			fmt.Fprintf(stderr, "==> kept: sim hosts under %s; stop them with: rigger-sim down --work %s\n", *work, *work)
			return
		}
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "rigger-sim: stop: %v\n", err)
			code = exitError
		}
		if code == exitOK {
			os.RemoveAll(*work)
		} else {
			fmt.Fprintf(stderr, "==> kept %s for inspection (agent logs in */agent.log)\n", *work)
		}
	}()
	if err := f.Setup(ctx); err != nil {
		fmt.Fprintf(stderr, "rigger-sim: %v\n", err)
		return code
	}
	if *keep {
		var k kept
		for _, h := range f.Hosts {
			k.Roots = append(k.Roots, f.Root(h))
		}
		b, _ := json.Marshal(k)
		if err := os.WriteFile(filepath.Join(*work, keepFile), b, 0o644); err != nil {
			fmt.Fprintf(stderr, "rigger-sim: %v\n", err)
			return code
		}
	}
	revisions := append([]string{*repo}, then...)
	rolledBack, failed := false, false
	for i, rev := range revisions {
		if i > 0 {
			if err := f.Revise(rev, "revision "+rev); err != nil {
				fmt.Fprintf(stderr, "rigger-sim: %v\n", err)
				return code
			}
		}
		serial, err := f.Release(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "rigger-sim: %s: %v\n", rev, err)
			return code
		}
		if i == 0 {
			if err := f.StartAgents(ctx); err != nil {
				fmt.Fprintf(stderr, "rigger-sim: %v\n", err)
				return code
			}
		}
		for _, r := range settle(ctx, f, uint64(serial), *timeout) {
			r.Revision = rev
			switch r.Outcome {
			case "rolled-back":
				rolledBack = true
			case "applied":
				if !r.Healthy {
					failed = true
				}
			default:
				failed = true
			}
			printResult(stdout, r, *asJSON)
		}
	}
	switch {
	case rolledBack:
		code = exitRolledBack
	case failed:
		code = exitError
	default:
		code = exitOK
	}
	return code
}

// settle waits until every host has applied serial or rolled it back.
// Hosts that ask for a reboot are booted once all hosts have settled, so
// hosts whose tunnels end on each other come up together, as a fleet
// rebooted in one maintenance window does.
func settle(ctx context.Context, f *simfleet.Fleet, serial uint64, timeout time.Duration) []HostResult {
	rs := make([]HostResult, len(f.Hosts))
	sts := make([]*agent.Status, len(f.Hosts))
	for i, h := range f.Hosts {
		rs[i] = HostResult{Host: h, Serial: serial}
		st, err := f.WaitFor(ctx, h, fmt.Sprintf("serial %d applied, rolled back or waiting for a reboot", serial), timeout, simfleet.Settled(serial))
		if err != nil {
			rs[i].Outcome, rs[i].Reason = "error", err.Error()
		}
		sts[i] = st
	}
	for i := range f.Hosts {
		// Refused before anything was installed: nothing more will come
		// of this serial on that host.
		if q := simfleet.Refused(serial, sts[i]); rs[i].Outcome == "" && q != nil {
			rs[i].Outcome, rs[i].Reason = "refused", q.Reason
		}
	}
	for i, h := range f.Hosts {
		if rs[i].Outcome == "" && simfleet.RebootRequired(serial)(sts[i]) {
			rs[i].Booted = true
			if err := f.Boot(h); err != nil {
				rs[i].Outcome, rs[i].Reason = "error", err.Error()
			}
		}
	}
	for i, h := range f.Hosts {
		if rs[i].Outcome != "" {
			continue
		}
		st, err := f.WaitFor(ctx, h, fmt.Sprintf("serial %d applied or rolled back", serial), timeout,
			func(s *agent.Status) bool { return simfleet.Applied(serial)(s) || simfleet.RolledBack(serial)(s) })
		if err != nil {
			rs[i].Outcome, rs[i].Reason = "error", err.Error()
			continue
		}
		if simfleet.RolledBack(serial)(st) {
			rs[i].Outcome, rs[i].Reason = "rolled-back", st.RolledBack.Reason
			for _, c := range st.RolledBack.Health {
				rs[i].Health = append(rs[i].Health, healthWord(c))
			}
			continue
		}
		rs[i].Outcome, rs[i].Healthy = "applied", simfleet.Healthy(serial)(st)
		rs[i].Live = st.Current.Live
		for _, c := range st.Health {
			rs[i].Health = append(rs[i].Health, healthWord(c))
		}
	}
	return rs
}

func healthWord(c agent.Health) string {
	if c.OK {
		return c.Name + " ok"
	}
	return c.Name + " FAILED"
}

func printResult(w io.Writer, r HostResult, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(r)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	health := "healthy"
	if !r.Healthy {
		health = "unhealthy"
	}
	line := fmt.Sprintf("%-12s serial %-3d %-12s", r.Host, r.Serial, r.Outcome)
	switch r.Outcome {
	case "applied":
		line += " " + health
	case "rolled-back", "refused", "error":
		line += " " + r.Reason
	}
	switch {
	case r.Outcome == "refused": // nothing was installed
	case r.Booted:
		line += " (reboot-required: booted by rigger-sim)"
	case len(r.Live) > 0:
		line += " (live: " + strings.Join(r.Live, "; ") + ")"
	default:
		line += " (live)"
	}
	if len(r.Health) > 0 && r.Outcome != "error" {
		line += " [" + strings.Join(r.Health, ", ") + "]"
	}
	fmt.Fprintln(w, line)
}

// down stops a fleet that `up --keep` left running.
func down(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	fs.SetOutput(stderr)
	work := fs.String("work", "", "the scratch folder `up --keep` printed")
	if err := fs.Parse(args); err != nil || *work == "" {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	b, err := os.ReadFile(filepath.Join(*work, keepFile))
	if err != nil {
		fmt.Fprintf(stderr, "rigger-sim: down: %v\n", err)
		return exitError
	}
	var k kept
	if err := json.Unmarshal(b, &k); err != nil {
		fmt.Fprintf(stderr, "rigger-sim: down: %v\n", err)
		return exitError
	}
	var errs []error
	for _, r := range k.Roots {
		errs = append(errs, sim.Shutdown(r))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(stderr, "rigger-sim: down: %v\n", err)
		return exitError
	}
	os.RemoveAll(*work)
	fmt.Fprintf(stdout, "stopped %d sim hosts\n", len(k.Roots))
	return exitOK
}
