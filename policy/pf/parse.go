package pf

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rigger-bsd/rigger/policy"
)

// Section order pfctl enforces (set require-order yes, the default).
const (
	stateOption = iota
	stateEther
	stateScrub
	stateQueue
	stateNat
	stateFilter
)

const orderMsg = "Rules must be in order: options, ethernet, normalization, queueing, translation, filtering"

const (
	maxIncludeDepth = 16
	maxIncludes     = 256 // include loops stop here
)

// skipLine unwinds a statement after its error was reported.
type skipLine struct{}

type parser struct {
	opts          Options
	rs            *Ruleset
	errs          ErrorList
	macros        map[string]string
	macroList     []*Macro
	macroUses     map[string]int
	tables        map[string]*Table
	limiterIDs    map[string]string
	rulestate     int
	requireOrder  bool
	blockPolicy   string // "drop" or "return"
	nr            int    // rule number for label macros
	lx            *lexer
	file          string
	tok           token
	depth         int
	includes      int
	warned        map[string]bool // warnings already recorded
	etherBody     bool            // inside an ether anchor's braces: only ether rules
	stateDefaults bool            // set state-defaults was given
}

func newParser(opts Options) *parser {
	return &parser{
		opts:         opts,
		rs:           &Ruleset{TableRefs: map[string]int{}},
		macros:       map[string]string{},
		macroUses:    map[string]int{},
		tables:       map[string]*Table{},
		limiterIDs:   map[string]string{},
		requireOrder: true,
		blockPolicy:  "drop",
		warned:       map[string]bool{},
	}
}

func (p *parser) errAt(line int, msg string) {
	if len(p.errs) < 1000 {
		p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: msg})
	}
}

// warn records a name that must resolve on the host, once per line.
func (p *parser) warn(line int, msg string) {
	k := fmt.Sprintf("%s:%d: %s", p.file, line, msg)
	if p.warned[k] {
		return
	}
	p.warned[k] = true
	if len(p.rs.Warnings) < 1000 {
		p.rs.Warnings = append(p.rs.Warnings, &Error{File: p.file, Line: line, Msg: msg})
	}
}

// fail reports msg at the current token's line and abandons the statement.
func (p *parser) fail(format string, a ...any) {
	p.errAt(p.tok.line, fmt.Sprintf(format, a...))
	panic(skipLine{})
}

// syntax reports a syntax error naming the token the parser stopped at,
// which pfctl's yyerror does not do but an operator needs.
// needs15 rejects syntax that only FreeBSD 15's pfctl parses (the
// OpenBSD-style translation options and state limiters) when checking
// for FreeBSD 14, whose parse.y has none of these tokens.
func (p *parser) needs15(what string) {
	if p.opts.Release.Or() < policy.Release15 {
		p.fail("%s needs FreeBSD 15", what)
	}
}

// after140 warns, for a FreeBSD 14 host, about syntax that 14.0's
// parse.y (freebsd-src 01c44736: not in its lookup() keyword table)
// does not know. Later 14 releases may carry it (stable/14 merges we
// could not read), so it is a warning, not a refusal: a false rejection
// is worse than a check the host's pfctl -nf still makes.
func (p *parser) after140(what string) {
	if p.opts.Release.Or() < policy.Release15 {
		p.warn(p.tok.line, what+" is not in FreeBSD 14.0's pfctl: the host must run a later 14 release that has it")
	}
}

// rtable reads an rtable id. parse.y refuses ids above rt_tableid_max(),
// the host's net.fibs - 1 (sysctl, read when pfctl parses; 1 fib by
// default), so a non-zero id is a warning offline.
func (p *parser) rtable() string {
	n := p.number(0, 65535, "rtable")
	if n > 0 {
		p.warn(p.tok.line, fmt.Sprintf("rtable %d needs net.fibs above %d on the host (pfctl checks it; the default is 1)", n, n))
	}
	return strconv.FormatInt(n, 10)
}

func (p *parser) syntax() {
	switch p.tok.kind {
	case tkNL:
		p.fail("syntax error at end of line")
	case tkEOF:
		p.fail("syntax error at end of file")
	}
	p.fail("syntax error near %q", p.tok.s)
}

func (p *parser) next() token {
	t := p.tok
	p.tok = p.lx.next()
	if p.tok.kind == tkError {
		panic(skipLine{}) // the lexer reported it
	}
	return t
}

func (p *parser) isWord(s string) bool { return p.tok.kind == tkWord && p.tok.s == s }
func (p *parser) isP(s string) bool    { return p.tok.kind == tkPunct && p.tok.s == s }

