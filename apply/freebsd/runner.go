package freebsd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Runner runs one host command. Every command the driver issues goes
// through it, so tests replace it with a fake that replays outputs
// recorded on FreeBSD (testdata/). Run may be called from several
// goroutines at once (the pre-check runs its tools together).
type Runner interface {
	// Run executes argv and returns its output and exit code. A non-zero
	// exit is not an error; err is for a command that could not run.
	Run(ctx context.Context, argv ...string) (Result, error)
}

// Result is what a command printed and how it exited.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// ExecRunner runs commands with os/exec, in the C locale and with the
// system PATH, so outputs match the formats the parsers expect.
type ExecRunner struct{}

// hostPath is the PATH rc(8) uses, plus /usr/local for ports (wg, wg-quick).
const hostPath = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"

// outputBudget bounds what is kept of each of a command's stdout and
// stderr; the tools the driver runs print a few kilobytes at most.
const outputBudget = 1 << 20

// Run starts argv with stdin from /dev/null and stdout and stderr going
// to unlinked temp files, never pipes. Commands such as `wg-quick up`
// (which leaves a backgrounded `route -n monitor` holding fd 3 = stderr,
// wireguard-tools wg-quick/freebsd.bash) and `service spiped start`
// (daemonize(3) in spiped only forks and setsids, stdio is kept:
// ports sysutils/spiped) leave children that keep the caller's stdout and
// stderr open after exiting 0. With pipes, os/exec would wait for those
// children (or fail with exec.ErrWaitDelay); a file has no reader to wait
// for, so Run returns when the command itself exits.
func (ExecRunner) Run(ctx context.Context, argv ...string) (Result, error) {
	if len(argv) == 0 {
		return Result{}, errors.New("run: empty command")
	}
	name := strings.Join(argv, " ")
	stdout, err := unlinkedTemp()
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	defer stdout.Close()
	stderr, err := unlinkedTemp()
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	defer stderr.Close()

	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"LC_ALL=C", "PATH=" + hostPath, "HOME=/root"}
	if v := os.Getenv("TMPDIR"); v != "" {
		cmd.Env = append(cmd.Env, "TMPDIR="+v)
	}
	cmd.Stdin = nil // os/exec opens /dev/null
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// With no pipes there is no I/O to wait for: WaitDelay only bounds
	// the wait for the process after ctx is cancelled and it is killed.
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()

	var res Result
	var rerr error
	if res.Stdout, rerr = readBudget(stdout); rerr != nil {
		return res, fmt.Errorf("%s: stdout: %w", name, rerr)
	}
	if res.Stderr, rerr = readBudget(stderr); rerr != nil {
		return res, fmt.Errorf("%s: stderr: %w", name, rerr)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		res.ExitCode = ee.ExitCode()
	default:
		return res, fmt.Errorf("%s: %w", name, err)
	}
	return res, nil
}

// unlinkedTemp opens a temp file and removes its name at once: only the
// descriptor remains, so nothing is left behind whatever happens.
func unlinkedTemp() (*os.File, error) {
	f, err := os.CreateTemp("", "rigger-run-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// readBudget reads f from the start, keeping at most outputBudget bytes.
func readBudget(f *os.File) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, outputBudget))
	if len(b) == 0 {
		b = nil
	}
	return b, err
}

// CommandError is a command that exited non-zero where the driver needed
// success. Output holds what it printed (stderr, then stdout), trimmed.
type CommandError struct {
	Argv     []string
	ExitCode int
	Output   string
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: exit %d", strings.Join(e.Argv, " "), e.ExitCode)
	if e.Output != "" {
		msg += ": " + e.Output
	}
	return msg
}

func commandError(argv []string, r Result) *CommandError {
	out := strings.TrimSpace(string(r.Stderr))
	if so := strings.TrimSpace(string(r.Stdout)); so != "" {
		if out != "" {
			out += "; "
		}
		out += so
	}
	return &CommandError{Argv: argv, ExitCode: r.ExitCode, Output: out}
}
