// Package simfleet runs an infra repo on sim hosts on this machine: the
// repo copied with every address moved onto 127.0.0.0/8, a throwaway CI
// signing key, a git server on loopback, each host's secrets provisioned
// and one `rigger-sim agent run` per host on the sim driver. cmd/demo
// tells its story with it and cmd/rigger-sim's up is built on it.
package simfleet

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/agent/gittest"
	"github.com/rigger-bsd/rigger/apply/sim"
	bundlercli "github.com/rigger-bsd/rigger/bundler/cli"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/bundler/topology/topotest"
	"github.com/rigger-bsd/rigger/policy"
)

// keyPassword encrypts the throwaway CI key.
const keyPassword = "rigger-sim-throwaway"

// Fleet is one infra repo running on sim hosts.
type Fleet struct {
	Agent []string  // the agent command: rigger-sim's path and "agent"
	Infra string    // the infra repo to start from
	Work  string    // scratch folder for everything the fleet makes
	Out   io.Writer // narration
	// Edit changes the loopback copy of the repo before its first commit
	// (the demo shortens a rollout wave).
	Edit func(repo string) error
	// ExtraSecret, if set, returns the content of a secret for host
	// (nil: the default provisioning).
	ExtraSecret   func(host, path string) []byte
	HealthTimeout time.Duration
	// StatusKey, if set, names a host's status key file: its agent pushes
	// a signed report after every outcome (status.push).
	StatusKey func(host string) string

	Hosts []string

	repo    string
	srv     *gittest.Server
	url     string
	release int
	block   byte // second octet of the loopback block
	agents  map[string]*exec.Cmd
	exited  map[string]chan error
	roots   map[string][]string // host -> the roots its agent adds (the topology's agent_roots)
	wgKeys  map[string][]byte   // "host/iface" -> private key
	wgPubs  map[string]string   // the example's public key -> the provisioned one
	shared  []byte              // spiped keys
	psk     []byte              // WireGuard preshared keys
}