func (p *parser) accept(s string) bool {
	if p.isWord(s) || p.isP(s) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expect(s string) {
	if !p.accept(s) {
		p.syntax()
	}
}

// oneOf reads one of the given words; another token is a syntax error
// near that token.
func (p *parser) oneOf(words ...string) string {
	if p.tok.kind == tkWord || p.tok.kind == tkString {
		for _, w := range words {
			if p.tok.s == w {
				return p.next().s
			}
		}
	}
	p.syntax()
	return ""
}

// str reads a word or quoted string.
func (p *parser) str() string {
	if p.tok.kind != tkWord && p.tok.kind != tkString {
		p.syntax()
	}
	return p.next().s
}

func (p *parser) number(min, max int64, what string) int64 {
	if p.tok.kind != tkWord {
		p.syntax()
	}
	n, err := strconv.ParseInt(p.tok.s, 0, 64)
	if err != nil {
		p.syntax()
	}
	if n < min || n > max {
		p.fail("%s out of range", what)
	}
	p.next()
	return n
}

func (p *parser) skipNL() {
	for p.tok.kind == tkNL {
		p.next()
	}
}

func (p *parser) emit(r *Rule, out *[]*Rule, depth int) {
	*out = append(*out, r)
	switch r.Kind {
	case "option", "altq", "queue", "limiter":
		p.addLine(strings.Repeat("  ", depth) + r.Text)
	case "ether":
		if depth == 0 {
			// an ether anchor's rules are printed with it
			p.printEther(r, 0)
		}
	}
	if depth == 0 {
		p.rs.Rules = append(p.rs.Rules, r)
	}
}

// printEther prints an ether rule, and an inline ether anchor's rules in
// braces, as pfctl_load_eth_rule does with -v.
func (p *parser) printEther(r *Rule, depth int) {
	indent := strings.Repeat("  ", depth)
	if !r.body {
		p.addLine(indent + r.Text)
		return
	}
	p.addLine(indent + r.Text + " {")
	for _, c := range r.Anchor {
		p.printEther(c, depth+1)
	}
	p.addLine(indent + "}")
}

// parseFile parses one file's statements into out (nil: top level).
func (p *parser) parseFile(name string, src []byte, out *[]*Rule, depth int) {
	saveLx, saveFile, saveTok := p.lx, p.file, p.tok
	p.lx = &lexer{src: src, line: 1, file: name, macros: p.macros, used: p.macroUses,
		errf: func(line int, msg string) { p.errAt(line, msg) }}
	p.file = name
	p.tok = token{kind: tkNL}
	var rules []*Rule
	if out == nil {
		out = &rules
	}
	p.advanceSafe()
	p.stmts(out, depth, false)
	p.lx, p.file, p.tok = saveLx, saveFile, saveTok
}

// advanceSafe moves to the next usable token, skipping lexer errors.
func (p *parser) advanceSafe() {
	for {
		p.tok = p.lx.next()
		if p.tok.kind != tkError {
			return
		}
	}
}

// stmts parses statements until EOF, or '}' inside an inline anchor.
func (p *parser) stmts(out *[]*Rule, depth int, inAnchor bool) {
	for {
		switch {
		case p.tok.kind == tkEOF:
			return
		case p.tok.kind == tkNL:
			p.advanceSafe()
			continue
		case inAnchor && p.isP("}"):
			return
		}
		if !p.statement(out, depth, inAnchor) {
			// skip to the end of the line, as pfctl's "error '\n'" rule does
			for p.tok.kind != tkNL && p.tok.kind != tkEOF {
				p.advanceSafe()
			}
		}
	}
}

// statement parses one statement; false after an error.
func (p *parser) statement(out *[]*Rule, depth int, inAnchor bool) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, skip := r.(skipLine); !skip {
				panic(r)
			}
			ok = false
		}
	}()
	t := p.tok
	if p.etherBody && !t.is("ether") {
		// parse.y etherpfa_anchorlist: etherrule and etheranchorrule only
		p.syntax()
	}
	if t.kind == tkWord {
		if nt := p.lx.peek(); nt.kind == tkPunct && nt.s == "=" && !keywords[t.s] {
			p.macroDef()
			p.endStmt(inAnchor)
			return true
		}
	}
	if t.kind != tkWord {
		p.syntax()
	}
	switch t.s {
	case "include":
		p.next()
		line := p.tok.line
		name := p.str()
		p.endStmt(inAnchor)
		p.include(name, line, out, depth)
		return true
	case "table":
		p.tableDef()
	case "set":
		p.setOption(out, depth)
	case "scrub":
		p.order(stateScrub)
		p.scrubRule(out, depth)
	case "altq":
		p.order(stateQueue)
		p.altq(out, depth)
	case "queue":
		p.order(stateQueue)
		p.queue(out, depth)
	case "no":
		if p.lx.peek().is("scrub") {
			// parse.y scrubaction: no SCRUB
			p.order(stateScrub)
			p.scrubRule(out, depth)
			break
		}
		p.order(stateNat)
		p.natRule(out, depth)
	case "nat", "rdr", "binat", "nat-anchor", "rdr-anchor", "binat-anchor":
		p.order(stateNat)
		p.natRule(out, depth)
	case "pass", "block", "match":
		if t.s == "match" && p.lx.peek().is("scrub") {
			p.order(stateScrub)
		} else {
			p.order(stateFilter)
		}
		p.filterRule(out, depth)
	case "anchor":
		p.order(stateFilter)
		p.filterRule(out, depth)
		return true // the anchor consumed its own end
	case "antispoof":
		p.order(stateFilter)
		p.antispoof(out, depth)
	case "load":
		p.loadAnchor()
	case "ether":
		p.order(stateEther)
		p.etherRule(out, depth)
	case "state", "source":
		p.limiter(out, depth)
	default:
		p.syntax()
	}
	p.endStmt(inAnchor)
	return true
}

func (p *parser) endStmt(inAnchor bool) {
	switch {
	case p.tok.kind == tkNL:
		p.advanceSafe()
	case p.tok.kind == tkEOF:
	case inAnchor && p.isP("}"):
	default:
		p.syntax()
	}
}

func (p *parser) order(state int) {
	if p.requireOrder && p.rulestate > state {
		p.fail(orderMsg)
	}
	p.rulestate = state
}

var keywords = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`all allow-opts altq anchor antispoof any bandwidth binat binat-anchor bitmask block
	block-policy buckets cbq code codelq debug divert-packet divert-reply divert-to drop drop-ovl dup-to
	ether fairq fastroute file fingerprints flags floating flush for fragment from global group hfsc
	hogs hostid icmp-type icmp6-type if-bound in include inet inet6 keep label limit linkshare load log
	loginterface map-e-portset match max max-mss max-src-conn max-src-conn-rate max-src-nodes
	max-src-states min-ttl modulate nat nat-anchor no no-df no-route no-sync on optimization os out
	overload pass port prio priq probability proto qlimit queue quick random random-id rdr rdr-anchor
	realtime reassemble reply-to require-order return return-icmp return-icmp6 return-rst ridentifier
	round-robin route route-to rtable rule ruleset-optimization scrub set skip sloppy source-hash
	source-track state state-defaults state-policy static-port sticky-address synproxy table tag tagged
	tbrsize timeout to tos ttl upperlimit urpf-failed user`) {
		keywords[k] = true
	}
}

