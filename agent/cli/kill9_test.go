package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/agent/gittest"
	"github.com/rigger-bsd/rigger/apply/sim"
	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/bundler/topology/topotest"
	"github.com/rigger-bsd/rigger/verify"
)

// TestAgentKill9 kills a real `agent run` (cmd/agent, sim driver, real
// jail processes and spiped) with SIGKILL at points spread over an
// install: from the moment it logs "applying" to after it commits. After
// each kill, `agent once` under a hold only recovers: the host must be on
// exactly the old or the new serial, byte for byte, with status and
// journal agreeing and every jail running. Then `agent resume` and `agent
// once` apply the new serial.
func TestAgentKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent and starts jails with real spiped processes; skipped with -short")
	}
	if _, err := exec.LookPath("spiped"); err != nil {
		t.Fatalf("spiped not on PATH (test.sh installs it): %v", err)
	}
	dir := t.TempDir()
	// The agent with the sim driver is `rigger-sim agent`: the agent
	// binary carries the freebsd driver only.
	bin := filepath.Join(dir, "rigger-sim")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/rigger-sim").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// serverA of uirig on loopback, without its tunnel checks: serverB is
	// not running in this test.
	infra := filepath.Join(dir, "infra")
	if _, err := topotest.Loopback("../../testdata/infra/uirig", infra); err != nil {
		t.Fatal(err)
	}
	repo, err := topology.Load(infra)
	if err != nil {
		t.Fatal(err)
	}
	hr, err := repo.Render("serverA")
	if err != nil {
		t.Fatal(err)
	}
	hr.Health = slices.DeleteFunc(hr.Health, func(c verify.Check) bool { return c.Kind == verify.CheckTunnel })
	root := filepath.Join(dir, "root")
	if err := topotest.WriteSecrets(root, hr.Secrets); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Shutdown(root) })

	srv, err := gittest.Serve(filepath.Join(dir, "srv"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	gitDir, err := srv.Init("infra.git")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := bundle.GenerateSigner(bundle.ECDSA)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := signer.PublicPEM()
	if err := os.WriteFile(filepath.Join(dir, "ci.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	// Each serial changes pf.conf and pg_j's rc.conf: units pf and jail:pg_j.
	contents := map[uint64]map[string][]byte{}
	publish := func(serial uint64) {
		t.Helper()
		r := *hr
		r.Files = slices.Clone(hr.Files)
		files := map[string][]byte{}
		for i, f := range r.Files {
			if f.Path == "/etc/pf.conf" || f.Path == "/jails/pg_j/etc/rc.conf" {
				r.Files[i].Content = fmt.Appendf(slices.Clone(f.Content), "# serial %d\n", serial)
			}
			files[f.Path] = r.Files[i].Content
		}
		contents[serial] = files
		b, err := bundle.Build(&r, bundle.Meta{Serial: serial, Created: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Sign(signer); err != nil {
			t.Fatal(err)
		}
		if _, err := gittest.Commit(gitDir, "bundles", map[string][]byte{"serverA/manifest.json": b.Envelope, "serverA/files.tar.zst": b.Archive}); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(dir, "state")
	conf := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "host: serverA\nsource: {url: %q, timeout: 10s}\ntrust: {keys: [%q]}\ninterval: 100ms\nroot: %q\nstate_dir: %q\ndriver: sim\nhealth: {timeout: 10s}\n",
		srv.URL("infra.git"), filepath.Join(dir, "ci.pub"), root, state), 0o600); err != nil {
		t.Fatal(err)
	}
	agentCmd := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"agent", "--config", conf}, args...)...).CombinedOutput()
		return string(out), err
	}
	status := func() *agent.Status {
		t.Helper()
		st, err := agent.ReadStatus(agent.Store{Dir: state}, "serverA", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// onSerial reports which of the given serials the host's files are
	// exactly, or 0.
	onSerial := func(serials ...uint64) uint64 {
		for _, s := range serials {
			same := true
			for p, want := range contents[s] {
				got, err := os.ReadFile(filepath.Join(root, p))
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
	jailsUp := func() error {
		st, err := sim.ReadKernel(root)
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

	publish(1)
	if out, err := agentCmd("once"); err != nil {
		t.Fatalf("first apply: %v\n%s", err, out)
	}
	// A first bundle waits for a reboot: boot the sim host, as an
	// operator would, and the next poll health-checks and commits it.
	if out, err := sim.Boot(root); err != nil {
		t.Fatalf("boot: %v\n%s", err, out)
	}
	if out, err := agentCmd("once"); err != nil {
		t.Fatalf("first apply after the boot: %v\n%s", err, out)
	}
	if s := onSerial(1); s != 1 {
		t.Fatal("serial 1 not on disk after the first apply")
	}

	// Kill points: after the "applying" log line, plus a delay. An install
	// of two files with a pf reload and one jail restart takes some tens
	// of milliseconds; the sweep reaches past its commit.
	delays := []time.Duration{0, 1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 200, 400}
	outcomes := map[string]int{}
	serial := uint64(1)
	for _, d := range delays {
		d *= time.Millisecond
		serial++
		publish(serial)
		cmd := exec.Command(bin, "agent", "--config", conf, "run")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		applying := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(stderr)
			seen := false
			for sc.Scan() {
				if !seen && strings.Contains(sc.Text(), "msg=applying") {
					seen = true
					close(applying)
				}
			}
			io.Copy(io.Discard, stderr)
		}()
		select {
		case <-applying:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("serial %d: agent never started applying", serial)
		}
		time.Sleep(d)
		cmd.Process.Kill() // SIGKILL
		cmd.Wait()
		if _, err := os.Stat(filepath.Join(state, "journal.json")); err == nil {
			outcomes["mid-install"]++ // the journal exists: files may be mixed
		}

		// Recover only: a hold stops the poll from applying.
		if out, err := agentCmd("hold"); err != nil {
			t.Fatalf("hold: %v\n%s", err, out)
		}
		if out, err := agentCmd("once"); err != nil {
			t.Fatalf("kill after %s: recovering once: %v\n%s", d, err, out)
		}
		on := onSerial(serial-1, serial)
		if on == 0 {
			t.Fatalf("kill after %s: host files are neither serial %d nor %d", d, serial-1, serial)
		}
		st := status()
		if st.Current == nil || st.Current.Serial != on {
			t.Fatalf("kill after %s: files are serial %d, status current %+v", d, on, st.Current)
		}
		if _, err := os.Stat(filepath.Join(state, "journal.json")); !os.IsNotExist(err) {
			t.Fatalf("kill after %s: journal left after recovery (%v)", d, err)
		}
		if err := jailsUp(); err != nil {
			t.Fatalf("kill after %s (on serial %d): %v", d, on, err)
		}
		if on == serial {
			outcomes["committed"]++
		} else {
			outcomes["rolled back"]++
		}

		// And the agent goes on to the new serial.
		if out, err := agentCmd("resume"); err != nil {
			t.Fatalf("resume: %v\n%s", err, out)
		}
		if out, err := agentCmd("once"); err != nil {
			t.Fatalf("kill after %s: once after recovery: %v\n%s", d, err, out)
		}
		if onSerial(serial) != serial || status().Current.Serial != serial {
			t.Fatalf("kill after %s: serial %d not applied after recovery; status %+v", d, serial, status().Current)
		}
		if err := jailsUp(); err != nil {
			t.Fatalf("kill after %s, serial %d applied: %v", d, serial, err)
		}
	}
	t.Logf("kill points: %v", outcomes)
	if outcomes["mid-install"] == 0 || outcomes["rolled back"] == 0 {
		t.Error("no kill landed inside an install: the sweep does not cover it")
	}
}
