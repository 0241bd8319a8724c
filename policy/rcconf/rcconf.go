// Package rcconf reads and checks rc.conf-style files (rc.conf, the jails'
// rc.conf, rc.conf.d snippets): sh -n, variable names, quoting. It reads
// assignments only; it never evaluates the shell.
package rcconf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/policy"
)

// CONTRACT (shared with the sim driver and the bundler): names and
// signatures here are used elsewhere.

// Vars are the assignments of an rc.conf in file order, later ones winning.
type Vars map[string]string

// Error is one problem at a file and line.
type Error = policy.FileError

// assignment is one name=value statement found in a file.
type assignment struct {
	name, value string
	line        int
}

// Parse reads the assignments of an rc.conf (name="value", name='value' and
// name=value lines, comments, blank lines). Any other line, an invalid
// name or an unbalanced quote is an error naming FILE:LINE (an *Error).
func Parse(filename string, src []byte) (Vars, error) {
	as, errs := scan(filename, src)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	v := Vars{}
	for _, a := range as {
		v[a.name] = a.value
	}
	return v, nil
}

// Check runs every rc-file check (sh -n via dash or sh, names, quoting) and
// returns all problems as FILE:LINE: message errors (*Error), or nil.
func Check(filename string, src []byte) []error {
	_, errs := scan(filename, src)
	if err := shellCheck(filename, src); err != nil {
		// Report the shell's view unless the scanner already named that
		// line, or already reported the unbalanced quote the shell sees at
		// the end of the file.
		dup := len(errs) > 0 && strings.Contains(err.Msg, "Unterminated quoted string")
		for _, e := range errs {
			var re *Error
			if errors.As(e, &re) && re.Line == err.Line {
				dup = true
			}
		}
		if !dup {
			errs = append(errs, err)
		}
	}
	return errs
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// scan walks the file statement by statement. Quoted values may span lines.
func scan(filename string, src []byte) ([]assignment, []error) {
	var as []assignment
	var errs []error
	fail := func(line int, format string, a ...any) {
		errs = append(errs, &Error{File: filename, Line: line, Msg: fmt.Sprintf(format, a...)})
	}
	s := string(src)
	line := 1
	i := 0
	for i < len(s) {
		// start of a statement: skip blanks
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r') {
			i++
		}
		if i >= len(s) {
			break
		}
		if s[i] == '\n' {
			line++
			i++
			continue
		}
		if s[i] == '#' {
			for i < len(s) && s[i] != '\n' {
				i++
			}
			continue
		}
		start := line
		eol := strings.IndexByte(s[i:], '\n')
		if eol < 0 {
			eol = len(s) - i
		}
		eq := strings.IndexByte(s[i:i+eol], '=')
		if eq < 0 {
			fail(start, "not an assignment: %q", strings.TrimSpace(s[i:i+eol]))
			i += eol
			continue
		}
		name := s[i : i+eq]
		if !isName(name) {
			fail(start, "invalid variable name %q", name)
		}
		i += eq + 1
		var val strings.Builder
		ok := true
	value:
		for i < len(s) {
			c := s[i]
			switch c {
			case ' ', '\t', '\r', '\n', ';':
				break value
			case '\'':
				end := strings.IndexByte(s[i+1:], '\'')
				if end < 0 {
					fail(start, "unbalanced ' in value of %s", name)
					ok = false
					i = len(s)
					break value
				}
				q := s[i+1 : i+1+end]
				line += strings.Count(q, "\n")
				val.WriteString(q)
				i += end + 2
			case '"':
				j := i + 1
				for j < len(s) && s[j] != '"' {
					if s[j] == '\\' && j+1 < len(s) && strings.IndexByte("\"\\$`\n", s[j+1]) >= 0 {
						if s[j+1] == '\n' {
							line++
						} else {
							val.WriteByte(s[j+1])
						}
						j += 2
						continue
					}
					if s[j] == '\n' {
						line++
					}
					val.WriteByte(s[j])
					j++
				}
				if j >= len(s) {
					fail(start, "unbalanced \" in value of %s", name)
					ok = false
					i = len(s)
					break value
				}
				i = j + 1
			case '`':
				end := strings.IndexByte(s[i+1:], '`')
				if end < 0 {
					fail(start, "unbalanced ` in value of %s", name)
					ok = false
					i = len(s)
					break value
				}
				q := s[i : i+end+2]
				line += strings.Count(q, "\n")
				val.WriteString(q)
				i += end + 2
			case '\\':
				if i+1 < len(s) {
					if s[i+1] == '\n' {
						line++
					} else {
						val.WriteByte(s[i+1])
					}
					i += 2
				} else {
					i++
				}
			default:
				val.WriteByte(c)
				i++
			}
		}
		// rest of the line: blanks, ';', then a comment or nothing
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r') {
			i++
		}
		if ok && isName(name) {
			as = append(as, assignment{name: name, value: val.String(), line: start})
		}
		if i < len(s) && s[i] == ';' {
			i++ // another statement may follow on the line
			continue
		}
		if i < len(s) && s[i] == '#' {
			for i < len(s) && s[i] != '\n' {
				i++
			}
		}
		if ok && i < len(s) && s[i] != '\n' {
			rest := s[i:]
			if n := strings.IndexByte(rest, '\n'); n >= 0 {
				rest = rest[:n]
			}
			fail(line, "unexpected %q after the value of %s (quote values with blanks)", strings.TrimSpace(rest), name)
			i += len(rest)
		}
	}
	return as, errs
}

// shellLine finds the line number in dash's and bash's -n messages:
// "dash: 3: Syntax error: ..." or "sh: line 3: syntax error ...".
var shellLine = regexp.MustCompile(`^[^:]*: (?:line )?(\d+): (.*)$`)

// shellCheck runs `dash -n` (or `sh -n`) on src through stdin. A missing
// shell is not an error of the file: the check is skipped.
func shellCheck(filename string, src []byte) *Error {
	sh, err := exec.LookPath("dash")
	if err != nil {
		if sh, err = exec.LookPath("sh"); err != nil {
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sh, "-n")
	cmd.Stdin = bytes.NewReader(src)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err == nil {
		return nil
	}
	msg := strings.TrimSpace(out.String())
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if m := shellLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &Error{File: filename, Line: n, Msg: "sh -n: " + m[2]}
	}
	if msg == "" {
		msg = "syntax error"
	}
	return &Error{File: filename, Line: 1, Msg: "sh -n: " + msg}
}
