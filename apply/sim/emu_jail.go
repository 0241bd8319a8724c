package sim

import (
	"encoding/json"
	"errors"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/policy/jailconf"
)

// readJailConf parses a jail.conf (a real path) with its .include files,
// as jail(8) reads it.
func (c *cmd) readJailConf(real string) (*jailconf.Config, error) {
	src, err := os.ReadFile(real)
	if err != nil {
		return nil, err
	}
	c.inRoot = strings.HasPrefix(real, c.h.root+string(os.PathSeparator))
	return jailconf.ParseOptions(real, src, jailconf.Options{
		ReadFile: func(p string) ([]byte, error) { return os.ReadFile(c.filePath(p)) },
		Glob: func(pat string) ([]string, error) {
			m, err := filepath.Glob(c.filePath(pat))
			if c.inRoot {
				for i := range m {
					m[i] = "/" + filepath.ToSlash(strings.TrimPrefix(m[i], c.h.root+string(filepath.Separator)))
				}
			}
			return m, err
		},
	})
}

// printJailErr prints a jail.conf problem as jail(8) does:
// `jail: FILE line N: msg`.
func (c *cmd) printJailErr(err error, hostName func(string) string) {
	var list policy.ErrorList
	var re *jailconf.ResolveError
	switch {
	case errors.As(err, &list):
		for _, e := range list {
			c.errf("jail: %s line %d: %s\n", hostName(e.File), e.Line, e.Msg)
		}
	case errors.As(err, &re):
		c.errf("jail: %s line %d: jail %s: %s\n", hostName(re.File), re.Line, re.Jail, re.Msg)
	default:
		c.errf("jail: %v\n", err)
	}
}

// jailCmd implements jail(8): -e SEP (list), -c NAME (create, running
// the exec hooks and moving vnet.interface in, in jail.c's startcommands
// order) and -r NAME (remove). Exit 1 if any jail failed.
func (c *cmd) jailCmd(args []string) int {
	var create, remove, quiet, printJID bool
	sep, conf := "", ""
	listMode := false
	var names []string
	for n := 0; n < len(args); n++ {
		a := args[n]
		if !strings.HasPrefix(a, "-") {
			names = append(names, a)
			continue
		}
		for fi := 1; fi < len(a); fi++ {
			switch a[fi] {
			case 'c':
				create = true
			case 'r':
				remove = true
			case 'q':
				quiet = true
			case 'i':
				printJID, quiet = true, true
			case 'v', 'm', 'R':
			case 'f', 'e', 'J', 'p':
				if n+1 >= len(args) {
					c.errf("jail: option requires an argument -- %c\n", a[fi])
					return 1
				}
				n++
				switch a[fi] {
				case 'f':
					conf = args[n]
				case 'e':
					sep, listMode = args[n], true
				}
				fi = len(a)
			default:
				c.errf("usage: jail [-dhilqv] [-J jid_file] [-u username] [-U username] -[cmr] param=value ... [command=command ...]\n")
				return 1
			}
		}
	}
	realConf := c.argPath(conf)
	if conf == "" {
		realConf = c.jailPath("/etc/jail.conf")
		conf = "/etc/jail.conf"
	}
	if listMode {
		return c.jailList(realConf, conf, sep)
	}
	code := 0
	if remove {
		for _, n := range names {
			if !c.jailRemove(realConf, n, quiet) {
				code = 1
			}
		}
	}
	if create {
		for _, n := range names {
			if !c.jailCreate(realConf, n, quiet, printJID) {
				code = 1
			}
		}
	}
	return code
}

