package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/agent/gittest"
	"github.com/rigger-bsd/rigger/apply/sim"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/bundler/topology/topotest"
)

// Hosts are the two servers of the uirig example.
var Hosts = []string{"serverA", "serverB"}

const (
	keyPassword = "demo-only-password"
	// rotatedKey is where the bad change points serverA's replication
	// pipe: a key file that exists on the hosts but differs from the one
	// the peer uses, so the tunnel accepts connections and then breaks.
	rotatedKey = "/etc/spiped-rotated.key"
)

// Demo is one run of the whole loop on this machine: an infra repo, a CI
// signing key, a git server on loopback, and one agent per host on the sim
// driver with its own sandbox root.
type Demo struct {
	Bin   string    // folder with the agent and bundler binaries
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

	repo    string // the demo's infra git repo
	srv     *gittest.Server
	url     string
	release int
	agents  map[string]*exec.Cmd
	exited  map[string]chan error
}

// Setup makes the infra repo (addresses on loopback, serverB's wave
// shortened), the signing key, the git server, and each host's sandbox
// with the secrets the topology says the host must already have.
func (d *Demo) Setup(ctx context.Context) error {
	d.agents = map[string]*exec.Cmd{}
	d.exited = map[string]chan error{}
	d.repo = filepath.Join(d.Work, "infra")
	d.say("Infra repo: %s copied to %s with every address moved onto 127.0.0.0/8", d.Infra, d.repo)
	if _, err := topotest.Loopback(d.Infra, d.repo); err != nil {
		return fmt.Errorf("loopback copy of %s: %w", d.Infra, err)
	}
	if err := editFile(filepath.Join(d.repo, "topology.yaml"), "wave: 10m", fmt.Sprintf("wave: %s", d.WaveB)); err != nil {
		return err
	}
	if err := d.hostKeys(ctx); err != nil {
		return err
	}
	if err := d.git("init", "-q", "-b", "main"); err != nil {
		return err
	}
	if err := d.commit("Initial fleet: uirig, two servers, three jails each"); err != nil {
		return err
	}

	d.say("CI signing key: bundler keygen (ECDSA P-256, private key encrypted)")
	if err := os.MkdirAll(filepath.Join(d.Work, "keys"), 0o700); err != nil {
		return err
	}
	if _, err := d.bundler(ctx, "keygen", "--out", filepath.Join(d.Work, "keys", "ci")); err != nil {
		return err
	}

	srv, err := gittest.Serve(filepath.Join(d.Work, "git"))
	if err != nil {
		return err
	}
	d.srv = srv
	if _, err = srv.Init("fleet.git"); err != nil {
		return err
	}
	d.url = srv.URL("fleet.git")
	d.say("Git server: git http-backend (smart HTTP) on %s", srv.Addr())

	repo, err := topology.Load(d.repo)
	if err != nil {
		return err
	}
	// Every spiped end of the fleet shares one key; the rotated key is
	// only there for the bad change to point at.
	shared, rotated := randomKey(), randomKey()
	for _, h := range Hosts {
		r, err := repo.Render(h)
		if err != nil {
			return err
		}
		root := d.Root(h)
		for _, s := range r.Secrets {
			if err := writeFile(filepath.Join(root, s), shared, 0o600); err != nil {
				return err
			}
			if j, ok := jailOf(s); ok {
				if err := writeFile(filepath.Join(root, "jails", j, rotatedKey), rotated, 0o600); err != nil {
					return err
				}
			}
		}
		if err := os.MkdirAll(d.stateDir(h), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(d.config(h), []byte(d.agentConfig(h)), 0o600); err != nil {
			return err
		}
		d.say("Host %s: sandbox root %s, %d secrets provisioned (spiped keys)", h, root, len(r.Secrets))
	}
	return nil
}

// Release is what the CI merge job does: check, build every host with
// the next serial, sign, publish to the bundles branch.
func (d *Demo) Release(ctx context.Context) (int, error) {
	d.release++
	out := filepath.Join(d.Work, fmt.Sprintf("out-%d", d.release))
	args := []string{"build", "--repo", d.repo, "--all", "--key", filepath.Join(d.Work, "keys", "ci.key"), "--out", out}
	if d.release == 1 {
		args = append(args, "--serial", "1")
	} else {
		args = append(args, "--previous", filepath.Join(d.Work, fmt.Sprintf("out-%d", d.release-1)))
	}
	if _, err := d.bundler(ctx, "check", "--repo", d.repo); err != nil {
		return 0, err
	}
	if _, err := d.bundler(ctx, args...); err != nil {
		return 0, err
	}
	if _, err := d.bundler(ctx, "publish", "--out", out, "--url", d.url, "--branch", "bundles"); err != nil {
		return 0, err
	}
	d.say("CI: bundler check, build --all (serial %d), publish to %s#bundles", d.release, d.url)
	return d.release, nil
}

// StartAgents starts `agent run` for every host.
func (d *Demo) StartAgents(ctx context.Context) error {
	for _, h := range Hosts {
		logf, err := os.Create(filepath.Join(d.Work, h, "agent.log"))
		if err != nil {
			return err
		}
		cmd := exec.Command(filepath.Join(d.Bin, "agent"), "run", "--config", d.config(h))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("start agent for %s: %w", h, err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait(); logf.Close() }()
		d.agents[h], d.exited[h] = cmd, done
		d.say("Agent %s: agent run (pid %d, sim driver, polls every second)", h, cmd.Process.Pid)
	}
	return nil
}

// Status reads a host's `agent status --json`.
func (d *Demo) Status(ctx context.Context, host string) (*agent.Status, error) {
	out, err := d.run(ctx, filepath.Join(d.Bin, "agent"), nil, "status", "--json", "--config", d.config(host))
	if err != nil {
		return nil, err
	}
	var st agent.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("%s: agent status --json: %w", host, err)
	}
	return &st, nil
}

