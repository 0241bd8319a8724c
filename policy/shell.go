package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// maxShellInput bounds a command checked by ShellSyntax: configuration
// values, not scripts.
const maxShellInput = 64 << 10

// ShellSyntax checks cmd with `sh -n` (parse only, nothing runs), as the
// commands jail(8) runs for exec.* and wg-quick runs for PostUp are
// handed to /bin/sh. The local sh stands in for FreeBSD's: both are
// POSIX shells, so a syntax error is one on the host too. The error
// carries sh's message without its "sh: " prefix.
func ShellSyntax(cmd string) error {
	if len(cmd) > maxShellInput {
		return fmt.Errorf("command longer than %d bytes", maxShellInput)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "/bin/sh", "-n", "-c", cmd)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	err := c.Run()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("sh -n: %w", err)
	}
	msg := strings.TrimSpace(stderr.String())
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	for _, p := range []string{"/bin/sh: ", "sh: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	// dash and FreeBSD's sh put the line number first: "1: Syntax error"
	if i := strings.Index(msg, ": "); i > 0 && strings.Trim(msg[:i], "0123456789") == "" {
		msg = msg[i+2:]
	}
	if msg == "" {
		msg = "syntax error"
	}
	return errors.New(msg)
}