// Setup makes the infra repo, the signing key, the git server, and each
// host's sandbox with the secrets the topology says it must already have.
func (f *Fleet) Setup(ctx context.Context) error {
	f.agents = map[string]*exec.Cmd{}
	f.exited = map[string]chan error{}
	f.repo = filepath.Join(f.Work, "infra")
	f.say("Infra repo: %s copied to %s with every address moved onto 127.0.0.0/8", f.Infra, f.repo)
	m, err := topotest.Loopback(f.Infra, f.repo)
	if err != nil {
		return fmt.Errorf("loopback copy of %s: %w", f.Infra, err)
	}
	for _, a := range m {
		if ip, err := netip.ParseAddr(a); err == nil && ip.Is4() {
			f.block = ip.As4()[1]
			break
		}
	}
	if f.Edit != nil {
		if err := f.Edit(f.repo); err != nil {
			return err
		}
	}
	if err := f.wireguardKeys(); err != nil {
		return err
	}
	if err := f.git("init", "-q", "-b", "main"); err != nil {
		return err
	}
	if err := f.Commit("Initial fleet"); err != nil {
		return err
	}
	f.say("CI signing key: bundler keygen (throwaway, ECDSA P-256)")
	if err := os.MkdirAll(filepath.Join(f.Work, "keys"), 0o700); err != nil {
		return err
	}
	if err := f.bundler(ctx, "keygen", "--out", filepath.Join(f.Work, "keys", "ci")); err != nil {
		return err
	}
	srv, err := gittest.Serve(filepath.Join(f.Work, "git"))
	if err != nil {
		return err
	}
	f.srv = srv
	if _, err = srv.Init("fleet.git"); err != nil {
		return err
	}
	f.url = srv.URL("fleet.git")
	f.say("Git server: git http-backend (smart HTTP) on %s", srv.Addr())
	repo, err := topology.Load(f.repo)
	if err != nil {
		return err
	}
	if len(f.Hosts) == 0 {
		f.Hosts = repo.Hosts()
	}
	f.shared, f.psk = randomKey(), []byte(base64.StdEncoding.EncodeToString(randomKey())+"\n")
	for _, h := range f.Hosts {
		r, err := repo.Render(h)
		if err != nil {
			return err
		}
		// The agent adds its policy.roots to the default roots.
		def := policy.DefaultRoots()
		for _, root := range r.Paths.Roots {
			if !slices.Contains(def, root) {
				if f.roots == nil {
					f.roots = map[string][]string{}
				}
				f.roots[h] = append(f.roots[h], root)
			}
		}
		root := f.Root(h)
		if _, err := f.provision(h, r.Secrets); err != nil {
			return err
		}
		if err := sim.JoinFleet(root, filepath.Join(f.Work, "wireguard")); err != nil {
			return err
		}
		if err := os.MkdirAll(f.stateDir(h), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(f.config(h), []byte(f.agentConfig(h)), 0o600); err != nil {
			return err
		}
		f.say("Host %s: sandbox root %s, %d secrets provisioned", h, root, len(r.Secrets))
	}
	return nil
}

// provision writes the secrets of host that its sandbox lacks (an
// operator provisions keys out of band, before the bundle that needs them
// is merged) and returns their paths. Present ones are left alone.
func (f *Fleet) provision(host string, secrets []string) ([]string, error) {
	var added []string
	for _, s := range secrets {
		p := filepath.Join(f.Root(host), s)
		if _, err := os.Lstat(p); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err := writeFile(p, f.secret(host, s), 0o600); err != nil {
			return nil, err
		}
		added = append(added, s)
	}
	return added, nil
}

// secret is what a host's secret file holds: its own WireGuard private
// key, the fleet's preshared key, or the fleet's shared spiped key.
func (f *Fleet) secret(host, p string) []byte {
	if f.ExtraSecret != nil {
		if b := f.ExtraSecret(host, p); b != nil {
			return b
		}
	}
	if strings.HasPrefix(p, "/usr/local/etc/wireguard/") {
		if k, ok := f.wgKeys[host+"/"+strings.TrimSuffix(path.Base(p), ".key")]; ok && strings.HasSuffix(p, ".key") {
			return []byte(base64.StdEncoding.EncodeToString(k) + "\n")
		}
		return f.psk
	}
	return f.shared
}

// WireGuardKey returns a host interface's provisioned private key.
func (f *Fleet) WireGuardKey(host, iface string) []byte { return f.wgKeys[host+"/"+iface] }

// wireguardKeys gives every WireGuard interface of the repo a fresh key
// pair and writes its public key into the topology in place of the
// example's, so the emulated links can come up (apply/sim's model).
func (f *Fleet) wireguardKeys() error {
	f.wgKeys, f.wgPubs = map[string][]byte{}, map[string]string{}
	file := filepath.Join(f.repo, "topology.yaml")
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var doc struct {
		Hosts map[string]struct {
			WireGuard []struct {
				Name      string `yaml:"name"`
				PublicKey string `yaml:"public_key"`
			} `yaml:"wireguard"`
		} `yaml:"hosts"`
	}
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for h, spec := range doc.Hosts {
		for _, w := range spec.WireGuard {
			priv, err := ecdh.X25519().GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			f.wgKeys[h+"/"+w.Name] = priv.Bytes()
			if w.PublicKey != "" {
				pub := base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes())
				f.wgPubs[w.PublicKey] = pub
				src = bytes.ReplaceAll(src, []byte(w.PublicKey), []byte(pub))
			}
		}
	}
	return os.WriteFile(file, src, 0o644)
}