// macroDef parses name = value value..., joined by blanks.
func (p *parser) macroDef() {
	name := p.next()
	p.next() // '='
	var parts []string
	for p.tok.kind == tkWord || p.tok.kind == tkString {
		parts = append(parts, p.next().s)
	}
	if len(parts) == 0 {
		p.syntax()
	}
	if p.tok.kind != tkNL && p.tok.kind != tkEOF {
		p.syntax()
	}
	v := strings.Join(parts, " ")
	p.macros[name.s] = v
	p.macroList = append(p.macroList, &Macro{Name: name.s, Value: v, File: p.file, Line: name.line})
	p.rs.lines = append(p.rs.lines, fmt.Sprintf("%s = \"%s\"", name.s, v))
}

func (p *parser) include(name string, line int, out *[]*Rule, depth int) {
	p.includes++
	if p.depth >= maxIncludeDepth || p.includes > maxIncludes {
		p.errAt(line, "too many includes (loop?) at "+name)
		return
	}
	src, err := p.opts.ReadFile(name)
	if err != nil {
		p.errAt(line, fmt.Sprintf("failed to include file %s (%s)", name, strerror(err)))
		return
	}
	p.depth++
	p.parseFile(name, src, out, depth)
	p.depth--
}

// loadAnchor parses load anchor NAME from "FILE": pfctl reads and parses
// the file after the main ruleset.
func (p *parser) loadAnchor() {
	p.next()
	p.expect("anchor")
	name := p.str()
	p.expect("from")
	file := p.str()
	if name == "" {
		p.fail("anchor name empty")
	}
	if p.depth >= maxIncludeDepth {
		p.fail("load anchor nested too deep")
	}
	src, err := p.opts.ReadFile(file)
	if err != nil {
		p.fail("cannot load anchor %s from %s: %s", name, file, strerror(err))
	}
	sub := newParser(p.opts)
	sub.depth = p.depth + 1
	sub.macros = p.macros
	sub.parseFile(file, src, nil, 0)
	p.errs = append(p.errs, sub.errs...)
	// what the anchor uses counts as used, for the lints
	for k, v := range sub.rs.TableRefs {
		p.rs.TableRefs[k] += v
	}
	for k, v := range sub.macroUses {
		p.macroUses[k] += v
	}
}

// ---- tables ----

func (p *parser) tableName() string {
	p.expect("<")
	name := p.str()
	p.expect(">")
	if len(name) >= 32 {
		p.fail("table name too long")
	}
	return name
}

func (p *parser) tableDef() {
	line := p.tok.line
	p.next()
	t := &Table{File: p.file, Line: line}
	t.Name = p.tableName()
	var parts []string
	var pending []string
	flush := func() {
		if len(pending) > 0 {
			parts = append(parts, "{ "+strings.Join(pending, " ")+" }")
			pending = nil
		}
	}
	for p.tok.kind != tkNL && p.tok.kind != tkEOF {
		switch {
		case p.accept("const"):
			t.Const = true
		case p.accept("persist"):
			t.Persist = true
		case p.accept("counters"):
			t.Counters = true
		case p.accept("file"):
			f := p.str()
			t.Files = append(t.Files, f)
			p.tableFile(f)
			flush()
			parts = append(parts, fmt.Sprintf("file \"%s\"", f))
		case p.isP("{"):
			// parse.y table_opt: '{' optnl host_list '}'; host_list
			// items are ipspecs, themselves braced lists (a list macro)
			for _, a := range braceList(p, listOpts{nested: true}, p.tableAddr) {
				t.Addrs = append(t.Addrs, a)
				pending = append(pending, a)
			}
		default:
			p.syntax()
		}
	}
	flush()
	if prev, dup := p.tables[t.Name]; dup && prev.File == t.File {
		p.errAt(line, fmt.Sprintf("table <%s> already defined", t.Name))
		panic(skipLine{})
	}
	p.tables[t.Name] = t
	p.rs.Tables = append(p.rs.Tables, t)
	head := fmt.Sprintf("table <%s>", t.Name)
	if t.Const {
		head += " const"
	}
	if t.Persist {
		head += " persist"
	}
	if t.Counters {
		head += " counters"
	}
	t.text = strings.Join(append([]string{head}, parts...), " ")
	p.rs.lines = append(p.rs.lines, t.text)
}

// tableAddr reads one table entry: [!]addr[/mask], an interface, a host.
func (p *parser) tableAddr() string {
	neg := p.accept("!")
	h := p.hostWord(true)
	var parts []string
	for _, a := range expandHosts([]hostItem{h}) {
		if neg {
			parts = append(parts, "!"+a.text)
		} else {
			parts = append(parts, a.text)
		}
	}
	return strings.Join(parts, " ")
}

// tableFile reads a table file now, as pfctl does even with -n.
func (p *parser) tableFile(name string) {
	src, err := p.opts.ReadFile(name)
	if err != nil {
		p.fail("cannot load \"%s\": %s", name, strerror(err))
	}
	for i, line := range strings.Split(string(src), "\n") {
		if j := strings.IndexAny(line, "#;"); j >= 0 {
			line = line[:j]
		}
		for _, f := range strings.Fields(line) {
			a := strings.TrimPrefix(f, "!")
			if !plausibleHost(a) {
				p.fail("cannot load \"%s\": Invalid argument (line %d: %q)", name, i+1, f)
			}
		}
	}
}

// ---- options ----

var timeoutNames = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`tcp.first tcp.opening tcp.established tcp.closing tcp.finwait tcp.closed
	tcp.tsdiff udp.first udp.single udp.multiple icmp.first icmp.error other.first other.single other.multiple
	sctp.first sctp.opening sctp.established sctp.closing sctp.closed
	frag interval src.track adaptive.start adaptive.end`) {
		timeoutNames[k] = true
	}
}

var limitNames = map[string]bool{"states": true, "frags": true, "src-nodes": true, "tables": true,
	"table-entries": true, "anchors": true, "eth-anchors": true}

