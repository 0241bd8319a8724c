package pf

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// corpusDir finds FreeBSD's pfctl regression files: $RIGGER_PFCTL_CORPUS,
// else the checkout's ../shared/corpus/pfctl.
func corpusDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("RIGGER_PFCTL_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus", "pfctl")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("pfctl corpus not found at %s (set RIGGER_PFCTL_CORPUS): %v", dir, err)
	}
	return dir
}

// corpusReader reads include and table files the way the FreeBSD harness
// sees them: relative to the corpus folder; /dev/null is empty.
func corpusReader(dir string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if name == "/dev/null" {
			return nil, nil
		}
		if filepath.IsAbs(name) {
			return nil, os.ErrNotExist
		}
		return os.ReadFile(filepath.Join(dir, name))
	}
}

// corpusInterfaces are the addresses of the FreeBSD test machine's
// interfaces that the .ok files show: lo0, and the vlan interfaces the
// pool tests create.
var corpusInterfaces = map[string][]string{"lo0": {"::1", "fe80::1", "127.0.0.1"}}

func init() {
	for i := 1057; i <= 1064; i++ {
		corpusInterfaces["vlan"+strconv.Itoa(i)] = []string{"203.0.113.5", "2001:db8::cb00:7105"}
	}
}

var failPos = regexp.MustCompile(`^(\S+):(\d+): (.*)$`)

