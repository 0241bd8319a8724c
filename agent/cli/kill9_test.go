package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/agent/gittest"
	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/apply/applytest/kill9"
	"github.com/rigger-bsd/rigger/apply/sim"
	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/bundler/topology/topotest"
	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/verify"
)

// envKillLine makes the agent's log writer stop the process for good
// after that many lines (kill9.LineWriter): the parent kills it there.
const envKillLine = "RIGGER_TEST_KILL_LINE"

// kill9Host is serverA of uirig on the sim driver (real jail processes and
// spiped), following a loopback git server, driven by this test binary
// acting as the agent.
type kill9Host struct {
	t                 *testing.T
	dir, root, state  string
	conf              string
	gitDir            string
	hr                *topology.HostRender
	signer            *bundle.Signer
	contents          map[uint64]map[string][]byte
	healthy           map[uint64]bool
	serial            uint64 // the last published
	applied, rolledTo uint64 // as the test expects them after a completed poll
}

func newKill9Host(t *testing.T) *kill9Host {
	dir := t.TempDir()
	h := &kill9Host{t: t, dir: dir, root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state"),
		conf: filepath.Join(dir, "agent.yaml"), contents: map[uint64]map[string][]byte{}, healthy: map[uint64]bool{}}
	// serverA without its tunnel checks: serverB is not running here.
	infra := filepath.Join(dir, "infra")
	if _, err := topotest.Loopback("../../testdata/infra/uirig", infra); err != nil {
		t.Fatal(err)
	}
	repo, err := topology.Load(infra)
	if err != nil {
		t.Fatal(err)
	}
	if h.hr, err = repo.Render("serverA"); err != nil {
		t.Fatal(err)
	}
	h.hr.Health = slices.DeleteFunc(h.hr.Health, func(c verify.Check) bool { return c.Kind == verify.CheckTunnel })
	if err := topotest.WriteSecrets(h.root, h.hr.Secrets); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Shutdown(h.root) })

	srv, err := gittest.Serve(filepath.Join(dir, "srv"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if h.gitDir, err = srv.Init("infra.git"); err != nil {
		t.Fatal(err)
	}
	if h.signer, err = bundle.GenerateSigner(bundle.ECDSA); err != nil {
		t.Fatal(err)
	}
	pub, _ := h.signer.PublicPEM()
	if err := os.WriteFile(filepath.Join(dir, "ci.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	// The agent allows what the topology says serverA's agent allows
	// (agent_roots: node_j's rc.d directory).
	extra := slices.DeleteFunc(slices.Clone(h.hr.Paths.Roots), func(r string) bool { return slices.Contains(policy.DefaultRoots(), r) })
	if err := os.WriteFile(h.conf, fmt.Appendf(nil, "host: serverA\nsource: {url: %q, timeout: 10s}\ntrust: {keys: [%q]}\ninterval: 100ms\nroot: %q\nstate_dir: %q\ndriver: sim\nhealth: {timeout: 10s}\npolicy: {roots: [%s]}\n",
		srv.URL("infra.git"), filepath.Join(dir, "ci.pub"), h.root, h.state, strings.Join(extra, ", ")), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// publish commits the next serial; it changes pf.conf and pg_j's rc.conf
// (units pf and jail:pg_j). An unhealthy one also checks a closed port,
// so it is rolled back after the health timeout.
func (h *kill9Host) publish(healthy bool) uint64 {
	t := h.t
	t.Helper()
	h.serial++
	serial := h.serial
	r := *h.hr
	r.Files = slices.Clone(h.hr.Files)
	files := map[string][]byte{}
	for i, f := range r.Files {
		if f.Path == "/etc/pf.conf" || f.Path == "/jails/pg_j/etc/rc.conf" {
			r.Files[i].Content = fmt.Appendf(slices.Clone(f.Content), "# serial %d\n", serial)
		}
		files[f.Path] = r.Files[i].Content
	}
	if !healthy {
		r.Health = append(slices.Clone(r.Health), verify.Check{Kind: verify.CheckTCP, Name: "closed-port", Addr: "127.0.0.1:1"})
	}
	h.contents[serial], h.healthy[serial] = files, healthy
	b, err := bundle.Build(&r, bundle.Meta{Serial: serial, Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sign(h.signer); err != nil {
		t.Fatal(err)
	}
	if _, err := gittest.Commit(h.gitDir, "bundles", map[string][]byte{"serverA/manifest.json": b.Envelope, "serverA/files.tar.zst": b.Archive}); err != nil {
		t.Fatal(err)
	}
	return serial
}

func (h *kill9Host) store() agent.Store { return agent.Store{Dir: h.state} }

// agentCmd is this test binary run as the agent on the real sim driver.
func (h *kill9Host) agentCmd(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"--config", h.conf}, args...)...)
	// A race report goes to a file (see checkRaces), not into the log
	// lines the kill points are counted on.
	cmd.Env = append(os.Environ(), append([]string{envMain + "=1", "RIGGER_TEST_REAL_SIM=1", "GORACE=log_path=" + filepath.Join(h.dir, "race")}, env...)...)
	return cmd
}

// checkRaces fails the test with the race detector's reports of the
// agent processes so far (built with -race), and removes them.
func (h *kill9Host) checkRaces() {
	files, _ := filepath.Glob(filepath.Join(h.dir, "race.*"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		os.Remove(f)
		h.t.Errorf("data race in an agent process (%s):\n%s", filepath.Base(f), data)
	}
}

func (h *kill9Host) agent(env []string, args ...string) (string, error) {
	defer h.checkRaces()
	out, err := h.agentCmd(env, args...).CombinedOutput()
	return string(out), err
}

// onSerial reports which of the given serials the host's files are
// exactly, or 0.
func (h *kill9Host) onSerial(serials ...uint64) uint64 {
	for _, s := range serials {
		same := true
		for p, want := range h.contents[s] {
			got, err := os.ReadFile(filepath.Join(h.root, p))
			if err != nil || !bytes.Equal(got, want) {
				same = false
				break
			}
		}
		if same {
			return s
		}
	}
	return 0
}

// records are the agent's state records that must agree after a crash.
type records struct {
	files      uint64 // the serial the host's files are, 0: mixed
	status     uint64 // status.json current serial
	last       uint64 // last_serial
	pin        *agent.Pin
	quarantine map[uint64]string // verified serial → kind
	journal    bool
}

func (h *kill9Host) records(serials ...uint64) records {
	t := h.t
	t.Helper()
	store := agent.Store{Dir: h.state}
	r := records{files: h.onSerial(serials...), quarantine: map[uint64]string{}}
	st, err := agent.ReadStatus(store, "serverA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != nil {
		r.status = st.Current.Serial
	}
	if r.last, _, err = store.LastSerial(); err != nil {
		t.Fatal(err)
	}
	if r.pin, err = store.Pin(); err != nil {
		t.Fatal(err)
	}
	q, err := store.Quarantine()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range q {
		r.quarantine[e.Serial] = e.Kind
	}
	_, err = os.Stat(filepath.Join(h.state, "journal.json"))
	r.journal = err == nil
	return r
}

// agree checks the records after a crash during the install of serial
// (from prev) and a recovery: the files are exactly one of the two, status
// says the same, no journal is left, the floor is not behind what is
// installed and not past serial, a serial above the installed one is
// below the floor only if it is quarantined or may still be retried, an
// unhealthy serial is never installed, and no rollback pin appeared.
func (h *kill9Host) agree(prev, serial uint64) records {
	t := h.t
	t.Helper()
	r := h.records(prev, serial)
	switch {
	case r.files == 0:
		t.Fatalf("host files are neither serial %d nor %d", prev, serial)
	case r.status != r.files:
		t.Fatalf("files are serial %d, status current %d", r.files, r.status)
	case r.journal:
		t.Fatal("journal left after recovery")
	case r.last < r.files || r.last > serial:
		t.Fatalf("last_serial %d, files serial %d (published %d)", r.last, r.files, serial)
	case !h.healthy[serial] && r.files == serial:
		t.Fatalf("serial %d fails its health check but is installed", serial)
	case r.pin != nil:
		t.Fatalf("rollback pin %+v without an operator rollback", r.pin)
	}
	if kind, ok := r.quarantine[serial]; ok && (h.healthy[serial] || kind != "rolled-back" || r.last < serial) {
		t.Fatalf("serial %d quarantined as %q with last_serial %d", serial, kind, r.last)
	}
	if err := h.jailsUp(); err != nil {
		t.Fatal(err)
	}
	return r
}

func (h *kill9Host) jailsUp() error {
	st, err := sim.ReadKernel(h.root)
	if err != nil {
		return err
	}
	for _, j := range []string{"pg_j", "node_j", "nginx_j"} {
		if st.Jails[j] == nil {
			return fmt.Errorf("jail %s not running", j)
		}
	}
	return nil
}

// finish lets the agent complete what the crash interrupted (the hold
// lifted, one poll) and checks the end state: a healthy serial applied, an unhealthy
// one rolled back and quarantined, the floor at serial either way.
func (h *kill9Host) finish(env []string, prev, serial uint64) {
	t := h.t
	t.Helper()
	if err := h.store().ClearHold(); err != nil {
		t.Fatal(err)
	}
	out, err := h.agent(env, "once")
	r := h.records(prev, serial)
	want := prev
	if h.healthy[serial] {
		want = serial
		if err != nil {
			t.Fatalf("once after recovery: %v\n%s", err, out)
		}
	} else if q := r.quarantine[serial]; q == "" {
		t.Fatalf("serial %d not quarantined after its retry (once: %v)\n%s", serial, err, out)
	}
	if r.files != want || r.status != want || r.last != serial || r.journal || r.pin != nil {
		t.Fatalf("after the retry of serial %d: %+v, want files and status on %d, last_serial %d\n%s", serial, r, want, serial, out)
	}
	if err := h.jailsUp(); err != nil {
		t.Fatal(err)
	}
}

// TestAgentKill9EveryLine kills a real `agent run` (the sim driver, real
// jail processes and spiped) with SIGKILL at each line it logs while it
// installs and commits a healthy serial, and at each line while it
// installs, health-checks and rolls back an unhealthy one. The agent's log
// writer stops the process right after the line (kill9.LineWriter), so
// each line is an exact kill point. After each kill, `agent once` under a
// hold only recovers, and the records must agree (see agree); then,
// without the hold, `agent once` finishes the serial (see finish). The
// two sweeps run side by side, each on its own sim host and git server.
func TestAgentKill9EveryLine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts jails with real spiped processes; skipped with -short")
	}
	applytest.NeedSpiped(t)
	for _, c := range []struct {
		name    string
		healthy bool
		env     []string
	}{
		{"install", true, nil},
		// An unhealthy serial is rolled back after the health timeout:
		// short here, the closed port never opens.
		{"rollback", false, []string{"RIGGER_HEALTH_TIMEOUT=1s"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			kill9Sweep(t, c.healthy, c.env)
		})
	}
}

// kill9Sweep brings a new sim host to serial 1, records the log lines of
// an uninterrupted poll that applies the next serial (healthy or not), and
// then kills a poll of a new serial at each of those lines in turn.
func kill9Sweep(t *testing.T, healthy bool, env []string) {
	h := newKill9Host(t)
	h.publish(true)
	if out, err := h.agent(nil, "once"); err != nil {
		t.Fatalf("first apply: %v\n%s", err, out)
	}
	// A first bundle waits for a reboot: boot the sim host, as an
	// operator would, and the next poll health-checks and commits it.
	if out, err := sim.Boot(h.root); err != nil {
		t.Fatalf("boot: %v\n%s", err, out)
	}
	if out, err := h.agent(nil, "once"); err != nil {
		t.Fatalf("first apply after the boot: %v\n%s", err, out)
	}
	good := uint64(1) // the serial the host is on

	// The lines of one uninterrupted run up to the end of its poll.
	serial := h.publish(healthy)
	run := kill9.Start(t, h.agentCmd(env, "run"))
	var lines []string
	run.WaitLine("the end of the poll", func(l string) bool {
		lines = append(lines, l)
		return strings.Contains(l, "msg=poll ")
	})
	run.Kill()
	t.Logf("%d lines to the end of the poll:\n%s", len(lines), strings.Join(lines, "\n"))
	h.finish(env, good, serial)
	if healthy {
		good = serial
	}

	for k := 1; k <= len(lines); k++ {
		want := lines[k-1]
		if i := strings.Index(want, "msg="); i >= 0 {
			want = strings.Fields(want[i:])[0]
		}
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			h.t = t
			serial := h.publish(healthy)
			run := kill9.Start(t, h.agentCmd(append(env, fmt.Sprintf("%s=%d", envKillLine, k)), "run"))
			seen := 0
			got := run.WaitLine(fmt.Sprintf("log line %d", k), func(string) bool { seen++; return seen == k })
			out := run.Kill()
			t.Logf("killed after line %d: %s", k, got)
			if !strings.Contains(got, want) {
				t.Fatalf("line %d is %q, the uninterrupted run's was %q; the killed run printed:\n%s", k, got, lines[k-1], out)
			}

			// Recover only: a hold stops the poll from applying.
			if err := h.store().SetHold(agent.Hold{Since: time.Now(), Reason: "kill9 test: recover only"}); err != nil {
				t.Fatal(err)
			}
			if o, err := h.agent(env, "once"); err != nil {
				t.Fatalf("recovering once: %v\n%s\nkilled run:\n%s", err, o, out)
			}
			h.agree(good, serial)
			h.finish(env, good, serial)
			if healthy {
				good = serial
			}
		})
	}
	if healthy {
		kill9OperatorRollback(t, h, good)
	}
}

// kill9OperatorRollback kills `agent rollback` at each line it logs, the
// host on serial good (and good-1 kept). After a recovering once, the host
// is on exactly one of the two; on the older one only with a pin that
// holds good back; last_serial stays good. Then a new serial is applied
// and rolled back from in the next round.
func kill9OperatorRollback(t *testing.T, h *kill9Host, good uint64) {
	ref := kill9.Start(t, h.agentCmd(nil, "rollback"))
	var lines []string
	ref.WaitLine("the rollback's last log line", func(l string) bool {
		if strings.Contains(l, "level=") {
			lines = append(lines, l)
		}
		return strings.Contains(l, "rolled back by operator")
	})
	ref.Kill()
	t.Logf("rollback: %d lines:\n%s", len(lines), strings.Join(lines, "\n"))
	next := func(t *testing.T) uint64 {
		h.t = t
		serial := h.publish(true)
		if err := h.store().ClearHold(); err != nil {
			t.Fatal(err)
		}
		if out, err := h.agent(nil, "once"); err != nil {
			t.Fatalf("apply serial %d: %v\n%s", serial, err, out)
		}
		if r := h.records(serial); r.files != serial || r.status != serial || r.pin != nil || r.last != serial {
			t.Fatalf("serial %d after the pinned rollback: %+v", serial, r)
		}
		return serial
	}
	for k := 1; k <= len(lines); k++ {
		t.Run(fmt.Sprintf("operator-rollback/%d", k), func(t *testing.T) {
			good = next(t)
			prev := good - 1
			run := kill9.Start(t, h.agentCmd([]string{fmt.Sprintf("%s=%d", envKillLine, k)}, "rollback"))
			seen := 0
			got := run.WaitLine(fmt.Sprintf("log line %d", k), func(l string) bool {
				if strings.Contains(l, "level=") {
					seen++
				}
				return seen == k
			})
			out := run.Kill()
			t.Logf("killed after line %d: %s", k, got)

			if err := h.store().SetHold(agent.Hold{Since: time.Now(), Reason: "kill9 test: recover only"}); err != nil {
				t.Fatal(err)
			}
			if o, err := h.agent(nil, "once"); err != nil {
				t.Fatalf("recovering once: %v\n%s\nkilled rollback:\n%s", err, o, out)
			}
			r := h.records(prev, good)
			switch {
			case r.files == 0:
				t.Fatalf("host files are neither serial %d nor %d", prev, good)
			case r.status != r.files || r.journal:
				t.Fatalf("files on serial %d, records %+v", r.files, r)
			case r.last != good:
				t.Fatalf("last_serial %d, want %d", r.last, good)
			case r.files == prev && (r.pin == nil || r.pin.Serial != prev || r.pin.Above != good):
				t.Fatalf("rolled back to serial %d, pin %+v: want one holding %d back", prev, r.pin, good)
			case r.files == good && r.pin != nil:
				t.Fatalf("on serial %d with a pin %+v", good, r.pin)
			case r.quarantine[good] != "":
				t.Fatalf("serial %d quarantined by an operator rollback", good)
			}
			if err := h.jailsUp(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