// orderedOptions are the set options whose grammar action calls
// check_rulestate(PFCTL_STATE_OPTION) in sbin/pfctl/parse.y (freebsd-src
// 01c44736): only they must come before other rules, and only they move
// the section state. skip, state-policy, state-defaults, hostid,
// ruleset-optimization, require-order, keepcounters and syncookies may
// appear anywhere.
var orderedOptions = map[string]bool{"reassemble": true, "optimization": true, "timeout": true, "limit": true,
	"loginterface": true, "block-policy": true, "fail-policy": true, "fingerprints": true, "debug": true}

func (p *parser) setOption(out *[]*Rule, depth int) {
	line := p.tok.line
	p.next()
	if p.tok.kind == tkWord && orderedOptions[p.tok.s] {
		p.order(stateOption)
	}
	opt := p.str()
	var text string
	switch opt {
	case "fail-policy":
		// parse.y: SET FAILPOLICY DROP|RETURN (how a failed pass
		// rule's packet is answered); kept for the printed form only
		text = "set fail-policy " + p.oneOf("drop", "return")
	case "block-policy":
		v := p.oneOf("drop", "return")
		p.blockPolicy = v
		text = "set block-policy " + v
	case "optimization":
		v := p.str()
		switch v {
		case "default", "normal", "high-latency", "satellite", "aggressive", "conservative":
		default:
			p.fail("unknown optimization %s", v)
		}
		text = "set optimization " + v
	case "ruleset-optimization":
		v := p.str()
		if v != "none" && v != "basic" && v != "profile" {
			p.fail("unknown ruleset-optimization %s", v)
		}
		text = "set ruleset-optimization " + v
	case "timeout", "limit":
		names := timeoutNames
		if opt == "limit" {
			names = limitNames
		}
		item := func() string {
			k := p.str()
			if !names[k] {
				p.fail("unknown %s %s", opt, k)
			}
			return fmt.Sprintf("%s %d", k, p.number(0, 1<<32-1, opt+" value"))
		}
		items := braceList(p, listOpts{}, item)
		// pfctl prints one line per value
		for i, it := range items {
			if i > 0 {
				p.emit(&Rule{Kind: "option", File: p.file, Line: line, Text: "set " + opt + " " + items[i-1]}, out, depth)
			}
			text = "set " + opt + " " + it
		}
	case "loginterface", "state-policy", "debug", "hostid", "fingerprints", "keepcounters", "syncookies":
		var v []string
		switch opt {
		case "keepcounters":
		case "syncookies":
			// syncookie_val, then syncookie_opts: '(' STRING STRING
			// [comma ...] ')' with start/end and a percentage
			sv := p.str()
			if sv != "never" && sv != "adaptive" && sv != "always" {
				p.fail("illegal value for syncookies")
			}
			v = append(v, sv)
			if p.accept("(") {
				var items []string
				for {
					name := p.str()
					pct := p.str()
					f, err := strconv.ParseFloat(strings.TrimSuffix(pct, "%"), 64)
					if !strings.HasSuffix(pct, "%") || err != nil {
						p.syntax()
					}
					if f <= 0 || f > 100 {
						p.fail("illegal percentage value")
					}
					if name != "start" && name != "end" {
						p.fail("illegal syncookie option")
					}
					items = append(items, name+" "+pct)
					if p.accept(")") {
						break
					}
					p.accept(",")
				}
				v = append(v, "("+strings.Join(items, ", ")+")")
			}
		case "debug":
			// pfctl_set_debug (sbin/pfctl/pfctl.c): none, urgent,
			// misc, loud
			d := p.str()
			switch d {
			case "none", "urgent", "misc", "loud":
			default:
				p.fail("error setting debuglevel %s", d)
			}
			v = append(v, d)
		case "hostid":
			w := p.tok.s
			if p.number(0, 1<<32-1, "hostid") == 0 {
				p.fail("hostid must be non-zero")
			}
			v = append(v, w)
		case "state-policy":
			s := p.oneOf("if-bound", "floating")
			v = append(v, s)
		case "fingerprints":
			f := p.str()
			v = append(v, fmt.Sprintf("\"%s\"", f))
		default:
			v = append(v, p.str())
		}
		text = strings.TrimSpace("set " + opt + " " + strings.Join(v, " "))
	case "require-order":
		v := p.oneOf("yes", "no")
		p.requireOrder = v == "yes"
		text = "set require-order " + v
	case "reassemble":
		v := p.oneOf("yes", "no")
		text = "set reassemble " + v
		if p.accept("no-df") {
			text += " no-df"
		}
	case "skip":
		p.expect("on")
		ifs := p.ifList()
		for _, i := range ifs {
			if i.not {
				// expand_skip_interface
				p.fail("skip on ! <interface> is not supported")
			}
		}
		text = "set skip on " + strings.Join(ifNames(ifs), " ")
	case "state-defaults":
		if p.stateDefaults {
			p.fail("cannot redefine state-defaults")
		}
		text = "set state-defaults " + p.stateOptList(false)
		p.stateDefaults = true
	case "prio", "block-policy-return":
		p.syntax()
	default:
		p.syntax()
	}
	p.emit(&Rule{Kind: "option", File: p.file, Line: line, Text: text}, out, depth)
}

// ---- scrub, queues, ether, limiters ----

// scrubRule is parse.y's scrubrule: scrubaction dir logquick interface af
// proto fromto scrub_opts.
func (p *parser) scrubRule(out *[]*Rule, depth int) {
	line := p.tok.line
	no := p.accept("no")
	p.next()
	r := &ruleSpec{action: "scrub", line: line, no: no}
	p.ruleHead(r, false)
	p.scrubOpts(r)
	if r.quick {
		p.fail("scrub rules do not support 'quick'")
	}
	if r.dir != "" && contains(r.extra, "reassemble tcp") {
		p.fail("reassemble tcp rules can not specify direction")
	}
	if !r.scrubSet && !r.no {
		r.scrub = append(r.scrub, "fragment reassemble")
	}
	p.expand(r, out, depth)
}