func TestCorpus(t *testing.T) {
	dir := corpusDir(t)
	ins, err := filepath.Glob(filepath.Join(dir, "pf*.in"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no .in files in %s: %v", dir, err)
	}
	sort.Strings(ins)
	var accepted, acceptWant, rejected, rejectWant, identical, compared int
	var differ []string
	for _, in := range ins {
		base := strings.TrimSuffix(filepath.Base(in), ".in")
		src, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		name := base + ".in"
		rs, perr := Parse(name, src, Options{ReadFile: corpusReader(dir), Interfaces: corpusInterfaces})
		okText, okErr := os.ReadFile(filepath.Join(dir, base+".ok"))
		failText, failErr := os.ReadFile(filepath.Join(dir, base+".fail"))
		switch {
		case failErr == nil:
			rejectWant++
			if perr == nil {
				t.Errorf("%s: accepted, want rejected with %q", name, strings.TrimSpace(string(failText)))
				continue
			}
			if err := matchFail(perr, name, stmtLine(src), strings.TrimSpace(string(failText))); err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			rejected++
		case okErr == nil:
			acceptWant++
			if perr != nil {
				t.Errorf("%s: rejected, want accepted:\n%v", name, perr)
				continue
			}
			accepted++
			compared++
			if rs.Normalized() == string(okText) {
				identical++
			} else {
				differ = append(differ, base)
			}
		}
	}
	t.Logf("corpus: accepted %d/%d .ok inputs, rejected %d/%d .fail inputs at the right place", accepted, acceptWant, rejected, rejectWant)
	t.Logf("corpus: normalized output byte-identical for %d/%d accepted .ok inputs", identical, compared)
	if testing.Verbose() {
		t.Logf("differ: %s", strings.Join(differ, " "))
	}
}

// stmtLine is the line of the only statement in src, or 0 when there are
// several (a bare .fail message then only has to be in the .in file).
func stmtLine(src []byte) int {
	line := 0
	for i, l := range strings.Split(string(src), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if line != 0 {
			return 0
		}
		line = i + 1
	}
	return line
}

// matchFail checks a parse error against a .fail file: a FILE:LINE: text
// must match exactly; a bare message (a grep pattern) must match one
// error's message, and that error must be in the .in file, at the line of
// its statement.
func matchFail(err error, name string, line int, want string) error {
	var el ErrorList
	if !errors.As(err, &el) {
		return err
	}
	if m := failPos.FindStringSubmatch(want); m != nil {
		line, _ := strconv.Atoi(m[2])
		for _, e := range el {
			if e.File == m[1] && e.Line == line && strings.Contains(e.Msg, m[3]) {
				return nil
			}
		}
		return errors.New("no error " + want + " in:\n" + el.Error())
	}
	re, rerr := regexp.Compile(want)
	for _, e := range el {
		if e.File != name || line != 0 && e.Line != line {
			continue
		}
		if rerr == nil && re.MatchString(e.Msg) || strings.Contains(e.Msg, want) {
			return nil
		}
	}
	return errors.New("no error matching " + strconv.Quote(want) + " in:\n" + el.Error())
}

func TestCorpusNoCrash(t *testing.T) {
	dir := corpusDir(t)
	for _, b := range []string{"0008", "0052", "0055", "0065", "0070", "0095", "1001", "1035", "1036"} {
		src, err := os.ReadFile(filepath.Join(dir, "pf"+b+".in"))
		if err != nil {
			t.Fatal(err)
		}
		Parse("pf"+b+".in", src, Options{ReadFile: corpusReader(dir)}) //nolint:errcheck // only must not crash
	}
}

// olderServices are .ok files from a tree whose /etc/services had no name
// for a port that FreeBSD's current file names (pf0096: 5555 is now
// personal-agent).
var olderServices = map[string]bool{"pf0096": true}

// TestCorpusSelf feeds pfctl's own output back in, as FreeBSD's selfpf
// tests do: normalized output must be a fixed point.
func TestCorpusSelf(t *testing.T) {
	dir := corpusDir(t)
	oks, _ := filepath.Glob(filepath.Join(dir, "pf*.ok"))
	var same, total int
	var differ []string
	for _, ok := range oks {
		src, err := os.ReadFile(ok)
		if err != nil {
			t.Fatal(err)
		}
		base := strings.TrimSuffix(filepath.Base(ok), ".ok")
		rs, err := Parse(base+".ok", src, Options{ReadFile: corpusReader(dir), Interfaces: corpusInterfaces})
		if err != nil {
			// FreeBSD prints divert-to as the bare port, which it does
			// not accept back (its own selfpf tests skip these).
			if base != "pf0097" && base != "pf0104" {
				t.Errorf("%s.ok rejected:\n%v", base, err)
			}
			continue
		}
		if olderServices[base] {
			// printed with an older /etc/services than services.txt:
			// the port now has a name, so it prints differently
			continue
		}
		total++
		if rs.Normalized() == string(src) {
			same++
		} else {
			differ = append(differ, base)
		}
	}
	t.Logf("self: %d/%d accepted .ok files print back unchanged", same, total)
	if len(differ) > 0 {
		t.Errorf("normalized output is not a fixed point for: %s", strings.Join(differ, " "))
	}
}

// TestCorpusRelease14: FreeBSD 14's pfctl knows every corpus file but
// those using 15's syntax, and those are rejected only for that reason,
// with the message naming the release.
func TestCorpusRelease14(t *testing.T) {
	dir := corpusDir(t)
	ins, _ := filepath.Glob(filepath.Join(dir, "pf*.in"))
	var only15 []string
	for _, in := range ins {
		base := strings.TrimSuffix(filepath.Base(in), ".in")
		if _, err := os.Stat(filepath.Join(dir, base+".ok")); err != nil {
			continue
		}
		src, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		_, perr := Parse(base+".in", src, Options{ReadFile: corpusReader(dir), Interfaces: corpusInterfaces, Release: 14})
		if perr == nil {
			continue
		}
		var el ErrorList
		if !errors.As(perr, &el) {
			t.Fatalf("%s: %v", base, perr)
		}
		for _, e := range el {
			if !strings.HasSuffix(e.Msg, "needs FreeBSD 15") {
				t.Errorf("%s: release 14 rejects it for another reason: %v", base, e)
			}
		}
		only15 = append(only15, base)
	}
	t.Logf("release 14: %d corpus files use FreeBSD 15 syntax: %s", len(only15), strings.Join(only15, " "))
	if len(only15) == 0 {
		t.Error("no corpus file uses FreeBSD 15 syntax: the release check never fired")
	}
}
