// Package jailconf parses jail.conf(5) and checks it the way jail(8) would:
// blocks, parameters (=, +=, booleans), comma lists, "$var" and "${var}"
// expansion, the three comment styles, and .include. It never runs jail(8).
package jailconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rigger-bsd/rigger/policy"
)

// CONTRACT (shared with the sim driver and the bundler): names and
// signatures here are used elsewhere.

// Config is a parsed jail.conf.
type Config struct {
	Global []Param // parameters outside any jail block, in order
	Jails  []Jail  // in file order (wildcard blocks "*" and "foo.*" included)
	// Warnings are constructs jail(8) accepts but that likely do not
	// mean what they seem to (an .include inside a jail block).
	Warnings ErrorList
}

// Jail is one jail block.
type Jail struct {
	Name   string
	Line   int
	File   string
	Params []Param
}

// Param is one parameter assignment: name = v1, v2; or name += v;
// A boolean parameter (persist;) has no values. Values keep "$var"
// references as written; Resolve expands them.
type Param struct {
	Name   string
	Values []string
	Append bool
	Line   int
	File   string

	parts [][]piece // per value: literal and variable pieces
	seq   int       // position in the whole configuration, for ordering
}

// piece is a literal run of a value or a variable reference.
type piece struct {
	text  string
	isVar bool
}

// Error is one problem at a file and line.
type Error = policy.FileError

// ErrorList is every error of a parse, in order.
type ErrorList = policy.ErrorList

// Options say how .include files are found.
type Options struct {
	// ReadFile reads an included file; nil means os.ReadFile.
	ReadFile func(name string) ([]byte, error)
	// Glob expands an .include pattern; nil means filepath.Glob.
	Glob func(pattern string) ([]string, error)
}

// maxIncludeDepth stops include loops.
const maxIncludeDepth = 16

// Parse parses src (named filename in errors, as FILE:LINE: message).
// .include statements read the local file system. A non-nil error is an
// ErrorList.
func Parse(filename string, src []byte) (*Config, error) {
	return ParseOptions(filename, src, Options{})
}

// ParseOptions is Parse with includes read through opts.
func ParseOptions(filename string, src []byte, opts Options) (*Config, error) {
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	if opts.Glob == nil {
		opts.Glob = filepath.Glob
	}
	p := &parser{opts: opts, cfg: &Config{}, names: map[string]string{}}
	p.file(filename, src, 0)
	if len(p.errs) > 0 {
		return p.cfg, p.errs
	}
	return p.cfg, nil
}

// Jail returns the jail called name, or nil.
func (c *Config) Jail(name string) *Jail {
	for i := range c.Jails {
		if c.Jails[i].Name == name {
			return &c.Jails[i]
		}
	}
	return nil
}

// Names returns the concrete (non-wildcard) jail names in file order.
func (c *Config) Names() []string {
	var n []string
	for _, j := range c.Jails {
		if !isWildcard(j.Name) {
			n = append(n, j.Name)
		}
	}
	return n
}

func isWildcard(name string) bool { return name == "*" || strings.HasSuffix(name, ".*") }

// matches reports whether a wildcard block applies to jail name.
func matches(pattern, name string) bool {
	if pattern == "*" {
		return true
	}
	if strings.HasSuffix(pattern, ".*") {
		return strings.HasPrefix(name, strings.TrimSuffix(pattern, "*"))
	}
	return pattern == name
}

// ResolveError is an expansion problem in a jail's parameters.
type ResolveError struct {
	Jail string
	File string
	Line int
	Msg  string
}

func (e *ResolveError) Error() string {
	return fmt.Sprintf("%s:%d: jail %s: %s", e.File, e.Line, e.Jail, e.Msg)
}

// Resolve returns the effective parameters of a jail: top-level
// parameters and matching wildcard blocks and the jail's own block, applied
// in file order (so a wildcard before the jail is overridden by it, one after
// overrides it), with += appending and $name / ${name} expanded as jail(8)
// does. User variables ($var = ...;) are used for expansion but not
// returned. "name" is always the jail's name.
func (c *Config) Resolve(name string) (map[string][]string, error) {
	if c.Jail(name) == nil || isWildcard(name) {
		return nil, fmt.Errorf("jail %q not found", name)
	}
	ps := c.applying(name)

	// Raw values first, so a reference sees the final assignment, as
	// jail(8) expands after the whole file is read.
	type entry struct {
		p    Param
		vals [][]piece
	}
	raw := map[string]*entry{}
	var order []string
	for _, p := range ps {
		e, ok := raw[p.Name]
		if !ok {
			e = &entry{}
			raw[p.Name] = e
			order = append(order, p.Name)
		}
		if p.Append {
			e.vals = append(e.vals, p.parts...)
		} else {
			e.vals = append([][]piece(nil), p.parts...)
		}
		e.p = p
	}
	raw["name"] = &entry{p: Param{Name: "name"}, vals: [][]piece{{{text: name}}}}
	if _, ok := raw["name"]; ok && !contains(order, "name") {
		order = append(order, "name")
	}

	out := map[string][]string{}
	var expand func(key string, depth int) ([]string, error)
	expand = func(key string, depth int) ([]string, error) {
		if v, ok := out[key]; ok {
			return v, nil
		}
		e := raw[key]
		if depth > 32 {
			return nil, &ResolveError{Jail: name, File: e.p.File, Line: e.p.Line, Msg: fmt.Sprintf("variable %q refers to itself", key)}
		}
		vals := make([]string, 0, len(e.vals))
		for _, val := range e.vals {
			var b strings.Builder
			for _, pc := range val {
				if !pc.isVar {
					b.WriteString(pc.text)
					continue
				}
				ref := pc.text
				if _, ok := raw[ref]; !ok {
					ref = "$" + pc.text
				}
				if _, ok := raw[ref]; !ok {
					return nil, &ResolveError{Jail: name, File: e.p.File, Line: e.p.Line, Msg: fmt.Sprintf("unknown variable %q", pc.text)}
				}
				sub, err := expand(ref, depth+1)
				if err != nil {
					return nil, err
				}
				b.WriteString(strings.Join(sub, ","))
			}
			vals = append(vals, b.String())
		}
		out[key] = vals
		return vals, nil
	}
	res := map[string][]string{}
	for _, k := range order {
		v, err := expand(k, 0)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(k, "$") {
			res[k] = v
		}
	}
	return res, nil
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func sortBySeq(ps []Param) {
	// insertion sort: lists are short and nearly sorted
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].seq < ps[j-1].seq; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}