// scrubOpts is parse.y's scrub_opts: scrub_opt items with optional
// commas between them, each at most once ("X cannot be respecified").
func (p *parser) scrubOpts(r *ruleSpec) {
	seen := map[string]bool{}
	once := func(what string) {
		if seen[what] {
			p.fail("%s cannot be respecified", what)
		}
		seen[what] = true
	}
	for n := 0; ; n++ {
		if n > 0 && p.accept(",") && !(p.tok.kind == tkWord || p.isP("!")) {
			p.syntax()
		}
		switch {
		case p.isWord("no-df"), p.isWord("random-id"):
			once(p.tok.s)
			r.extra = append(r.extra, p.next().s)
		case p.isWord("min-ttl"), p.isWord("max-mss"):
			kw := p.next().s
			once(kw)
			max := int64(255)
			if kw == "max-mss" {
				max = 65535
			}
			v := p.number(-1<<31, 1<<31-1, kw)
			if v < 0 || v > max {
				p.fail("illegal %s value %d", kw, v)
			}
			r.extra = append(r.extra, fmt.Sprintf("%s %d", kw, v))
		case p.isWord("set-tos"):
			p.next()
			once("set-tos")
			r.extra = append(r.extra, "set-tos "+p.tosValue())
		case p.isWord("fragment"):
			// fragcache: FRAGMENT REASSEMBLE | FRAGMENT NO REASSEMBLE
			p.next()
			once("fragcache")
			r.fragment, r.scrubSet = true, true
			if p.accept("no") {
				p.expect("reassemble")
				r.scrub = append(r.scrub, "fragment no reassemble")
			} else {
				p.expect("reassemble")
				r.scrub = append(r.scrub, "fragment reassemble")
			}
		case p.isWord("reassemble"):
			p.next()
			if v := p.str(); !strings.EqualFold(v, "tcp") {
				p.fail("scrub reassemble supports only tcp, not '%s'", v)
			}
			once("reassemble tcp")
			r.extra = append(r.extra, "reassemble tcp")
		case p.isWord("rtable"):
			p.next()
			r.rtable = p.rtable()
		case p.isWord("tagged"), p.isP("!"):
			r.taggedNot = p.accept("!")
			p.expect("tagged")
			r.tagged = p.str()
		default:
			return
		}
	}
}

// bandwidth is parse.y's bandwidth: a number with an optional unit b,
// K, M, G (each optionally followed by "b", "B", "bit" or "Bit") or %.
func (p *parser) bandwidth() string {
	bw := p.str()
	i := 0
	for i < len(bw) && (bw[i] >= '0' && bw[i] <= '9' || bw[i] == '.') {
		i++
	}
	num, unit := bw[:i], bw[i:]
	v, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil {
		p.fail("unknown unit %s", unit)
	}
	if len(unit) > 1 {
		switch unit[1:] {
		case "Bit", "B", "bit", "b":
			unit = unit[:1]
		}
	}
	switch unit {
	case "", "b", "K", "M", "G":
	case "%":
		if v < 0 || v > 100 {
			p.fail("bandwidth spec out of range")
		}
	default:
		p.fail("unknown unit %s", unit)
	}
	return bw
}

func (p *parser) schedOpts() string {
	kind := ""
	if p.tok.kind == tkWord {
		switch p.tok.s {
		case "cbq", "priq", "hfsc", "fairq", "codelq":
			kind = p.next().s
		}
	}
	if kind == "" || !p.isP("(") {
		return kind
	}
	p.next()
	var opts []string
	depth := 1
	for depth > 0 {
		switch {
		case p.isP("("):
			depth++
		case p.isP(")"):
			depth--
		case p.tok.kind == tkNL || p.tok.kind == tkEOF:
			p.syntax()
		}
		t := p.next()
		if depth > 0 && t.s != "," {
			opts = append(opts, t.s)
		}
	}
	var sorted []string
	for _, f := range schedFlagOrder {
		if contains(opts, f) {
			sorted = append(sorted, f)
		}
	}
	for _, o := range opts {
		if !contains(schedFlagOrder, o) {
			sorted = append(sorted, o)
		}
	}
	return kind + "( " + strings.Join(sorted, " ") + " )"
}

// queueOpts is parse.y's queue_opts: bandwidth, priority, qlimit, a
// scheduler and tbrsize, in any order, each at most once.
type queueOpts struct {
	bw, prio, qlimit, tbr, sched string
}

func isScheduler(t token) bool {
	if t.kind != tkWord {
		return false
	}
	switch t.s {
	case "cbq", "priq", "hfsc", "fairq", "codelq":
		return true
	}
	return false
}

// queueOpts reads queue_opts up to the first token that is not one.
func (p *parser) queueOpts() queueOpts {
	var o queueOpts
	once := func(v *string, what string) {
		if *v != "" {
			p.fail("%s cannot be respecified", what)
		}
	}
	for {
		switch {
		case p.isWord("bandwidth"):
			once(&o.bw, "bandwidth")
			p.next()
			o.bw = p.bandwidth()
		case p.isWord("priority"):
			once(&o.prio, "priority")
			p.next()
			o.prio = strconv.FormatInt(p.number(0, 255, "priority"), 10)
		case p.isWord("qlimit"):
			once(&o.qlimit, "qlimit")
			p.next()
			o.qlimit = strconv.FormatInt(p.number(0, 65535, "qlimit"), 10)
		case p.isWord("tbrsize"):
			once(&o.tbr, "tbrsize")
			p.next()
			o.tbr = strconv.FormatInt(p.number(0, 1<<32-1, "tbrsize"), 10)
		case isScheduler(p.tok):
			once(&o.sched, "scheduler")
			o.sched = p.schedOpts()
		default:
			return o
		}
	}
}

