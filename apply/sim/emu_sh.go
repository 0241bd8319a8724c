package sim

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
)

// sh is sh(1): `sh -n FILE` runs the real sh (dash on Debian, ash-derived
// like FreeBSD's), which parses without executing; `sh -c LINE` runs LINE
// through the emulator's own command interpreter.
func (c *cmd) sh(args []string) int {
	if len(args) >= 2 && args[0] == "-n" {
		ctx := c.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		out, err := exec.CommandContext(ctx, "sh", "-n", args[1]).CombinedOutput()
		c.stderr.Write(out)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			c.errf("sh: %v\n", err)
			return 127
		}
		return 0
	}
	if len(args) >= 2 && args[0] == "-c" {
		return c.runLine(args[1])
	}
	if len(args) == 1 && (args[0] == "/etc/rc" || args[0] == "/etc/rc.shutdown") {
		if c.jail == "" {
			c.errf("sh: %s: the host's /etc/rc runs at boot only (sim.Host.Boot)\n", args[0])
			return 1
		}
		if args[0] == "/etc/rc" {
			c.jailRC(c.k.Jails[c.jail])
		} else {
			c.jailShutdown(c.k.Jails[c.jail])
		}
		return 0
	}
	c.errf("sh: unsupported invocation %q\n", args)
	return 2
}

// runLine runs one shell command line as the emulator understands it:
// simple commands with quoted words, joined by ; && ||. No variables, no
// redirections or pipes beyond dropping `>/dev/null`: the lines rigger
// renders (exec hooks, wg-quick PostUp) are plain commands.
func (c *cmd) runLine(line string) int {
	code := 0
	op := ";"
	for _, part := range splitShell(line) {
		if part == ";" || part == "&&" || part == "||" {
			op = part
			continue
		}
		words := shellWords(part)
		if len(words) == 0 {
			continue
		}
		if op == "&&" && code != 0 || op == "||" && code == 0 {
			continue
		}
		var keep []string
		for _, w := range words {
			if w == ">/dev/null" || w == "2>/dev/null" || w == "2>&1" {
				continue
			}
			keep = append(keep, w)
		}
		keep[0] = filepath.Base(keep[0])
		code = c.run(keep)
	}
	return code
}

// splitShell splits a line at ; && || outside quotes, keeping the operators.
func splitShell(s string) []string {
	var out []string
	var b strings.Builder
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
			b.WriteByte(ch)
		case ch == '\'' || ch == '"':
			quote = ch
			b.WriteByte(ch)
		case ch == ';' || ch == '\n':
			out = append(out, b.String(), ";")
			b.Reset()
		case (ch == '&' || ch == '|') && i+1 < len(s) && s[i+1] == ch:
			out = append(out, b.String(), string([]byte{ch, ch}))
			b.Reset()
			i++
		default:
			b.WriteByte(ch)
		}
	}
	return append(out, b.String())
}

// shellWords splits a simple command into words, removing quotes.
func shellWords(s string) []string {
	var out []string
	var b strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			} else {
				b.WriteByte(ch)
			}
		case ch == '\'' || ch == '"':
			quote, in = ch, true
		case ch == ' ' || ch == '\t':
			if in {
				out = append(out, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteByte(ch)
			in = true
		}
	}
	if in {
		out = append(out, b.String())
	}
	return out
}
