package sim

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/apply/freebsd/layout"
	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/policy/pf"
)

// pfctl implements the pfctl(8) commands rigger uses, checking rulesets
// with policy/pf: -n -f, -f, -s info|rules|Tables|Running, -e, -d,
// -F all|rules|Tables, and -t T -T add|delete|replace|show|flush|kill.
// Formats and exit codes from FREEBSD.md 1.3-1.5 (sbin/pfctl/pfctl.c,
// pfctl_table.c).
func (c *cmd) pfctl(args []string) int {
	var (
		noop, quiet, verbose, enable, disable bool
		file, show, flush, table, tcmd        string
		rest                                  []string
	)
	for n := 0; n < len(args); n++ {
		a := args[n]
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		flags := a[1:]
		for fi := 0; fi < len(flags); fi++ {
			f := flags[fi]
			arg := func() (string, bool) {
				if fi+1 < len(flags) {
					v := flags[fi+1:]
					fi = len(flags)
					return v, true
				}
				if n+1 < len(args) {
					n++
					return args[n], true
				}
				c.errf("pfctl: option requires an argument -- %c\n", f)
				return "", false
			}
			var ok = true
			switch f {
			case 'n':
				noop = true
			case 'q':
				quiet = true
			case 'v':
				verbose = true
			case 'e':
				enable = true
			case 'd':
				disable = true
			case 'f':
				file, ok = arg()
			case 's':
				show, ok = arg()
			case 'F':
				flush, ok = arg()
			case 't':
				table, ok = arg()
			case 'T':
				tcmd, ok = arg()
			case 'o', 'a', 'D':
				_, ok = arg()
			}
			if !ok {
				return 1
			}
		}
	}
	if c.jail != "" {
		c.errf("pfctl: /dev/pf: No such file or directory\n")
		return 1
	}
	if (table == "") != (tcmd == "") {
		c.errf("usage: pfctl [-AdeghMmNnOPqRSrvz] [-a anchor] [-D macro=value] [-F modifier]\n")
		return 1
	}
	// pfctl opens /dev/pf first; without pf.ko that fails, except for a
	// syntax check, which FreeBSD 14 runs without the device (FREEBSD.md
	// errata 8).
	if !c.k.hasModule("pf") && !(noop && file != "" && tcmd == "") {
		c.errf("pfctl: Failed to open netlink: No such file or directory\n")
		return 1
	}
	if tcmd != "" {
		return c.pfTable(table, tcmd, file, rest, quiet)
	}
	if noop {
		// -n turns off -e, -d, -F and -s.
		if file == "" {
			return 0
		}
		rs, code := c.pfParse(file)
		if code != 0 {
			return code
		}
		if verbose {
			c.out("%s", rs.Normalized())
		}
		return 0
	}
	code := 0
	if flush != "" {
		switch {
		case strings.HasPrefix("all", flush), strings.HasPrefix("rules", flush):
			c.k.PF.Rules = nil
			if flush[0] == 'a' {
				c.k.PF.Tables = nil
			}
			if !quiet {
				c.errf("rules cleared\n")
			}
		case strings.HasPrefix("Tables", flush):
			n := len(c.k.PF.Tables)
			c.k.PF.Tables = nil
			if !quiet {
				c.errf("%d tables deleted.\n", n)
			}
		case strings.HasPrefix("states", flush), strings.HasPrefix("Sources", flush), strings.HasPrefix("info", flush):
		default:
			c.errf("pfctl: Unknown flush modifier '%s'\n", flush)
			return 1
		}
	}
	if file != "" {
		rs, code := c.pfParse(file)
		if code != 0 {
			c.errf("pfctl: Syntax error in config file: pf rules not loaded\n")
			return code
		}
		c.pfLoad(file, rs)
	}
	if enable {
		if c.k.PF.Enabled {
			c.errf("pfctl: pf already enabled\n")
			code = 1
		} else {
			c.k.PF.Enabled, c.k.PF.Since = true, time.Now().UTC()
			if !quiet {
				c.errf("pf enabled\n")
			}
		}
	}
	if disable {
		if !c.k.PF.Enabled {
			c.errf("pfctl: pf not enabled\n")
			code = 1
		} else {
			c.k.PF.Enabled = false
			if !quiet {
				c.errf("pf disabled\n")
			}
		}
	}
	if show != "" {
		switch {
		case show == "info" || show == "i":
			status := "Disabled"
			d := time.Duration(0)
			if c.k.PF.Enabled {
				status = "Enabled"
				d = time.Since(c.k.PF.Since)
			}
			s := int(d.Seconds())
			line := fmt.Sprintf("Status: %s for %d days %02d:%02d:%02d", status, s/86400, s/3600%24, s/60%60, s%60)
			c.out("%-44s%15s\n\n", line, "Debug: Urgent")
			c.out("State Table                          Total             Rate\n")
			c.out("  current entries                        0               \n")
		case strings.HasPrefix("rules", show) || strings.HasPrefix("Running", show) && show[0] == 'R':
			if show[0] == 'R' {
				if c.k.PF.Enabled {
					c.out("Enabled\n")
					return code
				}
				c.out("Disabled\n")
				return 1
			}
			for _, r := range c.k.PF.Rules {
				c.out("%s\n", r)
			}
		case strings.HasPrefix("Tables", show) && show[0] == 'T':
			for _, n := range sortedTables(c.k.PF.Tables) {
				c.out("%s\n", n)
			}
		default:
			c.errf("pfctl: Unknown show modifier '%s'\n", show)
			return 1
		}
	}
	return code
}

