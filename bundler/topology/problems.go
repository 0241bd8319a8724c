package topology

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
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
	// Warning marks a problem that does not fail Load (the repo still
	// loads; Repo.Warnings lists it).
	Warning bool
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
	if p.Warning {
		b.WriteString("warning: ")
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

// sorted returns ps ordered by file, line and text, without duplicates. A
// role's mistake is found once per host using it: the same problem at the
// same place for several hosts is reported once, naming the hosts.
func (ps Problems) sorted() Problems {
	type key struct {
		file      string
		line      int
		rest, msg string
		warn      bool
	}
	hosts := map[key][]string{}
	var order []key
	for _, p := range ps {
		k := key{p.File, p.Line, p.Where, p.Msg, p.Warning}
		h := ""
		if name, rest, ok := strings.Cut(strings.TrimPrefix(p.Where, "host "), ": "); ok && strings.HasPrefix(p.Where, "host ") {
			h, k.rest = name, rest
		} else if strings.HasPrefix(p.Where, "host ") {
			h, k.rest = strings.TrimPrefix(p.Where, "host "), ""
		}
		if _, seen := hosts[k]; !seen {
			order = append(order, k)
			hosts[k] = nil
		}
		if h != "" && !slices.Contains(hosts[k], h) {
			hosts[k] = append(hosts[k], h)
		}
	}
	out := make(Problems, 0, len(order))
	for _, k := range order {
		p := Problem{File: k.file, Line: k.line, Where: k.rest, Msg: k.msg, Warning: k.warn}
		if hs := hosts[k]; len(hs) > 0 {
			sort.Strings(hs)
			who := "host " + hs[0]
			if len(hs) > 1 {
				who = "hosts " + strings.Join(hs[:min(len(hs), 4)], ", ")
				if len(hs) > 4 {
					who += fmt.Sprintf(" and %d more", len(hs)-4)
				}
			}
			p.Where = who
			if k.rest != "" {
				p.Where += ": " + k.rest
			}
		}
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.String() < b.String()
	})
	return out
}

// problemList collects problems while loading.
type problemList struct{ ps Problems }

// errReported marks an error whose cause is already a reported problem
// (a bad address): follow-on problems are dropped instead of repeated.
var errReported = errors.New("already reported")

func (l *problemList) add(pos Pos, where, format string, args ...any) {
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, errReported) {
			return
		}
	}
	l.ps = append(l.ps, Problem{File: pos.File, Line: pos.Line, Where: where, Msg: fmt.Sprintf(format, args...)})
}

// addProblem adds p unless it is empty (an already reported cause).
func (l *problemList) addProblem(p Problem) {
	if p.Msg != "" {
		l.ps = append(l.ps, p)
	}
}

// warn adds a warning: reported, but the repo still loads.
func (l *problemList) warn(pos Pos, where, format string, args ...any) {
	l.ps = append(l.ps, Problem{File: pos.File, Line: pos.Line, Where: where, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// err is every problem (warnings included) when at least one is an
// error, else nil.
func (l *problemList) err() error {
	for _, p := range l.ps {
		if !p.Warning {
			return l.ps.sorted()
		}
	}
	return nil
}

// warnings are the problems when all of them are warnings.
func (l *problemList) warnings() Problems {
	if len(l.ps) == 0 || l.err() != nil {
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
	"FileSpec": "a file", "CheckSpec": "a check", "PolicySpec": "policy", "Netif": "a netif",
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
	if errors.Is(err, errReported) {
		return Problem{}
	}
	msg := err.Error()
	if m := tmplLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[2])
		return Problem{File: m[1], Line: n, Where: where, Msg: m[3]}
	}
	return Problem{Where: where, Msg: msg}
}
