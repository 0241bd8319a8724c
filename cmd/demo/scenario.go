package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/cmd/internal/simfleet"
)

// Hosts are the two servers of the uirig example.
var Hosts = []string{"serverA", "serverB"}

// rotatedKey is where the bad change points serverA's replication pipe: a
// key file that exists on the hosts but differs from the one the peer
// uses, so the tunnel accepts connections and then breaks.
const rotatedKey = "/etc/spiped-rotated.key"

// Demo is one run of the whole loop on this machine (simfleet): an infra
// repo, a CI signing key, a git server on loopback, and one agent per host
// (`rigger-sim agent`, the sim driver) with its own sandbox root.
type Demo struct {
	*simfleet.Fleet
	Bin   string    // folder with the rigger-sim binary
	Infra string    // the example infra repo to start from
	Work  string    // scratch folder for everything the demo makes
	Out   io.Writer // narration

	// WaveB replaces serverB's rollout delay (10m in the example).
	WaveB time.Duration
	// HealthTimeout bounds each apply's health checks.
	HealthTimeout time.Duration
	// BakeB is how long serverA must report a change healthy before
	// serverB, gated on it, applies the change.
	BakeB time.Duration
}

// Setup makes the fleet (serverB's wave shortened) and gives each jail
// holding a spiped key the rotated key the bad change points at.
func (d *Demo) Setup(ctx context.Context) error {
	d.Fleet = &simfleet.Fleet{
		Agent: []string{filepath.Join(d.Bin, "rigger-sim"), "agent"},
		Infra: d.Infra, Work: d.Work, Out: d.Out, Hosts: Hosts, HealthTimeout: d.HealthTimeout,
		Edit: func(repo string) error {
			if err := simfleet.EditFile(filepath.Join(repo, "topology.yaml"), "wave: 10m", fmt.Sprintf("wave: %s", d.WaveB)); err != nil {
				return err
			}
			return d.hostKeys(ctx, repo)
		},
		StatusKey: func(host string) string { return d.hostKey(host) + ".key" },
	}
	if err := d.Fleet.Setup(ctx); err != nil {
		return err
	}
	rotated := make([]byte, 32)
	_, _ = rand.Read(rotated)
	for _, h := range Hosts {
		jails, _ := filepath.Glob(filepath.Join(d.Root(h), "jails", "*", "etc", "spiped.key"))
		for _, k := range jails {
			if err := os.WriteFile(filepath.Join(filepath.Dir(k), filepath.Base(rotatedKey)), rotated, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close stops everything; a demo that failed before Setup has nothing.
func (d *Demo) Close() error {
	if d.Fleet == nil {
		return nil
	}
	return d.Fleet.Close()
}

// Applied, Healthy and RolledBack are the fleet's status conditions.
var (
	Applied    = simfleet.Applied
	Healthy    = simfleet.Healthy
	RolledBack = simfleet.RolledBack
	Activated  = simfleet.Activated
)

// GoodChange lets one more admin address through pf: a table file only.
func GoodChange(repo string) error {
	f, err := os.OpenFile(filepath.Join(repo, "files", "ips_xnic_peers"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("127.9.9.9  # new admin VPN exit\n")
	return errors.Join(err, f.Close())
}

// BadChange points the replication client pipe (PGC) at a rotated key
// that the peer's PGS does not have: the tunnel still accepts a TCP
// connect, but no PostgreSQL exchange gets through it.
func BadChange(repo string) error {
	old := `probe: pg-ssl}`
	return simfleet.EditFile(filepath.Join(repo, "topology.yaml"),
		`{name: PGC, mode: encrypt, source: "ipg_b:5435", target: "peer/ipg_b:5434", `+old,
		`{name: PGC, mode: encrypt, source: "ipg_b:5435", target: "peer/ipg_b:5434", key: `+rotatedKey+`, `+old)
}

// hostKeys makes each host's status key on the host (agent keygen) and
// puts the public halves into the infra repo as the hosts' status_key.
func (d *Demo) hostKeys(ctx context.Context, repo string) error {
	for _, h := range Hosts {
		if err := os.MkdirAll(filepath.Join(d.Work, h), 0o700); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, filepath.Join(d.Bin, "rigger-sim"), "agent", "keygen", "--out", d.hostKey(h))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: agent keygen: %w\n%s", h, err, out)
		}
		pub, err := os.ReadFile(d.hostKey(h) + ".pub")
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(repo, "keys"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(repo, "keys", h+".pub"), pub, 0o644); err != nil {
			return err
		}
	}
	top := filepath.Join(repo, "topology.yaml")
	if err := simfleet.EditFile(top, "    peer: serverB\n", "    peer: serverB\n    status_key: keys/serverA.pub\n"); err != nil {
		return err
	}
	if err := simfleet.EditFile(top, "    peer: serverA\n", "    peer: serverA\n    status_key: keys/serverB.pub\n"); err != nil {
		return err
	}
	fmt.Fprintln(d.Out, "==> Host keys: agent keygen on each host; the public halves go into the infra repo (status_key)")
	return nil
}

func (d *Demo) hostKey(host string) string { return filepath.Join(d.Work, host, "host") }

// GateChange gates serverB on serverA: serverB applies a commit only after
// serverA reported it healthy for BakeB. (Not from the first release: the
// two servers' tunnels need each other to come up healthy.)
func (d *Demo) GateChange(repo string) error {
	return simfleet.EditFile(filepath.Join(repo, "topology.yaml"), "    status_key: keys/serverB.pub\n",
		fmt.Sprintf("    status_key: keys/serverB.pub\n    gate: [serverA]\n    bake: %s\n", d.BakeB))
}

// PrintFleet prints `bundler status` for the whole fleet.
func (d *Demo) PrintFleet(ctx context.Context) error {
	out, err := d.Fleet.BundlerOutput(ctx, "status", "--url", d.URL(), "--pub", filepath.Join(d.Work, "keys", "ci.pub"))
	fmt.Fprintf(d.Out, "\n  $ bundler status --url %s --pub ci.pub\n", d.URL())
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Fprintf(d.Out, "  %s\n", line)
	}
	fmt.Fprintln(d.Out)
	return err
}

// GateFailed is true when serial was held for good because a gating host
// rolled it back; reason receives the gate's explanation.
func GateFailed(serial uint64, reason *string) func(*agent.Status) bool {
	return func(st *agent.Status) bool {
		for _, q := range st.Quarantined {
			if q.Serial == serial && q.Kind == "gate-failed" {
				*reason = q.Reason
				return true
			}
		}
		return false
	}
}
