package kill9_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/apply/applytest/kill9"
)

const childEnv = "KILL9_TEST_CHILD"

// TestChild is the process the tests below kill.
func TestChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("helper process, runs only when re-executed")
	}
	switch {
	case mode == "pause":
		fmt.Fprintln(os.Stderr, "before")
		kill9.Pause("step:1")
	case strings.HasPrefix(mode, "lines="):
		n, _ := strconv.Atoi(strings.TrimPrefix(mode, "lines="))
		w := kill9.LineWriter(os.Stderr, n)
		for i := 1; i <= 5; i++ {
			fmt.Fprintf(w, "line %d\n", i)
		}
		os.WriteFile(os.Getenv("KILL9_TEST_FILE"), []byte("passed the last line"), 0o644)
	case mode == "exit":
		fmt.Fprintln(os.Stderr, "bye")
	}
}

func TestPausePoint(t *testing.T) {
	out := kill9.At(t, kill9.Self("^TestChild$", childEnv+"=pause"), "step:1")
	if !strings.Contains(out, "before") {
		t.Errorf("output %q lacks what the child printed before the point", out)
	}
}

// The writer holds the child at its n-th line: nothing after it is done.
func TestLineWriterStopsAtLine(t *testing.T) {
	for n := 1; n <= 5; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			file := t.TempDir() + "/after"
			c := kill9.Start(t, kill9.Self("^TestChild$", fmt.Sprintf("%s=lines=%d", childEnv, n), "KILL9_TEST_FILE="+file))
			want := fmt.Sprintf("line %d", n)
			c.WaitLine(want, func(l string) bool { return l == want })
			out := c.Kill()
			if strings.Contains(out, fmt.Sprintf("line %d", n+1)) {
				t.Errorf("child went past line %d:\n%s", n, out)
			}
			if _, err := os.Stat(file); err == nil {
				t.Error("child ran past its last line")
			}
		})
	}
}

// A child that ends before its point fails the wait, with its output.
func TestChildEndsFirst(t *testing.T) {
	ft := &fatalT{TB: t}
	c := kill9.Start(ft, kill9.Self("^TestChild$", childEnv+"=exit"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.WaitLine("a line never printed", func(string) bool { return false })
	}()
	<-done
	if !strings.Contains(ft.msg, "ended") || !strings.Contains(ft.msg, "a line never printed") || !strings.Contains(ft.msg, "bye") {
		t.Errorf("failure %q: want the end, the point and the output", ft.msg)
	}
}

// fatalT records a Fatalf instead of failing the test.
type fatalT struct {
	testing.TB
	msg string
}

func (f *fatalT) Helper() {}

func (f *fatalT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