func sortedTables(m map[string]*Table) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// pfParse parses file as pfctl -nf does; errors go to stderr as
// FILE:LINE: msg, exit 1.
func (c *cmd) pfParse(file string) (*pf.Ruleset, int) {
	real := c.argPath(file)
	src, err := os.ReadFile(real)
	if err != nil {
		c.errf("pfctl: %s: %s\n", file, errText(err))
		return nil, 1
	}
	// Paths in a file the driver staged were made real by it; those in
	// the installed /etc/pf.conf are host paths.
	c.inRoot = strings.HasPrefix(real, c.h.root+string(os.PathSeparator))
	rs, err := pf.Parse(file, src, pf.Options{ReadFile: func(p string) ([]byte, error) { return os.ReadFile(c.filePath(p)) }})
	if err != nil {
		var list policy.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				c.errf("%s\n", e.Error())
			}
		} else {
			c.errf("%s\n", err)
		}
		return nil, 1
	}
	return rs, 0
}

// pfLoad replaces the loaded ruleset. A table declared with addresses or
// a file gets those contents; one declared empty keeps what the kernel
// holds (FREEBSD.md 1.6); tables created at run time stay.
func (c *cmd) pfLoad(file string, rs *pf.Ruleset) {
	var rules []string
	for _, r := range rs.AllRules() {
		switch r.Kind {
		case "option", "scrub", "altq", "queue", "nat", "rdr", "binat":
			continue
		}
		rules = append(rules, r.Text)
	}
	old := c.k.PF.Tables
	tables := map[string]*Table{}
	for n, t := range old {
		if t.Persist {
			tables[n] = t
		}
	}
	for _, t := range rs.Tables {
		nt := &Table{Const: t.Const, Persist: t.Persist, Addrs: []string{}}
		if len(t.Addrs) == 0 && len(t.Files) == 0 {
			if o := old[t.Name]; o != nil {
				nt.Addrs = o.Addrs
			}
		}
		nt.Addrs = append(nt.Addrs, t.Addrs...)
		for _, f := range t.Files {
			b, err := os.ReadFile(c.filePath(f))
			if err != nil {
				continue // the parse already read it
			}
			addrs, _ := layout.ParseTableFile(f, b)
			nt.Addrs = append(nt.Addrs, addrs...)
		}
		tables[t.Name] = nt
	}
	c.k.PF.Rules, c.k.PF.Tables, c.k.PF.Conf = rules, tables, file
}

