package freebsd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Runner runs one host command. Every command the driver issues goes
// through it, so tests replace it with a fake that replays outputs
// recorded on FreeBSD (testdata/).
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

func (ExecRunner) Run(ctx context.Context, argv ...string) (Result, error) {
	if len(argv) == 0 {
		return Result{}, errors.New("run: empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"LC_ALL=C", "PATH=" + hostPath, "HOME=/root"}
	if v := os.Getenv("TMPDIR"); v != "" {
		cmd.Env = append(cmd.Env, "TMPDIR="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	res := Result{Stdout: out.Bytes(), Stderr: errb.Bytes()}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		res.ExitCode = ee.ExitCode()
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return res, nil
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