// altq parses parse.y's altqif: ALTQ interface queue_opts QUEUE qassign.
func (p *parser) altq(out *[]*Rule, depth int) {
	line := p.tok.line
	p.next()
	var ifs []string
	if p.accept("on") {
		ifs = ifNames(p.ifList())
	}
	o := p.queueOpts()
	p.expect("queue")
	var queues []string
	if !(p.tok.kind == tkNL || p.tok.kind == tkEOF) {
		queues = p.nameList()
	}
	if o.sched == "" {
		p.fail("no scheduler specified!")
	}
	if len(queues) == 0 && !strings.HasPrefix(o.sched, "codelq") {
		p.fail("no child queues specified")
	}
	if len(ifs) == 0 {
		ifs = []string{""}
	}
	for _, ifn := range ifs {
		text := "altq on " + ifn + " " + o.sched
		tbr := ""
		if o.tbr != "" {
			tbr = " tbrsize " + o.tbr
		}
		if o.bw != "" {
			text += " bandwidth " + o.bw
			if tbr == "" {
				if size := tbrSize(o.bw); size > 0 {
					tbr = fmt.Sprintf(" tbrsize %d", size)
				}
			}
		}
		if o.qlimit != "" {
			text += " qlimit " + o.qlimit
		}
		text += tbr
		if len(queues) > 0 {
			text += " queue { " + strings.Join(queues, ", ") + " }"
		}
		p.emit(&Rule{Kind: "altq", File: p.file, Line: line, Text: text}, out, depth)
	}
}

// tbrSize is pfctl's default token bucket size for a bandwidth, assuming
// an MTU of 1500 (pfctl asks the interface).
func tbrSize(bw string) int {
	mult := 1.0
	num := bw
	switch {
	case strings.HasSuffix(bw, "%"):
		return 0 // relative to the interface's speed, unknown offline
	case strings.HasSuffix(bw, "Gb"):
		mult, num = 1e9, strings.TrimSuffix(bw, "Gb")
	case strings.HasSuffix(bw, "Mb"):
		mult, num = 1e6, strings.TrimSuffix(bw, "Mb")
	case strings.HasSuffix(bw, "Kb"):
		mult, num = 1e3, strings.TrimSuffix(bw, "Kb")
	case strings.HasSuffix(bw, "b"):
		num = strings.TrimSuffix(bw, "b")
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0
	}
	rate := v * mult
	size := 128
	switch {
	case rate <= 1e6:
		size = 1
	case rate <= 10e6:
		size = 4
	case rate <= 200e6:
		size = 8
	case rate <= 2500e6:
		size = 24
	}
	return size * 1500
}

// schedFlagOrder is the order pfctl prints scheduler flags in.
var schedFlagOrder = []string{"red", "ecn", "rio", "codel", "cleardscp", "flowvalve", "borrow", "wrr", "efficient", "root", "default", "ctl"}

// listOpts say how braceList treats empty and nested braces, which
// pfctl's grammar allows in some lists and not in others.
type listOpts struct {
	nonEmpty bool // "{ }" is a syntax error
	nested   bool // "{ a { b c } }" (from a macro) is flattened
}

// braceList parses one item or a braced list of them, commas optional and
// newlines allowed inside the braces, as pfctl's lists are written.
func braceList[T any](p *parser, o listOpts, item func() T) []T {
	if !p.accept("{") {
		return []T{item()}
	}
	var l []T
	for {
		p.skipNL()
		if p.accept("}") {
			if o.nonEmpty && len(l) == 0 {
				p.syntax()
			}
			return l
		}
		p.accept(",")
		p.skipNL()
		if p.isP("}") {
			continue
		}
		if o.nested && p.isP("{") {
			l = append(l, braceList(p, o, item)...)
			continue
		}
		l = append(l, item())
	}
}

func (p *parser) nameList() []string { return braceList(p, listOpts{}, p.str) }

// queue parses parse.y's queuespec: QUEUE STRING interface queue_opts
// qassign (qassign: nothing, one name or a braced list).
func (p *parser) queue(out *[]*Rule, depth int) {
	line := p.tok.line
	p.next()
	name := p.str()
	on := ""
	if p.accept("on") {
		on = " on " + strings.Join(ifNames(p.ifList()), " ")
	}
	o := p.queueOpts()
	if o.tbr != "" {
		p.fail("cannot specify tbrsize for queue")
	}
	var children []string
	switch {
	case p.isP("{"):
		children = p.nameList()
	case p.tok.kind == tkWord && !keywords[p.tok.s] || p.tok.kind == tkString:
		children = []string{p.next().s}
	}
	text := "queue " + name + on
	if o.bw != "" {
		text += " bandwidth " + o.bw
	}
	if o.prio != "" && o.prio != "1" {
		text += " priority " + o.prio
	}
	if o.qlimit != "" {
		text += " qlimit " + o.qlimit
	}
	if o.sched != "" {
		text += " " + o.sched
	}
	if len(children) > 0 {
		text += " { " + strings.Join(children, " ") + " }"
	} else {
		text += " " // pfctl ends leaf queues with a blank
	}
	p.emit(&Rule{Kind: "queue", File: p.file, Line: line, Text: text}, out, depth)
}

// limiter parses FreeBSD 15's state limiter / source limiter definitions.
func (p *parser) limiter(out *[]*Rule, depth int) {
	line := p.tok.line
	kind := p.next().s
	p.needs15(kind + " limiter")
	p.expect("limiter")
	name := p.str()
	text := kind + " limiter " + name
	for p.tok.kind != tkNL && p.tok.kind != tkEOF {
		t := p.next()
		switch {
		case t.s == "id" && p.tok.kind == tkWord:
			id := p.next().s
			p.limiterIDs[kind+" "+name] = id
			text += " id " + id
		case t.kind == tkPunct && t.s == "/":
			text += "/" + p.str()
		default:
			text += " " + t.s
		}
	}
	p.emit(&Rule{Kind: "limiter", File: p.file, Line: line, Text: text}, out, depth)
}

// ---- antispoof ----