// PrintStatus prints a host's human `agent status`.
func (d *Demo) PrintStatus(ctx context.Context, host string) error {
	out, err := d.run(ctx, filepath.Join(d.Bin, "agent"), nil, "status", "--config", d.config(host))
	if err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "\n  $ agent status   # on %s\n", host)
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Fprintf(d.Out, "  %s\n", line)
	}
	fmt.Fprintln(d.Out)
	return nil
}

// WaitFor polls a host's status until cond holds or the timeout passes.
func (d *Demo) WaitFor(ctx context.Context, host, what string, timeout time.Duration, cond func(*agent.Status) bool) (*agent.Status, error) {
	deadline := time.Now().Add(timeout)
	var st *agent.Status
	var err error
	for time.Now().Before(deadline) {
		if exit, ok := d.exitedEarly(host); ok {
			return nil, fmt.Errorf("%s: agent exited while waiting for %s: %v (log: %s)", host, what, exit, d.logTail(host))
		}
		st, err = d.Status(ctx, host)
		if err == nil && cond(st) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", host, what, err)
	}
	js, _ := json.MarshalIndent(st, "  ", "  ")
	return st, fmt.Errorf("%s: no %s within %s; status:\n  %s\nlog: %s", host, what, timeout, js, d.logTail(host))
}

// Applied is true when serial is the host's healthy current generation.
func Applied(serial uint64) func(*agent.Status) bool {
	healthy := Healthy(serial)
	return func(st *agent.Status) bool { return st.State == agent.StateIdle && healthy(st) }
}

// Healthy is true when serial is the current generation and its last
// health checks all passed, whatever the state (after a rollback the
// state stays rolled-back until a newer serial is applied).
func Healthy(serial uint64) func(*agent.Status) bool {
	return func(st *agent.Status) bool {
		if st.Current == nil || st.Current.Serial != serial || st.Applying || len(st.Health) == 0 {
			return false
		}
		for _, h := range st.Health {
			if !h.OK {
				return false
			}
		}
		return true
	}
}

// RolledBack is true when serial was quarantined after a rollback.
func RolledBack(serial uint64) func(*agent.Status) bool {
	return func(st *agent.Status) bool {
		return st.RolledBack != nil && st.RolledBack.Serial == serial && !st.Applying
	}
}

// Change edits the infra repo and commits, as a merged pull request would.
func (d *Demo) Change(msg string, edit func(repo string) error) error {
	if err := edit(d.repo); err != nil {
		return err
	}
	return d.commit(msg)
}

// Revert is the emergency rollback: git revert of the last commit.
func (d *Demo) Revert() error {
	return d.git("revert", "--no-edit", "HEAD")
}

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
	return editFile(filepath.Join(repo, "topology.yaml"),
		`{name: PGC, mode: encrypt, source: "ipg_b:5435", target: "peer/ipg_b:5434", `+old,
		`{name: PGC, mode: encrypt, source: "ipg_b:5435", target: "peer/ipg_b:5434", key: `+rotatedKey+`, `+old)
}

// Close stops the agents, the sim hosts' processes and the git server.
func (d *Demo) Close() error {
	var errs []error
	for h, cmd := range d.agents {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited[h]:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-d.exited[h]
		}
	}
	for _, h := range Hosts {
		if err := sim.Shutdown(d.Root(h)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h, err))
		}
	}
	if d.srv != nil {
		errs = append(errs, d.srv.Close())
	}
	return errors.Join(errs...)
}

// Root is a host's sandbox root.
func (d *Demo) Root(host string) string { return filepath.Join(d.Work, host, "root") }

// Repo is the demo's infra repo.
func (d *Demo) Repo() string { return d.repo }

// Log returns a host agent's log so far.
func (d *Demo) Log(host string) string {
	b, _ := os.ReadFile(filepath.Join(d.Work, host, "agent.log"))
	return string(b)
}

