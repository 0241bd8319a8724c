package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent/gittest"
)

// TestHostileGitServer (issue 14, item 3): a git server that sends an
// endless ref advertisement, or a pack whose small blob inflates to
// 1 GiB, makes the agent fail fast with ErrBudget and little memory.
// Each attack runs in a child process so its peak RSS is its own.
// Without the budgets (measured on a 2-core test machine) the endless
// advertisement grew the child to 807 MiB until the 30 s deadline and
// the bomb to 1.04 GiB in 39 s; with them: about 20 MiB, well under 5 s.
//
// Over ssh the same attacks, from a hostile loopback ssh server, meet the
// same budgets (bundler/gitauth/ssh.go).
func TestHostileGitServer(t *testing.T) {
	for _, tc := range []struct {
		mode, op string
		ssh      bool
	}{
		{gittest.EndlessRefs, "head", false},
		{gittest.InflateBomb, "fetch", false},
		{gittest.EndlessRefs, "head", true},
		{gittest.InflateBomb, "fetch", true},
	} {
		name := tc.mode
		if tc.ssh {
			name += "/ssh"
		}
		t.Run(name, func(t *testing.T) {
			var url string
			var env []string
			if tc.ssh {
				s, err := gittest.ServeSSH(t.TempDir(), "", tc.mode, "bundles")
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				url = s.URL("infra.git")
				env = []string{"RIGGER_HOSTILE_SSH_KEY=" + s.KeyFile, "RIGGER_HOSTILE_KNOWN_HOSTS=" + s.KnownHostsFile}
			} else {
				h, err := gittest.ServeHostile(tc.mode, "bundles")
				if err != nil {
					t.Fatal(err)
				}
				defer h.Close()
				url = h.URL("infra.git")
			}
			out, rss, took := hostileChild(t, url, tc.op, "", env...)
			if !strings.Contains(out, "over budget") {
				t.Fatalf("%s against %s: %s, want a budget error", tc.op, tc.mode, out)
			}
			first, _, _ := strings.Cut(out, "\n")
			t.Logf("%s: %s in %s, peak RSS %d MiB", tc.mode, first, took.Round(time.Millisecond), rss>>20)
			if rss > 200<<20 {
				t.Errorf("peak RSS %d MiB, want well under 200 MiB", rss>>20)
			}
		})
	}
}

// hostileChild runs TestHostileChild in a new process and returns its
// output, peak RSS in bytes and run time.
func hostileChild(t *testing.T, url, op, budget string, env ...string) (string, int64, time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostileChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RIGGER_HOSTILE_URL="+url, "RIGGER_HOSTILE_OP="+op, "RIGGER_HOSTILE_BUDGET="+budget,
		"RIGGER_HOSTILE_DIR="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return string(out), int64(ru.Maxrss) * 1024, took // Linux and FreeBSD: kilobytes
}

// TestHostileChild is the child of TestHostileGitServer; without its
// environment it does nothing.
func TestHostileChild(t *testing.T) {
	url := os.Getenv("RIGGER_HOSTILE_URL")
	if url == "" {
		return
	}
	cfg := SourceConfig{URL: url, Branch: "bundles", Timeout: 30 * time.Second,
		SSHKey: os.Getenv("RIGGER_HOSTILE_SSH_KEY"), KnownHosts: os.Getenv("RIGGER_HOSTILE_KNOWN_HOSTS")}
	if b := os.Getenv("RIGGER_HOSTILE_BUDGET"); b != "" {
		n, _ := strconv.ParseInt(b, 10, 64)
		cfg.Budget = Budget{Refs: n, Pack: n, MaxObject: n}
	}
	src, err := OpenSource(os.Getenv("RIGGER_HOSTILE_DIR"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	switch os.Getenv("RIGGER_HOSTILE_OP") {
	case "head":
		_, err = src.Head(context.Background())
	case "fetch":
		var commit string
		if commit, err = src.Fetch(context.Background()); err == nil {
			_, err = src.Read(commit, "serverA", 1<<20, 32<<20)
		}
	}
	if errors.Is(err, ErrBudget) {
		fmt.Println("refused: over budget:", err)
		return
	}
	fmt.Println("result:", err)
}
