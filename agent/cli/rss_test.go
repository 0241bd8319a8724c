package cli

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/agent/gittest"
	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/bundler/topology"
)

// idleAgent builds cmd/agent and starts `agent run` polling a loopback git
// server every 100 ms with nothing new to apply. It returns the process
// and its stderr.
func idleAgent(tb testing.TB) (*exec.Cmd, *strings.Builder) {
	tb.Helper()
	dir := tb.TempDir()
	bin := filepath.Join(dir, "agent")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/agent")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}

	srv, err := gittest.Serve(filepath.Join(dir, "srv"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	repo, err := srv.Init("infra.git")
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := bundle.GenerateSigner(bundle.ECDSA)
	if err != nil {
		tb.Fatal(err)
	}
	pub, _ := signer.PublicPEM()
	if err := os.WriteFile(filepath.Join(dir, "ci.pub"), pub, 0o644); err != nil {
		tb.Fatal(err)
	}
	// serverB's bundle sits in serverA's folder: the first poll rejects
	// and quarantines it, and every later poll is "unchanged".
	r := &topology.HostRender{Host: "serverB", Files: []topology.RenderedFile{{Path: "/etc/rc.conf", Content: []byte("x=1\n")}}}
	b, err := bundle.Build(r, bundle.Meta{Serial: 1, Created: time.Now()})
	if err != nil {
		tb.Fatal(err)
	}
	if err := b.Sign(signer); err != nil {
		tb.Fatal(err)
	}
	if _, err := gittest.Commit(repo, "bundles", map[string][]byte{"serverA/manifest.json": b.Envelope, "serverA/files.tar.zst": b.Archive}); err != nil {
		tb.Fatal(err)
	}
	conf := fmt.Sprintf("host: serverA\nsource: {url: %q, timeout: 5s}\ntrust: {keys: [%q]}\ninterval: 100ms\nroot: %q\nstate_dir: %q\ndriver: freebsd\n",
		srv.URL("infra.git"), filepath.Join(dir, "ci.pub"), dir, filepath.Join(dir, "state"))
	if err := os.WriteFile(filepath.Join(dir, "agent.yaml"), []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}

	cmd := exec.Command(bin, "--config", filepath.Join(dir, "agent.yaml"), "run")
	stderr := new(strings.Builder)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Idle means: past the first poll (the rejection) and about 25 more
	// ref listings since, each "unchanged".
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := agent.ReadStatus(agent.Store{Dir: filepath.Join(dir, "state")}, "serverA", time.Now())
		if err == nil && st.LastPoll != nil && st.LastPoll.Outcome == agent.OutcomeUnchanged && st.Running && srv.Counts().InfoRefs >= 25 {
			return cmd, stderr
		}
		if time.Now().After(deadline) {
			tb.Fatalf("agent not idling after 60 s: %+v, %v, %d ref listings\n%s", st, err, srv.Counts().InfoRefs, stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // polling interval of this wait, not a synchronisation
	}
}

// BenchmarkIdleRSS reports the resident memory of an idle `agent run`
// (target ≤ 30 MB) as rss-MB; bench.sh prints it.
func BenchmarkIdleRSS(b *testing.B) {
	cmd, _ := idleAgent(b)
	var kb int
	for b.Loop() {
		kb = vmRSS(b, cmd.Process.Pid)
	}
	b.ReportMetric(float64(kb)/1024, "rss-MB")
}

// TestIdleAgentStops: an idle `agent run` stops cleanly, exit 0, within
// 5 s of SIGTERM.
func TestIdleAgentStops(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent binary; skipped with -short")
	}
	cmd, stderr := idleAgent(t)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent run after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("agent run did not stop within 5 s of SIGTERM")
	}
	if !strings.Contains(stderr.String(), "agent stopped") {
		t.Fatalf("no clean stop in the log:\n%s", stderr.String())
	}
}

func vmRSS(t testing.TB, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}
