package topology

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with an infra repo. File and Line point into
// the repo (topology.yaml or a template) when known; Where names the host,
// jail or field ("host serverA: jail pg_j: pipe PGC").
type Problem struct {
	File  string
	Line  int
	Where string
	Msg   string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	}
	if p.Where != "" {
		b.WriteString(p.Where)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is the error returned by Load and Render: every problem found,
// sorted by file and line, duplicates removed.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sorted returns ps ordered by file, line and text, without duplicates
// (a role's mistake is found once per host using it).
func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.String() < b.String()
	})
	out := ps[:0]
	seen := map[string]bool{}
	for _, p := range ps {
		s := p.String()
		if seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, p)
	}
	return out
}

// problemList collects problems while loading.
type problemList struct{ ps Problems }

func (l *problemList) add(pos Pos, where, format string, args ...any) {
	l.ps = append(l.ps, Problem{File: pos.File, Line: pos.Line, Where: where, Msg: fmt.Sprintf(format, args...)})
}

func (l *problemList) err() error {
	if len(l.ps) == 0 {
		return nil
	}
	return l.ps.sorted()
}

// Pos is a place in the repo.
type Pos struct {
	File string
	Line int
}

var (
	yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	tmplLineRE = regexp.MustCompile(`^template: ([^:]+):(\d+):(?:\d+:)? ?(.*)$`)
)

// yamlProblem turns one yaml.v3 message ("line 4: field x not found in
// type topology.Jail") into a Problem naming file:line.
func yamlProblem(file, msg string) Problem {
	msg = strings.TrimSpace(msg)
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: n, Msg: cleanYAMLMsg(m[2])}
	}
	return Problem{File: file, Msg: cleanYAMLMsg(strings.TrimPrefix(msg, "yaml: "))}
}

var typeNameRE = regexp.MustCompile(`not found in type topology\.(\w+)`)

// yamlTypes names the decoded types the way topology.yaml users know them.
var yamlTypes = map[string]string{
	"File": "the top level", "Spec": "a host or role", "NIC": "a nic", "Lagg": "a lagg", "Vlan": "a vlan",
	"Bridge": "a bridge", "JailParams": "jail parameters", "Jail": "a jail", "Pipe": "a pipe",
	"WG": "a wireguard interface", "WGPeer": "a wireguard peer", "PF": "pf", "PFTable": "a pf table",
	"FileSpec": "a file", "CheckSpec": "a check", "PolicySpec": "policy",
}

func cleanYAMLMsg(s string) string {
	if m := typeNameRE.FindStringSubmatch(s); m != nil && strings.HasPrefix(s, "field ") {
		what := yamlTypes[m[1]]
		if what == "" {
			what = strings.ToLower(m[1])
		}
		return "unknown key " + strings.TrimSpace(strings.TrimPrefix(s[:len(s)-len(m[0])], "field ")) + " in " + what
	}
	return s
}

// templateProblem turns a text/template error into a Problem naming the
// template file and line.
func templateProblem(err error, where string) Problem {
	msg := err.Error()
	if m := tmplLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[2])
		return Problem{File: m[1], Line: n, Where: where, Msg: m[3]}
	}
	return Problem{Where: where, Msg: msg}
}