// jailList is jail -f CONF -e SEP: one line per jail with its
// parameters; problems go to stderr and, as jail(8) does, the exit
// status is still 0 (FREEBSD.md errata 6). A syntax error exits 1.
func (c *cmd) jailList(real, shown, sep string) int {
	cfg, err := c.readJailConf(real)
	if err != nil {
		if os.IsNotExist(err) {
			c.errf("jail: %s: No such file or directory\n", shown)
		} else {
			c.printJailErr(err, func(s string) string { return s })
		}
		return 1
	}
	for _, n := range cfg.Names() {
		params, err := cfg.Resolve(n)
		if err != nil {
			c.printJailErr(err, func(s string) string { return s })
			continue
		}
		var keys []string
		for k := range params {
			if k != "name" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		parts := []string{"name=" + n}
		for _, k := range keys {
			v := params[k]
			if len(v) == 0 {
				parts = append(parts, k)
				continue
			}
			val := strings.Join(v, ",")
			if strings.ContainsAny(val, " \t") {
				val = strconv.Quote(val)
			}
			parts = append(parts, k+"="+val)
		}
		c.out("%s\n", strings.Join(parts, sep))
	}
	return 0
}

// jailParams resolves one jail of the config.
func (c *cmd) jailParams(real, name string) (map[string][]string, bool) {
	cfg, err := c.readJailConf(real)
	if err != nil {
		if os.IsNotExist(err) {
			c.errf("jail: %s: No such file or directory\n", real)
		} else {
			c.printJailErr(err, c.unroot)
		}
		return nil, false
	}
	if cfg.Jail(name) == nil {
		c.errf("jail: \"%s\" not found\n", name)
		return nil, false
	}
	params, err := cfg.Resolve(name)
	if err != nil {
		c.printJailErr(err, c.unroot)
		return nil, false
	}
	return params, true
}

// unroot maps a real path back to the host path it stands for.
func (c *cmd) unroot(p string) string {
	if strings.HasPrefix(p, c.h.root+string(filepath.Separator)) {
		return "/" + filepath.ToSlash(strings.TrimPrefix(p, c.h.root+string(filepath.Separator)))
	}
	return p
}

// hooks runs an exec.* parameter's commands on the host; jail(8) stops at
// the first that fails: `jail: NAME: CMD: failed`.
func (c *cmd) hooks(name string, params map[string][]string, key string) bool {
	for _, line := range params[key] {
		host := &cmd{h: c.h, k: c.k, ctx: c.ctx, inRoot: true}
		code := host.runLine(line)
		c.stdout.WriteString(host.stdout.String())
		c.stderr.WriteString(host.stderr.String())
		if code != 0 {
			c.errf("jail: %s: %s: failed\n", name, line)
			return false
		}
	}
	return true
}

func yesParam(params map[string][]string, key string) bool {
	v, ok := params[key]
	return ok && (len(v) == 0 || v[0] == "new" || v[0] == "true" || v[0] == "1")
}

// jailCreate is jail -c NAME.
func (c *cmd) jailCreate(real, name string, quiet, printJID bool) bool {
	params, ok := c.jailParams(real, name)
	if !ok {
		return false
	}
	if j := c.k.Jails[name]; j != nil && !j.Dying {
		c.errf("jail: \"%s\" already exists\n", name)
		return false
	}
	p := ""
	if v := params["path"]; len(v) == 1 {
		p = v[0]
	}
	if !path.IsAbs(p) {
		c.errf("jail: %s: path %s: not an absolute pathname\n", name, p)
		return false
	}
	if fi, err := os.Stat(hostPath(c.h.root, p)); err != nil || !fi.IsDir() {
		c.errf("jail: %s: path %s: No such file or directory\n", name, p)
		return false
	}
	if !c.hooks(name, params, "exec.prestart") {
		return false
	}
	j := &Jail{Name: name, JID: c.k.NextJID, Path: path.Clean(p), Vnet: yesParam(params, "vnet"), Started: time.Now().UTC()}
	if v := params["host.hostname"]; len(v) > 0 {
		j.Hostname = v[0]
	} else {
		j.Hostname = name
	}
	for _, a := range append(params["ip4.addr"], params["ip6.addr"]...) {
		if _, after, ok := strings.Cut(a, "|"); ok {
			a = after
		}
		a, _, _ = strings.Cut(strings.TrimSpace(a), "/")
		j.IPv4 = append(j.IPv4, a)
	}
	if old := c.k.Jails[name]; old != nil && old.Dying {
		delete(c.k.Jails, name) // the dying prison keeps its vnet interfaces
	}
	c.k.NextJID++
	c.k.Jails[name] = j
	if j.Vnet {
		c.k.putIface(&Iface{Name: "lo0", Kind: "lo", MTU: 16384, Vnet: name})
	}
	if printJID {
		c.out("%d\n", j.JID)
	} else if !quiet {
		c.out("%s: created\n", name)
	}
	fail := func() bool {
		c.destroyJail(j)
		return false
	}
	if !c.hooks(name, params, "exec.created") {
		return fail()
	}
	if j.Vnet {
		for _, ifn := range params["vnet.interface"] {
			host := &cmd{h: c.h, k: c.k, ctx: c.ctx, inRoot: true}
			if host.run([]string{"ifconfig", ifn, "vnet", name}) != 0 {
				c.stderr.WriteString(host.stderr.String())
				c.errf("jail: %s: /sbin/ifconfig %s vnet %s: failed\n", name, ifn, name)
				return fail()
			}
		}
	}
	for _, line := range params["exec.start"] {
		in := &cmd{h: c.h, k: c.k, ctx: c.ctx, jail: name, inRoot: true}
		if in.runLine(line) != 0 {
			c.stderr.WriteString(in.stderr.String())
			c.errf("jail: %s: %s: failed\n", name, line)
			return fail()
		}
		c.stdout.WriteString(in.stdout.String())
		c.stderr.WriteString(in.stderr.String())
	}
	if !c.hooks(name, params, "exec.poststart") {
		return fail()
	}
	return true
}

// jailRemove is jail -r NAME: exec.prestop, exec.stop in the jail, the
// removal (vnet interfaces go back to the host), exec.poststop.
func (c *cmd) jailRemove(real, name string, quiet bool) bool {
	j := c.k.Jails[name]
	if j == nil || j.Dying {
		c.errf("jail: \"%s\" not found\n", name)
		return false
	}
	params, ok := c.jailParams(real, name)
	if !ok {
		params = map[string][]string{}
	}
	c.hooks(name, params, "exec.prestop")
	for _, line := range params["exec.stop"] {
		in := &cmd{h: c.h, k: c.k, ctx: c.ctx, jail: name, inRoot: true}
		in.runLine(line)
	}
	c.destroyJail(j)
	if !quiet {
		c.out("%s: removed\n", name)
	}
	return c.hooks(name, params, "exec.poststop")
}

// destroyJail stops what runs in j and removes it; its vnet interfaces
// return to the host, its own lo0 and routes go.
func (c *cmd) destroyJail(j *Jail) {
	c.jailShutdown(j)
	for _, i := range c.k.Ifaces {
		if i.Vnet != j.Name {
			continue
		}
		if i.Kind == "lo" {
			c.k.delIface(i)
			continue
		}
		c.k.moveIface(i, "")
	}
	for fib, rs := range c.k.Routes {
		var keep []Route
		for _, r := range rs {
			if r.Vnet != j.Name {
				keep = append(keep, r)
			}
		}
		c.k.Routes[fib] = keep
	}
	delete(c.k.Jails, j.Name)
}

// findJail finds a jail by name or jid.
func (c *cmd) findJail(s string) *Jail {
	if j := c.k.Jails[s]; j != nil {
		return j
	}
	if n, err := strconv.Atoi(s); err == nil {
		for _, j := range c.k.Jails {
			if j.JID == n {
				return j
			}
		}
	}
	return nil
}

// jls implements jls(8): the default table, -N, -j, -d, -q, -v, named
// parameters, and --libxo json (JLS_XO_VERSION 2). A dying jail named by
// -j fails with `jls: jail "NAME" is dying` unless -d (FREEBSD.md
// errata 3).
func (c *cmd) jls(args []string) int {
	var dying, nameCol, verbose, json_ bool
	sel := ""
	var params []string
	for n := 0; n < len(args); n++ {
		a := args[n]
		switch {
		case a == "--libxo":
			if n+1 < len(args) {
				n++
				json_ = strings.HasPrefix(args[n], "json")
			}
		case strings.HasPrefix(a, "--libxo="):
			json_ = strings.HasPrefix(strings.TrimPrefix(a, "--libxo="), "json")
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for fi := 1; fi < len(a); fi++ {
				switch a[fi] {
				case 'd':
					dying = true
				case 'N':
					nameCol = true
				case 'v':
					verbose = true
				case 'j':
					if n+1 >= len(args) {
						c.errf("jls: option requires an argument -- j\n")
						return 1
					}
					n++
					sel = args[n]
					fi = len(a)
				case 'h', 'n', 'q', 's':
				}
			}
		default:
			params = append(params, a)
		}
	}
	var jails []*Jail
	if sel != "" {
		j := c.findJail(sel)
		if j == nil {
			c.errf("jls: jail \"%s\" not found\n", sel)
			return 1
		}
		if j.Dying && !dying {
			c.errf("jls: jail \"%s\" is dying\n", sel)
			return 1
		}
		jails = []*Jail{j}
	} else {
		for _, j := range c.k.Jails {
			if !j.Dying || dying {
				jails = append(jails, j)
			}
		}
		sort.Slice(jails, func(a, b int) bool { return jails[a].JID < jails[b].JID })
	}
	if json_ {
		var list []map[string]any
		for _, j := range jails {
			m := map[string]any{}
			switch {
			case len(params) > 0:
				for _, p := range params {
					m[p] = jailParam(j, p)
				}
			case verbose:
				state := "ACTIVE"
				if j.Dying {
					state = "DYING"
				}
				m["jid"], m["hostname"], m["path"], m["name"], m["state"] = j.JID, j.Hostname, j.Path, j.Name, state
				m["cpusetid"] = j.JID + 1
				m["ipv4_addrs"], m["ipv6_addrs"] = nonNil(j.IPv4), []string{}
			default:
				if nameCol {
					m["name"] = j.Name
				} else {
					m["jid"] = j.JID
				}
				m["ipv4"], m["hostname"], m["path"] = first(j.IPv4), j.Hostname, j.Path
			}
			list = append(list, m)
		}
		b, _ := json.Marshal(map[string]any{"__version": "2", "jail-information": map[string]any{"jail": nonNilMaps(list)}})
		c.out("%s\n", b)
		return 0
	}
	if len(params) > 0 {
		for _, j := range jails {
			var vals []string
			for _, p := range params {
				v := jailParam(j, p)
				if v == "" {
					v = "-"
				}
				vals = append(vals, v)
			}
			c.out("%s\n", strings.Join(vals, " "))
		}
		return 0
	}
	c.out("   JID  IP Address      Hostname                      Path\n")
	for _, j := range jails {
		id := strconv.Itoa(j.JID)
		if nameCol {
			id = j.Name
		}
		c.out("%6s  %-15.15s %-29.29s %s\n", id, first(j.IPv4), j.Hostname, j.Path)
	}
	return 0
}

func jailParam(j *Jail, p string) string {
	switch p {
	case "jid":
		return strconv.Itoa(j.JID)
	case "name":
		return j.Name
	case "path":
		return j.Path
	case "host.hostname", "hostname":
		return j.Hostname
	case "vnet":
		if j.Vnet {
			return "new"
		}
		return "inherit"
	case "dying":
		return strconv.FormatBool(j.Dying)
	case "ip4.addr":
		return strings.Join(j.IPv4, ",")
	}
	return ""
}

func first(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func nonNilMaps(l []map[string]any) []map[string]any {
	if l == nil {
		return []map[string]any{}
	}
	return l
}

// jexec runs a command in a jail (emulated commands only).
func (c *cmd) jexec(args []string) int {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		if args[0] == "-U" || args[0] == "-u" {
			args = args[1:]
		}
		args = args[1:]
	}
	if len(args) < 2 {
		c.errf("usage: jexec [-l] [-d working-directory] [[-e name=value]\n")
		return 1
	}
	j := c.findJail(args[0])
	if j == nil || j.Dying {
		c.errf("jexec: jail \"%s\" not found\n", args[0])
		return 1
	}
	in := &cmd{h: c.h, k: c.k, ctx: c.ctx, jail: j.Name, inRoot: true}
	code := in.run(args[1:])
	c.stdout.WriteString(in.stdout.String())
	c.stderr.WriteString(in.stderr.String())
	return code
}
