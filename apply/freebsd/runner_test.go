package freebsd

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExecRunnerBackgroundChildHoldsStdout: like `wg-quick up` (a
// backgrounded `route -n monitor` keeps the caller's stderr) or spiped
// started by its rc.d script (daemonize keeps stdio), the command exits 0
// while a child it left behind still holds stdout and stderr. That is a
// success, reported as soon as the command exits; with pipes and WaitDelay
// it was `exec: WaitDelay expired before I/O complete` after 5 s.
func TestExecRunnerBackgroundChildHoldsStdout(t *testing.T) {
	start := time.Now()
	r, err := ExecRunner{}.Run(context.Background(), "sh", "-c", `sleep 30 & echo "$!"; echo started >&2`)
	elapsed := time.Since(start)
	if r.Stdout != nil {
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(r.Stdout))); perr == nil && pid > 1 {
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
		}
	}
	if err != nil {
		t.Fatalf("Run = %v after %v, want success", err, elapsed)
	}
	if r.ExitCode != 0 || string(r.Stderr) != "started\n" {
		t.Errorf("Run = %+v", r)
	}
	if _, err := strconv.Atoi(strings.TrimSpace(string(r.Stdout))); err != nil {
		t.Errorf("stdout %q: want the child's pid", r.Stdout)
	}
	// The command itself ends at once; the child sleeps 30 s. Anything near
	// the 5 s WaitDelay means the runner waited for the child.
	if elapsed > 4*time.Second {
		t.Errorf("Run took %v: it waited for the background child", elapsed)
	}
}

// A cancelled context still ends a command that does not exit by itself.
func TestExecRunnerCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := ExecRunner{}.Run(ctx, "sleep", "30")
	if err == nil {
		t.Fatal("a killed command is an error")
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("cancel took %v", time.Since(start))
	}
}

func TestExecRunnerOutputBudget(t *testing.T) {
	r, err := ExecRunner{}.Run(context.Background(), "sh", "-c", "head -c 3000000 /dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Stdout) != outputBudget {
		t.Errorf("kept %d bytes, want the budget %d", len(r.Stdout), outputBudget)
	}
}