// Revise replaces the repo's content with a later revision at dir (a pull
// request), moved onto the same loopback addresses and keys as the first,
// and commits it.
func (f *Fleet) Revise(dir, msg string) error {
	tmp, err := os.MkdirTemp(f.Work, "revision-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if _, err := topotest.LoopbackAt(dir, tmp, f.block); err != nil {
		return fmt.Errorf("loopback copy of %s: %w", dir, err)
	}
	if f.Edit != nil {
		if err := f.Edit(tmp); err != nil {
			return err
		}
	}
	file := filepath.Join(tmp, "topology.yaml")
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	for old, pub := range f.wgPubs {
		src = bytes.ReplaceAll(src, []byte(old), []byte(pub))
	}
	if err := os.WriteFile(file, src, 0o644); err != nil {
		return err
	}
	ents, err := os.ReadDir(f.repo)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() != ".git" {
			if err := os.RemoveAll(filepath.Join(f.repo, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.CopyFS(f.repo, os.DirFS(tmp)); err != nil {
		return err
	}
	if err := f.Commit(msg); err != nil {
		return err
	}
	// Secrets the revision adds (a new tunnel's key) are provisioned now,
	// as an operator does before merging; without them every host would
	// refuse the bundle at its pre-check (secret missing).
	repo, err := topology.Load(f.repo)
	if err != nil {
		return err
	}
	for _, h := range f.Hosts {
		if !slices.Contains(repo.Hosts(), h) {
			continue // gone in this revision
		}
		r, err := repo.Render(h)
		if err != nil {
			return err
		}
		added, err := f.provision(h, r.Secrets)
		if err != nil {
			return err
		}
		if len(added) > 0 {
			f.say("Host %s: %d new secrets provisioned by rigger-sim for this revision: %s", h, len(added), strings.Join(added, ", "))
		}
	}
	return nil
}

// Release is what the CI merge job does: check, build every host with the
// next serial, sign, publish to the bundles branch.
func (f *Fleet) Release(ctx context.Context) (int, error) {
	f.release++
	out := filepath.Join(f.Work, fmt.Sprintf("out-%d", f.release))
	args := []string{"build", "--repo", f.repo, "--all", "--key", filepath.Join(f.Work, "keys", "ci.key"), "--out", out}
	if f.release == 1 {
		args = append(args, "--serial", "1")
	} else {
		args = append(args, "--previous", filepath.Join(f.Work, fmt.Sprintf("out-%d", f.release-1)))
	}
	if err := f.bundler(ctx, "check", "--repo", f.repo); err != nil {
		return 0, err
	}
	if err := f.bundler(ctx, args...); err != nil {
		return 0, err
	}
	if err := f.bundler(ctx, "publish", "--out", out, "--url", f.url, "--branch", "bundles"); err != nil {
		return 0, err
	}
	f.say("CI: bundler check, build --all (serial %d), publish to %s#bundles", f.release, f.url)
	return f.release, nil
}

// StartAgents starts `rigger-sim agent run` for every host.
func (f *Fleet) StartAgents(ctx context.Context) error {
	for _, h := range f.Hosts {
		logf, err := os.Create(filepath.Join(f.Work, h, "agent.log"))
		if err != nil {
			return err
		}
		argv := append(append([]string(nil), f.Agent...), "run", "--config", f.config(h))
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("start agent for %s: %w", h, err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait(); logf.Close() }()
		f.agents[h], f.exited[h] = cmd, done
		f.say("Agent %s: rigger-sim agent run (pid %d, sim driver, polls every second)", h, cmd.Process.Pid)
	}
	return nil
}

// BootWhenRequired waits until every host reports serial installed and
// waiting for a reboot, then boots each sim host (what /etc/rc does),
// after which its agent health-checks and commits. All wait first, so
// hosts whose tunnels end on each other come up together.
func (f *Fleet) BootWhenRequired(ctx context.Context, serial uint64, timeout time.Duration) error {
	for _, h := range f.Hosts {
		if _, err := f.WaitFor(ctx, h, fmt.Sprintf("serial %d installed, reboot required", serial), timeout, RebootRequired(serial)); err != nil {
			return err
		}
	}
	for _, h := range f.Hosts {
		if err := f.Boot(h); err != nil {
			return err
		}
	}
	return nil
}

// Boot boots one sim host and says so. It runs `rigger-sim boot`: the
// processes a boot starts (stand-in services) re-execute the binary that
// starts them, which must be rigger-sim.
func (f *Fleet) Boot(host string) error {
	f.say("%s: reboot required; booting the sim host (emulated /etc/rc: netif, pf, routing, services, jails)", host)
	out, err := exec.Command(f.Agent[0], "boot", "--root", f.Root(host)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: rigger-sim boot: %w\n%s", host, err, out)
	}
	return nil
}

// Status reads a host's `agent status --json`.
func (f *Fleet) Status(ctx context.Context, host string) (*agent.Status, error) {
	out, err := f.agent(ctx, "status", "--json", "--config", f.config(host))
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
func (f *Fleet) PrintStatus(ctx context.Context, host string) error {
	out, err := f.agent(ctx, "status", "--config", f.config(host))
	if err != nil {
		return err
	}
	fmt.Fprintf(f.Out, "\n  $ agent status   # on %s\n", host)
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Fprintf(f.Out, "  %s\n", line)
	}
	fmt.Fprintln(f.Out)
	return nil
}

// WaitFor polls a host's status until cond holds or the timeout passes.
func (f *Fleet) WaitFor(ctx context.Context, host, what string, timeout time.Duration, cond func(*agent.Status) bool) (*agent.Status, error) {
	deadline := time.Now().Add(timeout)
	var st *agent.Status
	var err error
	for time.Now().Before(deadline) {
		if exit, ok := f.exitedEarly(host); ok {
			return nil, fmt.Errorf("%s: agent exited while waiting for %s: %v (log: %s)", host, what, exit, f.logTail(host))
		}
		st, err = f.Status(ctx, host)
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
	return st, fmt.Errorf("%s: no %s within %s; status:\n  %s\nlog: %s", host, what, timeout, js, f.logTail(host))
}

// Applied is true when serial is the host's healthy current generation.
func Applied(serial uint64) func(*agent.Status) bool {
	healthy := Healthy(serial)
	return func(st *agent.Status) bool { return st.State == agent.StateIdle && healthy(st) }
}

// Healthy is true when serial is the current generation and its last
// health checks all passed, whatever the state.
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

// RebootRequired is true when serial is installed and waits for a boot.
func RebootRequired(serial uint64) func(*agent.Status) bool {
	return func(st *agent.Status) bool {
		return st.RebootPending != nil && st.RebootPending.Serial == serial && !st.Applying
	}
}

// Refused returns the quarantine entry of serial when the agent refused
// it before installing anything: verification rejected it ("rejected"),
// or the engine's pre-check did ("precheck": a target that is not a
// regular file, an owner the host lacks, a missing secret).
func Refused(serial uint64, st *agent.Status) *agent.Quarantined {
	if st.Applying {
		return nil
	}
	for i, q := range st.Quarantined {
		if q.Serial == serial && (q.Kind == "precheck" || q.Kind == "rejected") {
			return &st.Quarantined[i]
		}
	}
	return nil
}

// Settled is true once serial is applied and healthy, rolled back,
// waiting for a reboot, or refused (nothing more will happen to it).
func Settled(serial uint64) func(*agent.Status) bool {
	a, r, b := Applied(serial), RolledBack(serial), RebootRequired(serial)
	return func(st *agent.Status) bool { return a(st) || r(st) || b(st) || Refused(serial, st) != nil }
}

// Change edits the infra repo and commits, as a merged pull request would.
func (f *Fleet) Change(msg string, edit func(repo string) error) error {
	if err := edit(f.repo); err != nil {
		return err
	}
	return f.Commit(msg)
}

// Revert is the emergency rollback: git revert of the last commit.
func (f *Fleet) Revert() error { return f.git("revert", "--no-edit", "HEAD") }

// Stop stops the agents and leaves the hosts and the git server running.
func (f *Fleet) Stop() {
	for h, cmd := range f.agents {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-f.exited[h]:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-f.exited[h]
		}
	}
}

// Close stops the agents, the sim hosts' processes and the git server.
func (f *Fleet) Close() error {
	f.Stop()
	var errs []error
	for _, h := range f.Hosts {
		if err := sim.Shutdown(f.Root(h)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h, err))
		}
	}
	if f.srv != nil {
		errs = append(errs, f.srv.Close())
	}
	return errors.Join(errs...)
}

// Root is a host's sandbox root.
func (f *Fleet) Root(host string) string { return filepath.Join(f.Work, host, "root") }

// Repo is the fleet's infra repo.
func (f *Fleet) Repo() string { return f.repo }

// Log returns a host agent's log so far.
func (f *Fleet) Log(host string) string {
	b, _ := os.ReadFile(filepath.Join(f.Work, host, "agent.log"))
	return string(b)
}

func (f *Fleet) stateDir(host string) string { return filepath.Join(f.Work, host, "state") }
func (f *Fleet) config(host string) string   { return filepath.Join(f.Work, host, "agent.yaml") }

func (f *Fleet) agentConfig(host string) string {
	ht := f.HealthTimeout
	if ht == 0 {
		ht = 20 * time.Second
	}
	cfg := fmt.Sprintf(`host: %s
source: {url: %q, branch: bundles, timeout: 10s}
trust: {keys: [%q], threshold: 1}
interval: 1s
max_backoff: 5s
root: %q
state_dir: %q
driver: sim
health: {timeout: %s}
drift: report
`, host, f.url, filepath.Join(f.Work, "keys", "ci.pub"), f.Root(host), f.stateDir(host), ht)
	if roots := f.roots[host]; roots != nil {
		// The topology says this host's agent allows more (agent_roots).
		q := make([]string, len(roots))
		for i, r := range roots {
			q[i] = strconv.Quote(r)
		}
		cfg += "policy: {roots: [" + strings.Join(q, ", ") + "]}\n"
	}
	if f.StatusKey != nil {
		cfg += fmt.Sprintf("status: {push: true, key: %q, heartbeat: 1s}\n", f.StatusKey(host))
	}
	return cfg
}

func (f *Fleet) exitedEarly(host string) (error, bool) {
	select {
	case err := <-f.exited[host]:
		f.exited[host] <- err // keep it for Close
		return err, true
	default:
		return nil, false
	}
}

func (f *Fleet) logTail(host string) string {
	lines := strings.Split(strings.TrimSpace(f.Log(host)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\n    " + strings.Join(lines, "\n    ")
}

func (f *Fleet) say(format string, args ...any) {
	if f.Out != nil {
		fmt.Fprintf(f.Out, "==> "+format+"\n", args...)
	}
}

// bundler runs the bundler CLI in-process, as CI would run the binary.
func (f *Fleet) bundler(ctx context.Context, args ...string) error {
	_, err := f.BundlerOutput(ctx, args...)
	return err
}

// BundlerOutput runs the bundler CLI in-process and returns what it
// printed; a non-zero exit is an error that carries the output too.
func (f *Fleet) BundlerOutput(ctx context.Context, args ...string) ([]byte, error) {
	os.Setenv("RIGGER_KEY_PASSWORD", keyPassword)
	var out bytes.Buffer
	if code := bundlercli.Main(ctx, args, &out, &out); code != 0 {
		return out.Bytes(), fmt.Errorf("bundler %s: exit %d\n%s", strings.Join(args, " "), code, out.Bytes())
	}
	return out.Bytes(), nil
}

// URL is the fleet's git server URL (bundles and status refs).
func (f *Fleet) URL() string { return f.url }

func (f *Fleet) agent(ctx context.Context, args ...string) ([]byte, error) {
	argv := append(append([]string(nil), f.Agent[1:]...), args...)
	cmd := exec.CommandContext(ctx, f.Agent[0], argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("agent %s: %w\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out, nil
}

func (f *Fleet) git(args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir = f.repo
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Rigger Sim", "GIT_AUTHOR_EMAIL=ops@example.org",
		"GIT_COMMITTER_NAME=Rigger Sim", "GIT_COMMITTER_EMAIL=ops@example.org",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Commit commits everything in the repo.
func (f *Fleet) Commit(msg string) error {
	if err := f.git("add", "-A"); err != nil {
		return err
	}
	return f.git("commit", "-q", "--allow-empty", "-m", msg)
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

func randomKey() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

func writeFile(p string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, mode)
}

// EditFile replaces the first old in the file at p by new.
func EditFile(p, old, new string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(old)) {
		return fmt.Errorf("%s: %q not found", p, old)
	}
	return os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644)
}
