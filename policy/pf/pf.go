// Package pf parses FreeBSD's pf.conf as pfctl(8) of FreeBSD 14/15 does
// (macros, tables, options, scrub, queueing, translation and filter rules,
// anchors, includes) and reports errors in pfctl's own form, FILE:LINE:
// message. It also prints the parsed rules normalized as `pfctl -nvf` does,
// and keeps enough of each rule for the linters in policy/lint. It never
// talks to a kernel: interfaces and host names are not resolved.
package pf

import (
	"errors"
	"io/fs"
	"os"
	"strings"

	"github.com/rigger-bsd/rigger/policy"
)

// CONTRACT (shared with the sim driver and the bundler): names and
// signatures here are used elsewhere.

// Options control where included files and table files are read from.
type Options struct {
	// ReadFile reads include files and `table <t> file "..."` files.
	// nil means os.ReadFile. The sim driver maps paths into its sandbox.
	ReadFile func(name string) ([]byte, error)
	// Interfaces maps interface names to their addresses, for the names
	// pfctl expands at parse time (pass from em0, table <t> { lo0 },
	// nat-to em0:0). nil leaves interface names as written; the check
	// does not depend on it, only the normalized output.
	Interfaces map[string][]string
	// Release is the FreeBSD release whose pfctl is emulated (0: the
	// newest supported). Syntax of another release is an error that
	// names the release it needs.
	Release policy.Release
}

// Error is one problem at a file and line.
type Error = policy.FileError

// ErrorList is every error of a parse, in order.
type ErrorList = policy.ErrorList

// Ruleset is a parsed pf.conf.
type Ruleset struct {
	File   string // the name Parse was given
	Macros []*Macro
	Tables []*Table
	// Rules are the top-level statements that pfctl -nv prints (options,
	// scrub, queues, translation, filter rules, anchors), lists expanded.
	Rules []*Rule
	// TableRefs counts references to each table name (<name>) in rules.
	TableRefs map[string]int
	// Warnings are names pfctl resolves on the host when it loads the
	// file (host and interface names in addresses, users, groups): not
	// errors offline, but each must resolve on the host.
	Warnings ErrorList

	lines []string // pfctl -nv output
}

// Macro is one macro definition (name = value). Uses counts its expansions.
type Macro struct {
	Name, Value string
	File        string
	Line        int
	Uses        int
}

// Table is one table definition.
type Table struct {
	Name                     string
	Const, Persist, Counters bool
	Addrs                    []string // inline addresses as written
	Files                    []string // file "..." names
	File                     string
	Line                     int
	text                     string
}

// Rule is one expanded rule: lists in the source give several Rules.
type Rule struct {
	Kind   string // option, scrub, altq, queue, ether, nat, rdr, binat, pass, block, match, anchor, limiter
	File   string
	Line   int
	Text   string // normalized, as pfctl -nv prints it (children not included)
	Quick  bool
	Dir    string // "", "in", "out"
	Iface  string // "" or the interface, "!" prefixed when negated
	AF     string // "", "inet", "inet6"
	Proto  string // "" or the protocol name
	From   Endpoint
	To     Endpoint
	NoNat  bool    // "no nat", "no rdr"
	Pass   bool    // nat/rdr/binat pass: translated packets skip the filter
	Anchor []*Rule // an inline anchor's rules
	body   bool    // an inline anchor: printed with its rules in braces

	// Catchall is true when the rule matches every packet of its
	// direction: no interface, af, proto, address, port or option.
	Catchall bool
}

// Endpoint is one side of a rule after list expansion.
type Endpoint struct {
	Addr string // printed form; "any" when unrestricted
	Not  bool
	// Port range matched; Op "" means any port.
	Op     string
	Lo, Hi int
}

// AnyPort reports whether the endpoint matches every port.
func (e Endpoint) AnyPort() bool { return e.Op == "" }

// MatchesPort reports whether port p is matched by the endpoint's port spec.
func (e Endpoint) MatchesPort(p int) bool {
	switch e.Op {
	case "":
		return true
	case "=":
		return p == e.Lo
	case "!=":
		return p != e.Lo
	case "<":
		return p < e.Lo
	case "<=":
		return p <= e.Lo
	case ">":
		return p > e.Lo
	case ">=":
		return p >= e.Lo
	case ":":
		return p >= e.Lo && p <= e.Hi
	case "><":
		return p > e.Lo && p < e.Hi
	case "<>":
		return p < e.Lo || p > e.Hi
	}
	return false
}

// Parse parses src as the pf.conf named filename. A non-nil error is an
// ErrorList; the Ruleset is returned too, with what could be parsed.
func Parse(filename string, src []byte, opts Options) (*Ruleset, error) {
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	p := newParser(opts)
	p.rs.File = filename
	p.parseFile(filename, src, nil, 0)
	if len(p.errs) == 0 {
		// pfctl prints rules as it loads them, which an error prevents;
		// macros, tables and options were printed while parsing.
		p.printRules(p.rs.Rules, 0)
	}
	p.rs.Macros = p.macroList
	for _, m := range p.macroList {
		m.Uses = p.macroUses[m.Name]
	}
	if len(p.errs) > 0 {
		return p.rs, p.errs
	}
	return p.rs, nil
}

// CheckFile parses the file at path, like pfctl -nf path.
func CheckFile(path string, opts Options) error {
	rf := opts.ReadFile
	if rf == nil {
		rf = os.ReadFile
	}
	src, err := rf(path)
	if err != nil {
		return err
	}
	_, err = Parse(path, src, opts)
	return err
}

// Normalized returns the ruleset as pfctl -nvf prints it: macro
// definitions, tables and options as parsed, then the rules in load order
// (scrub, nat, rdr, binat, filter) with inline anchors indented. After a
// parse error only the parse-time part is printed, as with pfctl.
func (rs *Ruleset) Normalized() string {
	var b strings.Builder
	for _, l := range rs.lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// AllRules returns every rule, descending into inline anchors, in order.
func (rs *Ruleset) AllRules() []*Rule {
	var out []*Rule
	var walk func([]*Rule)
	walk = func(rs []*Rule) {
		for _, r := range rs {
			out = append(out, r)
			walk(r.Anchor)
		}
	}
	walk(rs.Rules)
	return out
}

// strerror gives a read error the C library's wording pfctl prints.
func strerror(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "No such file or directory"
	case errors.Is(err, fs.ErrPermission):
		return "Permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
