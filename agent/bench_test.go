package agent

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/bundler/bundle"
)

// BenchmarkNoChangePoll measures a poll when the branch head did not move
// (ref advertisement, drift hashing of the managed files with the real
// engine, status write with fsync) beside `git ls-remote` of the same
// branch against the same loopback server, in the same run. Targets:
// poll ≤ 2× ls-remote and ≤ 10 ms.
func BenchmarkNoChangePoll(b *testing.B) {
	w := newWorldB(b)
	ctx := context.Background()

	b.Run("agent-poll", func(b *testing.B) {
		for b.Loop() {
			if out, err := w.agent.Poll(ctx); out != OutcomeUnchanged {
				b.Fatalf("poll = %s, %v", out, err)
			}
		}
	})
	b.Run("source-head", func(b *testing.B) {
		for b.Loop() {
			if _, err := w.agent.src.Head(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The floor: one plain GET of the ref advertisement, i.e. what the
	// loopback server (git http-backend behind CGI) costs by itself.
	b.Run("http-get-info-refs", func(b *testing.B) {
		url := w.srv.URL("infra.git") + "/info/refs?service=git-upload-pack"
		for b.Loop() {
			resp, err := http.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("GET info/refs: %s", resp.Status)
			}
		}
	})
	b.Run("git-ls-remote", func(b *testing.B) {
		url := w.srv.URL("infra.git")
		for b.Loop() {
			cmd := exec.Command("git", "ls-remote", url, "refs/heads/bundles")
			cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("git ls-remote: %v: %s", err, out)
			}
		}
	})
}

// newWorldB is newWorld for benchmarks: the real engine over a sandbox
// root with the fake host driver, one bundle applied.
func newWorldB(b *testing.B) *world {
	b.Helper()
	w := newWorld(b)
	root := filepath.Join(w.dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		b.Fatal(err)
	}
	a, err := Open(w.cfg, Options{Driver: applytest.New(), Now: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	w.agent = a
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	if out, err := a.Poll(context.Background()); out != OutcomeApplied {
		b.Fatalf("first poll = %s, %v", out, err)
	}
	return w
}