func (p *parser) antispoof(out *[]*Rule, depth int) {
	line := p.tok.line
	p.next()
	r := &ruleSpec{action: "block", line: line, returnSpec: "drop", antispoof: true}
	for {
		if p.accept("log") {
			r.log = true
			if p.isP("(") {
				r.logOpts = p.logOpts()
			}
			continue
		}
		if p.accept("quick") {
			r.quick = true
			continue
		}
		break
	}
	p.expect("for")
	// parse.y antispoof_if: if_item | '(' if_item ')' (the dynamic
	// form; printed as the plain name here)
	ifs := braceList(p, listOpts{nonEmpty: true}, func() ifSpec {
		if p.accept("(") {
			i := p.ifItem()
			p.expect(")")
			return i
		}
		return p.ifItem()
	})
	if p.isWord("inet") || p.isWord("inet6") {
		r.af = p.next().s
	}
	// antispoof_opts: label, ridentifier, rtable only
	for {
		switch {
		case p.accept("label"):
			r.labels = append(r.labels, p.str())
			continue
		case p.accept("ridentifier"):
			r.ridentif = strconv.FormatInt(p.number(0, 1<<32-1, "ridentifier"), 10)
			continue
		case p.accept("rtable"):
			r.rtable = p.rtable()
			continue
		}
		break
	}
	for _, ifc := range ifs {
		// block in on ! IF from IF:network to any, and, except for
		// loopback, block in from IF's own addresses (which pfctl prints
		// resolved; Options.Interfaces gives them)
		rr := *r
		rr.dir = "in"
		rr.ifaces = []ifSpec{{name: ifc.name, not: true}}
		rr.from = []hostItem{p.resolveIf(hostItem{text: ifc.name + ":network", kind: "if", mask: -1})}
		p.expand(&rr, out, depth)
		if strings.HasPrefix(ifc.name, "lo") {
			continue
		}
		own := *r
		own.dir = "in"
		own.from = []hostItem{p.resolveIf(hostItem{text: ifc.name, kind: "name", mask: -1})}
		p.expand(&own, out, depth)
	}
}

// ---- interfaces ----

type ifSpec struct {
	name string
	not  bool
}

func ifNames(l []ifSpec) []string {
	var s []string
	for _, i := range l {
		s = append(s, i.name)
	}
	return s
}

func (p *parser) ifItem() ifSpec {
	not := p.accept("!")
	name := p.str()
	if !validIfName(name) {
		p.fail("invalid interface name %s", name)
	}
	return ifSpec{name: name, not: not}
}

func validIfName(s string) bool {
	if s == "" || len(s) >= 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(int(c)) && c != '_' && c != '.' && c != '-' && c != ':' && c != '*' {
			return false
		}
	}
	return true
}

func (p *parser) ifList() []ifSpec { return braceList(p, listOpts{nonEmpty: true}, p.ifItem) }

func (p *parser) logOpts() []string {
	p.expect("(")
	var opts []string
	for {
		switch {
		case p.accept("all"):
			opts = append(opts, "all")
		case p.isWord("matches"):
			p.after140("log (matches)")
			p.next()
			opts = append(opts, "matches")
		case p.accept("user"):
			opts = append(opts, "user")
		case p.accept("to"):
			ifn := p.str()
			if !strings.HasPrefix(ifn, "pflog") {
				p.fail("%s: not a pflog interface", ifn)
			}
			opts = append(opts, "to "+ifn)
		default:
			p.syntax()
		}
		if p.accept(")") {
			break
		}
		p.expect(",")
	}
	// pfctl prints them in a fixed order
	order := map[string]int{"all": 0, "matches": 1, "user": 2}
	sorted := make([]string, 0, len(opts))
	for k := 0; k < 3; k++ {
		for _, o := range opts {
			if order[o] == k && !strings.HasPrefix(o, "to ") {
				sorted = append(sorted, o)
			}
		}
	}
	for _, o := range opts {
		if strings.HasPrefix(o, "to ") {
			sorted = append(sorted, o)
		}
	}
	return sorted
}

// ---- hosts ----

type hostItem struct {
	text  string // printed without negation
	af    string
	not   bool
	table string
	kind  string // any addr range table dyn if name noroute urpf self localhost ifaddrs
	mask  int
	// expand holds an interface's addresses (kind ifaddrs).
	expand []hostItem
}

func (h hostItem) String() string {
	if h.not {
		return "! " + h.text
	}
	return h.text
}

// hostWord reads an address, a range, an interface or host name, with an
// optional /mask, from the current token on.
func (p *parser) hostWord(table bool) hostItem {
	w := p.str()
	mask := -1
	if p.isP("/") {
		p.next()
		mask = int(p.number(0, 128, "netmask"))
	}
	h, ok := parseAddr(w, mask)
	if !ok {
		p.fail("could not parse host specification")
	}
	h = p.resolveIf(h)
	switch h.kind {
	case "name":
		// pfctl's host(): an interface's addresses, else a DNS lookup,
		// at load time (sbin/pfctl/pfctl_parser.c host, host_if, host_dns)
		p.warn(p.tok.line, fmt.Sprintf("%s must be an interface or a host name that resolves on the host (pfctl looks it up when loading)", w))
	case "if":
		p.warn(p.tok.line, fmt.Sprintf("interface %s must exist on the host (pfctl reads its addresses when loading)", strings.SplitN(w, ":", 2)[0]))
	}
	if !table && h.kind == "addr" && p.isP("-") {
		p.next()
		w2 := p.str()
		h2, ok := parseAddr(w2, -1)
		if !ok || h2.kind != "addr" || h2.af != h.af || mask >= 0 {
			p.fail("could not parse host specification")
		}
		h = hostItem{text: h.text + " - " + h2.text, af: h.af, kind: "range"}
	}
	return h
}