func (d *Demo) stateDir(host string) string { return filepath.Join(d.Work, host, "state") }
func (d *Demo) config(host string) string   { return filepath.Join(d.Work, host, "agent.yaml") }

// hostKeys makes each host's status key on the host (agent keygen) and
// puts the public halves into the infra repo as the hosts' status_key.
func (d *Demo) hostKeys(ctx context.Context) error {
	for _, h := range Hosts {
		if err := os.MkdirAll(filepath.Join(d.Work, h), 0o700); err != nil {
			return err
		}
		if _, err := d.run(ctx, filepath.Join(d.Bin, "agent"), nil, "keygen", "--out", d.hostKey(h)); err != nil {
			return err
		}
		pub, err := os.ReadFile(d.hostKey(h) + ".pub")
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(d.repo, "keys", h+".pub"), pub, 0o644); err != nil {
			return err
		}
	}
	top := filepath.Join(d.repo, "topology.yaml")
	if err := editFile(top, "    peer: serverB\n", "    peer: serverB\n    status_key: keys/serverA.pub\n"); err != nil {
		return err
	}
	if err := editFile(top, "    peer: serverA\n", "    peer: serverA\n    status_key: keys/serverB.pub\n"); err != nil {
		return err
	}
	d.say("Host keys: agent keygen on each host; the public halves go into the infra repo (status_key)")
	return nil
}

// GateChange gates serverB on serverA: serverB applies a commit only after
// serverA reported it healthy for BakeB. (Not from the first release: the
// two servers' tunnels need each other to come up healthy.)
func (d *Demo) GateChange(repo string) error {
	return editFile(filepath.Join(repo, "topology.yaml"), "    status_key: keys/serverB.pub\n",
		fmt.Sprintf("    status_key: keys/serverB.pub\n    gate: [serverA]\n    bake: %s\n", d.BakeB))
}

func (d *Demo) hostKey(host string) string { return filepath.Join(d.Work, host, "host") }

// PrintFleet prints `bundler status` for the whole fleet.
func (d *Demo) PrintFleet(ctx context.Context) error {
	out, err := d.bundler(ctx, "status", "--url", d.url, "--pub", filepath.Join(d.Work, "keys", "ci.pub"))
	fmt.Fprintf(d.Out, "\n  $ bundler status --url %s --pub ci.pub\n", d.url)
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

func (d *Demo) agentConfig(host string) string {
	return fmt.Sprintf(`host: %s
source: {url: %q, branch: bundles, timeout: 10s}
trust: {keys: [%q], threshold: 1}
interval: 1s
max_backoff: 5s
root: %q
state_dir: %q
driver: sim
health: {timeout: %s}
drift: report
status: {push: true, key: %q, heartbeat: 1s}
`, host, d.url, filepath.Join(d.Work, "keys", "ci.pub"), d.Root(host), d.stateDir(host), d.HealthTimeout, d.hostKey(host)+".key")
}

func (d *Demo) exitedEarly(host string) (error, bool) {
	select {
	case err := <-d.exited[host]:
		d.exited[host] <- err // keep it for Close
		return err, true
	default:
		return nil, false
	}
}

func (d *Demo) logTail(host string) string {
	lines := strings.Split(strings.TrimSpace(d.Log(host)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\n    " + strings.Join(lines, "\n    ")
}

func (d *Demo) say(format string, args ...any) {
	fmt.Fprintf(d.Out, "==> "+format+"\n", args...)
}

func (d *Demo) bundler(ctx context.Context, args ...string) ([]byte, error) {
	return d.run(ctx, filepath.Join(d.Bin, "bundler"), []string{"RIGGER_KEY_PASSWORD=" + keyPassword}, args...)
}

func (d *Demo) run(ctx context.Context, bin string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out, nil
}

func (d *Demo) git(args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir = d.repo
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Demo Operator", "GIT_AUTHOR_EMAIL=ops@example.org",
		"GIT_COMMITTER_NAME=Demo Operator", "GIT_COMMITTER_EMAIL=ops@example.org",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (d *Demo) commit(msg string) error {
	if err := d.git("add", "-A"); err != nil {
		return err
	}
	return d.git("commit", "-q", "-m", msg)
}

// Activated lists the units the sim host activated after since.
func Activated(root string, since time.Time) []string {
	acts, _ := sim.Activations(root)
	seen := map[string]bool{}
	var units []string
	for _, a := range acts {
		if a.Time.Before(since) || seen[a.Unit] {
			continue
		}
		seen[a.Unit] = true
		units = append(units, a.Unit)
	}
	sort.Strings(units)
	return units
}

func jailOf(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/jails/")
	if !ok {
		return "", false
	}
	j, _, ok := strings.Cut(rest, "/")
	return j, ok
}

func randomKey() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, mode)
}

func editFile(path, old, new string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(old)) {
		return fmt.Errorf("%s: %q not found", path, old)
	}
	return os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644)
}
