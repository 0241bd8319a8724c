// Package kill9 is the one harness of the crash tests: start a child
// process, wait until it reaches a named point (a line it prints, which
// may be a pause hook's marker), kill it with SIGKILL, and hand its output
// back so the caller can check how the next process recovers.
//
// A child that should stop at an exact step calls Pause from a hook: it
// prints the point's marker line and blocks until the parent's SIGKILL.
// A child that is a real program is killed when one of its log lines
// appears (WaitLine); what it does between printing the line and the
// signal is then up to the scheduler, so the caller's checks must hold for
// either side of the line.
//
// It is test support: only _test.go files import it.
package kill9

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Wait is how long the parent waits for a point before it gives up; the
// children do real I/O on a busy machine.
const Wait = 60 * time.Second

// marker starts the line Pause prints.
const marker = "kill9: paused at "

// Pause prints the marker of point to stderr and blocks until the process
// is killed. It is the child side of WaitPoint.
func Pause(point string) {
	fmt.Fprintf(os.Stderr, "\n%s%s\n", marker, point)
	block()
}

// block sleeps until SIGKILL. A sleep, not an empty select: with every
// goroutine blocked the runtime would end the process as a deadlock.
func block() {
	for {
		time.Sleep(time.Hour)
	}
}

// Self returns a command that re-executes the running test binary with
// only the tests matching run (a -test.run pattern) and env added to the
// environment: the usual way to get a child to kill.
func Self(run string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// Child is a started process whose stdout and stderr lines the harness
// reads as they come.
type Child struct {
	t      testing.TB
	cmd    *exec.Cmd
	r      *os.File
	exited chan struct{}
	err    error // of Wait, once exited is closed

	mu      sync.Mutex
	lines   []string
	next    int           // lines before next were consumed by a wait
	changed chan struct{} // closed on a new line or EOF, then replaced
	eof     bool
	read    chan struct{} // closed when the reader is done
}

// Start starts cmd with stdout and stderr on one pipe the harness reads.
// The child is killed at the end of the test if it still runs.
func Start(t testing.TB, cmd *exec.Cmd) *Child {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	w.Close() // the child holds its own copy
	c := &Child{t: t, cmd: cmd, r: r, exited: make(chan struct{}), changed: make(chan struct{}), read: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	go c.readLines()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			cmd.Process.Kill()
			<-c.exited
		}
		r.Close()
	})
	return c
}

func (c *Child) readLines() {
	defer close(c.read)
	br := bufio.NewReader(c.r)
	for {
		line, err := br.ReadString('\n')
		c.mu.Lock()
		if line != "" {
			c.lines = append(c.lines, strings.TrimSuffix(line, "\n"))
		}
		if err != nil {
			c.eof = true
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// WaitLine waits until the child prints a line for which match is true,
// after the lines earlier waits consumed, and returns it. It fails the test
// if the child ends first or nothing matches within Wait.
func (c *Child) WaitLine(what string, match func(line string) bool) string {
	c.t.Helper()
	deadline := time.After(Wait)
	for {
		c.mu.Lock()
		for c.next < len(c.lines) {
			l := c.lines[c.next]
			c.next++
			if match(l) {
				c.mu.Unlock()
				return l
			}
		}
		eof, changed := c.eof, c.changed
		c.mu.Unlock()
		if eof {
			<-c.exited
			c.t.Fatalf("%s: the child ended (%v) before %s:\n%s", c.cmd.Path, c.err, what, c.Output())
		}
		select {
		case <-changed:
		case <-deadline:
			c.t.Fatalf("%s: no %s within %s:\n%s", c.cmd.Path, what, Wait, c.Output())
		}
	}
}

// WaitPoint waits until the child pauses at point (see Pause).
func (c *Child) WaitPoint(point string) {
	c.t.Helper()
	c.WaitLine("pause at "+point, func(l string) bool { return l == marker+point })
}

// Kill sends SIGKILL, waits for the process and returns everything it
// printed. Processes the child started in its own session are not killed:
// a crash of the agent leaves the services it started running.
func (c *Child) Kill() string {
	c.t.Helper()
	if err := c.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Fatalf("kill %s: %v", c.cmd.Path, err)
	}
	<-c.exited
	// A grandchild may still hold the pipe: wait for EOF a moment only,
	// the output is for messages.
	c.r.SetReadDeadline(time.Now().Add(time.Second))
	<-c.read
	return c.Output()
}

// Output is what the child printed so far.
func (c *Child) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

// Lines is how many lines the child printed so far.
func (c *Child) Lines() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// At starts cmd, waits for point (a Pause in the child), kills the child
// and returns its output: the whole crash of a hook-driven test.
func At(t testing.TB, cmd *exec.Cmd, point string) string {
	t.Helper()
	c := Start(t, cmd)
	c.WaitPoint(point)
	return c.Kill()
}

// LineWriter passes writes to w and, once the n-th line (1-based) has been
// written, blocks every later write and the one that ended the line
// forever. A child gives it its logger so that the parent, seeing line n
// (WaitLine), kills it before it can do anything past the line: the log
// lines become exact kill points. n <= 0 never blocks.
func LineWriter(w io.Writer, n int) io.Writer {
	return &lineWriter{w: w, n: n}
}

type lineWriter struct {
	mu   sync.Mutex
	w    io.Writer
	n    int
	seen int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock() // held forever once the point is reached
	if l.n > 0 && l.seen >= l.n {
		block()
	}
	k, err := l.w.Write(p)
	l.seen += strings.Count(string(p[:k]), "\n")
	if l.n > 0 && l.seen >= l.n {
		block()
	}
	l.mu.Unlock()
	return k, err
}