func (p *parser) hostItem() hostItem {
	not := p.accept("!")
	var h hostItem
	switch {
	case p.isP("<"):
		name := p.tableName()
		p.rs.TableRefs[name]++
		h = hostItem{text: "<" + name + ">", table: name, kind: "table"}
	case p.isP("("):
		p.next()
		ifn := p.str()
		p.expect(")")
		p.dynIfName(ifn)
		h = hostItem{text: "(" + ifn + ")", kind: "dyn"}
		if p.accept("/") {
			h.text += fmt.Sprintf("/%d", p.number(0, 128, "netmask"))
		}
	case p.accept("no-route"):
		h = hostItem{text: "no-route", kind: "noroute"}
	case p.accept("urpf-failed"):
		h = hostItem{text: "urpf-failed", kind: "urpf"}
	case p.accept("any"):
		h = hostItem{text: "any", kind: "any"}
	case p.isWord("self"):
		p.next()
		h = hostItem{text: "self", kind: "self"}
	default:
		h = p.hostWord(false)
	}
	h.not = not
	return h
}

func (p *parser) hostList() []hostItem {
	return braceList(p, listOpts{nonEmpty: true, nested: true}, p.hostItem)
}

// dynIfName checks (IF[:mod...]) as parse.y's dynaddr does: a name
// starting with a letter, modifiers network, broadcast, peer and 0, at
// most one of the first three.
func (p *parser) dynIfName(ifn string) {
	parts := strings.Split(ifn, ":")
	if ifn == "" || !(ifn[0] >= 'a' && ifn[0] <= 'z' || ifn[0] >= 'A' && ifn[0] <= 'Z') {
		p.fail("invalid interface name '%s'", ifn)
	}
	modes := 0
	for _, m := range parts[1:] {
		switch m {
		case "network", "broadcast", "peer":
			modes++
		case "0":
		default:
			p.fail("interface %s has bad modifier", ifn)
		}
	}
	if modes > 1 {
		p.fail("illegal combination of interface modifiers")
	}
	if len(parts[0]) >= 16 {
		p.fail("interface name too long")
	}
}

// resolveIf expands an interface name (em0, em0:0) into the addresses
// Options.Interfaces gives it, as pfctl does at parse time.
func (p *parser) resolveIf(h hostItem) hostItem {
	if h.kind != "name" && h.kind != "if" {
		return h
	}
	w := strings.TrimSuffix(h.text, fmt.Sprintf("/%d", h.mask))
	base, mod, _ := strings.Cut(w, ":")
	addrs, ok := p.opts.Interfaces[base]
	if !ok || (mod != "" && mod != "0" && mod != "network") {
		return h
	}
	seen := map[string]bool{}
	var exp []hostItem
	for _, a := range addrs {
		// an address may carry its prefix length (10.0.0.1/24)
		addr, bits, hasBits := strings.Cut(a, "/")
		mask := h.mask
		if mod == "network" {
			if !hasBits {
				continue
			}
			n, err := strconv.Atoi(bits)
			if err != nil {
				continue
			}
			mask = n
		}
		ah, ok := parseAddr(addr, mask)
		if !ok || ah.kind != "addr" {
			continue
		}
		if mod == "0" {
			if seen[ah.af] {
				continue // :0 takes the first address of each family
			}
			seen[ah.af] = true
		}
		exp = append(exp, ah)
	}
	if len(exp) == 0 {
		return h
	}
	return hostItem{text: h.text, kind: "ifaddrs", mask: h.mask, expand: exp, not: h.not}
}

// ---- ports ----

type portItem struct {
	op     string // = != < <= > >= : >< <>
	lo, hi int
	star   bool // "port 3004:*" in rdr
}

func (p *parser) portNum(s string, proto string) int {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 65535 {
			p.fail("illegal port value %d", n)
		}
		return n
	}
	if n, ok := lookupService(s); ok {
		return n
	}
	p.fail("unknown port %s", s)
	return 0
}

func (p *parser) portItem(allowStar bool) portItem {
	if p.tok.kind == tkPunct {
		switch p.tok.s {
		case "=", "!=", "<", "<=", ">", ">=":
			op := p.next().s
			return portItem{op: op, lo: p.portNum(p.str(), "")}
		}
	}
	w := p.str()
	if lo, hi, ok := strings.Cut(w, ":"); ok && lo != "" && hi != "" {
		it := portItem{op: ":", lo: p.portNum(lo, "")}
		if hi == "*" && allowStar {
			it.star = true
			it.hi = it.lo
		} else {
			it.hi = p.portNum(hi, "")
		}
		if it.lo > it.hi {
			p.fail("invalid port range")
		}
		return it
	}
	lo := p.portNum(w, "")
	if p.tok.kind == tkPunct && (p.tok.s == "><" || p.tok.s == "<>") || p.isWord(":") {
		op := p.next().s
		hi := p.portNum(p.str(), "")
		if op == ":" && lo > hi {
			p.fail("invalid port range")
		}
		return portItem{op: op, lo: lo, hi: hi}
	}
	return portItem{op: "=", lo: lo}
}

func (p *parser) portList() []portItem {
	return braceList(p, listOpts{nonEmpty: true, nested: true}, func() portItem { return p.portItem(false) })
}

// ---- protocols ----

// protoItem is parse.y's proto_item: protoval is a NUMBER (0-255) or a
// name getprotobyname(3) knows (FreeBSD's /etc/protocols, aliases
// included); the value is cast to u_int8_t (divert, 258, is 2), and 0
// is refused. It returns the name pfctl prints (getprotobynumber).
func (p *parser) protoItem() string {
	quoted := p.tok.kind == tkString
	w := p.str()
	var n int
	if v, err := strconv.Atoi(w); err == nil && !quoted {
		if v < 0 || v > 255 {
			p.fail("protocol outside range")
		}
		n = v
	} else {
		v, ok := protoByName[w]
		if !ok {
			p.fail("unknown protocol %s", w)
		}
		n = v & 0xff
	}
	if n == 0 {
		p.fail("proto 0 cannot be used")
	}
	if name, ok := protoByNum[n]; ok {
		return name
	}
	return strconv.Itoa(n)
}

func (p *parser) protoList() []string { return braceList(p, listOpts{nonEmpty: true}, p.protoItem) }