// pfTable is pfctl -t T -T CMD.
func (c *cmd) pfTable(name, tcmd, file string, addrs []string, quiet bool) int {
	msg := func(format string, a ...any) {
		if !quiet {
			c.errf(format, a...)
		}
	}
	if file != "" {
		b, err := os.ReadFile(c.argPath(file))
		if err != nil {
			c.errf("pfctl: cannot load %s: %s\n", file, errText(err))
			return 1
		}
		more, err := layout.ParseTableFile(file, b)
		if err != nil {
			c.errf("pfctl: %v\n", err)
			return 1
		}
		addrs = append(addrs, more...)
	}
	if c.k.PF.Tables == nil {
		c.k.PF.Tables = map[string]*Table{}
	}
	t := c.k.PF.Tables[name]
	create := func() {
		t = &Table{Persist: true, Addrs: []string{}}
		c.k.PF.Tables[name] = t
		msg("1 table created.\n")
	}
	notExist := func() int {
		c.errf("pfctl: Table does not exist.\n")
		return 255
	}
	switch {
	case strings.HasPrefix("show", tcmd):
		if t == nil {
			return notExist()
		}
		for _, a := range t.Addrs {
			neg := " "
			if strings.HasPrefix(a, "!") {
				neg, a = "!", a[1:]
			}
			c.out("  %s%s\n", neg, a)
		}
		return 0
	case strings.HasPrefix("kill", tcmd):
		if t == nil {
			return notExist()
		}
		delete(c.k.PF.Tables, name)
		msg("1 table deleted.\n")
		return 0
	}
	if t != nil && t.Const {
		c.errf("pfctl: Operation not permitted.\n")
		return 255
	}
	switch {
	case strings.HasPrefix("add", tcmd):
		if t == nil {
			create()
		}
		n := 0
		for _, a := range addrs {
			if !slices.Contains(t.Addrs, a) {
				t.Addrs = append(t.Addrs, a)
				n++
			}
		}
		msg("%d/%d addresses added.\n", n, len(addrs))
	case strings.HasPrefix("delete", tcmd):
		if t == nil {
			return notExist()
		}
		n := 0
		for _, a := range addrs {
			if slices.Contains(t.Addrs, a) {
				t.Addrs = slices.DeleteFunc(t.Addrs, func(x string) bool { return x == a })
				n++
			}
		}
		msg("%d/%d addresses deleted.\n", n, len(addrs))
	case strings.HasPrefix("flush", tcmd):
		if t == nil {
			return notExist()
		}
		msg("%d addresses deleted.\n", len(t.Addrs))
		t.Addrs = []string{}
	case strings.HasPrefix("replace", tcmd):
		if t == nil {
			create()
		}
		added, deleted := 0, 0
		for _, a := range addrs {
			if !slices.Contains(t.Addrs, a) {
				added++
			}
		}
		for _, a := range t.Addrs {
			if !slices.Contains(addrs, a) {
				deleted++
			}
		}
		t.Addrs = slices.Compact(slices.Clone(addrs))
		if added == 0 && deleted == 0 {
			msg("no changes.\n")
		}
		if added > 0 {
			msg("%d addresses added.\n", added)
		}
		if deleted > 0 {
			msg("%d addresses deleted.\n", deleted)
		}
	case strings.HasPrefix("test", tcmd):
		if t == nil {
			return notExist()
		}
		n := 0
		for _, a := range addrs {
			if slices.Contains(t.Addrs, a) {
				n++
			}
		}
		msg("%d/%d addresses match.\n", n, len(addrs))
		if n < len(addrs) {
			return 2
		}
	default:
		c.errf("pfctl: Unknown table command '%s'\n", tcmd)
		return 1
	}
	return 0
}
