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
func TestHostileGitServer(t *testing.T) {
	for _, tc := range []struct{ mode, op string }{
		{gittest.EndlessRefs, "head"},
		{gittest.InflateBomb, "fetch"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			h, err := gittest.ServeHostile(tc.mode, "bundles")
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			out, rss, took := hostileChild(t, h.URL("infra.git"), tc.op, "")
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
func hostileChild(t *testing.T, url, op, budget string) (string, int64, time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostileChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RIGGER_HOSTILE_URL="+url, "RIGGER_HOSTILE_OP="+op, "RIGGER_HOSTILE_BUDGET="+budget,
		"RIGGER_HOSTILE_DIR="+t.TempDir())
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
	cfg := SourceConfig{URL: url, Branch: "bundles", Timeout: 30 * time.Second}
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
