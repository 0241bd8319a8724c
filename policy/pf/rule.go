package pf

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rigger-bsd/rigger/policy"
)

// ruleSpec is one filter, scrub, anchor or translation rule as written,
// before its lists are expanded.
type ruleSpec struct {
	action     string // pass block match scrub anchor nat rdr binat
	line       int
	returnSpec string
	dir        string
	log        bool
	logOpts    []string
	quick      bool
	ifaces     []ifSpec
	route      string // route-to reply-to dup-to
	routeHosts []routeHost
	routeOpts  []string
	af         string
	protos     []string
	all        bool
	from, to   []hostItem
	fromPorts  []portItem
	toPorts    []portItem
	os         string
	user       []string
	group      []string
	flags      string
	icmp       []string
	icmpKind   string
	tos        string
	state      string // "", no, keep, modulate, synproxy
	stateOpts  string
	prob       string
	fragment   bool
	allowOpts  bool
	labels     []string
	tag        string
	tagged     string
	taggedNot  bool
	queue      string
	rtable     string
	divert     string
	natTo      *pool // nat-to or binat-to
	natKw      string
	rdrTo      *pool
	afTo       string // "af-to inet6"
	afFrom     *pool
	afDst      *pool
	once       bool
	maxPktRate string
	maxPktSize string
	receivedOn string
	ridentif   string
	limiters   []string
	scrub      []string
	scrubSet   bool
	extra      []string
	anchorName string
	anchorBody bool
	antispoof  bool
	natPass    bool
	no         bool // no nat / no rdr / no binat
	redir      *pool
}

type routeHost struct {
	ifname string
	addr   hostItem
	hasIf  bool
}

// pool is a translation target: -> addresses [port p] [options].
type pool struct {
	hosts []hostItem
	port  *portItem
	opts  []string
	list  bool
}

func (p *parser) ruleHead(r *ruleSpec, allowDir bool) {
	if p.isWord("in") || p.isWord("out") {
		r.dir = p.next().s
	}
	for {
		switch {
		case p.isWord("log") && r.action == "anchor":
			// anchorrule: ANCHOR anchorname dir quick interface ...
			p.syntax()
		case p.isWord("log"):
			p.next()
			r.log = true
			if p.isP("(") {
				r.logOpts = p.logOpts()
			}
			continue
		case p.isWord("quick"):
			p.next()
			r.quick = true
			continue
		}
		break
	}
	if p.accept("on") {
		r.ifaces = p.ifList()
	}
	if r.action != "anchor" {
		p.routeSpec(r)
	}
	if p.isWord("inet") || p.isWord("inet6") {
		r.af = p.next().s
	}
	if p.accept("proto") {
		r.protos = p.protoList()
	}
	p.fromTo(r)
}

func (p *parser) fromTo(r *ruleSpec) {
	if p.accept("all") {
		r.all = true
		return
	}
	if p.accept("from") {
		r.from, r.fromPorts = p.ipPortSpec()
	}
	if p.accept("os") {
		r.os = p.osSpec()
	}
	if p.accept("to") {
		r.to, r.toPorts = p.ipPortSpec()
	}
}

// osSpec reads an OS fingerprint or a list of them; a list is kept joined
// by "\x00" and expanded into one rule each.
func (p *parser) osSpec() string {
	if p.isP("{") {
		return strings.Join(p.nameList(), "\x00")
	}
	return p.str()
}

func (p *parser) ipPortSpec() ([]hostItem, []portItem) {
	var hosts []hostItem
	if !p.isWord("port") {
		hosts = p.hostList()
	}
	var ports []portItem
	if p.accept("port") {
		ports = p.portList()
	}
	if hosts == nil && ports == nil {
		p.syntax()
	}
	return hosts, ports
}

func (p *parser) routeSpec(r *ruleSpec) {
	if !(p.isWord("route-to") || p.isWord("reply-to") || p.isWord("dup-to") || p.isWord("fastroute")) {
		return
	}
	if r.route != "" {
		p.fail("route-to, reply-to, dup-to or fastroute given twice")
	}
	r.route = p.next().s
	if r.route == "fastroute" {
		return
	}
	one := func() routeHost {
		if p.accept("(") {
			ifn := p.str()
			rh := routeHost{ifname: ifn, hasIf: true}
			if !p.isP(")") {
				rh.addr = p.hostItem()
			}
			p.expect(")")
			return rh
		}
		ifn := p.str()
		return routeHost{ifname: ifn}
	}
	r.routeHosts = append(r.routeHosts, braceList(p, listOpts{}, one)...)
	r.routeOpts = p.poolOpts()
}

func (p *parser) poolOpts() []string {
	var opts []string
	for {
		switch {
		case p.isWord("bitmask"), p.isWord("random"), p.isWord("round-robin"), p.isWord("sticky-address"),
			p.isWord("static-port"):
			opts = append(opts, p.next().s)
		case p.isWord("endpoint-independent"), p.isWord("prefer-ipv6-nexthop"):
			p.after140(p.tok.s)
			opts = append(opts, p.next().s)
		case p.isWord("source-hash"):
			p.next()
			o := "source-hash"
			if p.tok.kind == tkWord && (strings.HasPrefix(p.tok.s, "0x") || len(p.tok.s) > 0 && !keywords[p.tok.s] && p.tok.s != "sticky-address") {
				k := p.next().s
				if strings.HasPrefix(k, "0x") && len(k) != 34 {
					p.fail("hex key must be 128 bits (32 hex digits) long")
				}
				o += " " + k
			}
			opts = append(opts, o)
		case p.isWord("map-e-portset"):
			p.next()
			var nums []string
			for i := 0; i < 3; i++ {
				if i > 0 {
					p.expect("/")
				}
				v := p.str()
				n, err := strconv.ParseInt(v, 0, 32)
				if err != nil || n < 0 {
					p.fail("map-e-portset: bad value %s", v)
				}
				nums = append(nums, strconv.FormatInt(n, 10))
			}
			opts = append(opts, "map-e-portset "+strings.Join(nums, "/"))
		default:
			return opts
		}
	}
}

// filterRule parses pass, block, match and anchor rules.
func (p *parser) filterRule(out *[]*Rule, depth int) {
	r := &ruleSpec{line: p.tok.line}
	r.action = p.next().s
	if r.action == "block" {
		r.returnSpec = p.blockReturn()
	}
	if r.action == "anchor" {
		if p.tok.kind == tkString || p.tok.kind == tkWord && !keywords[p.tok.s] {
			r.anchorName = p.next().s
			if strings.HasPrefix(r.anchorName, "_") {
				p.fail("anchor names beginning with '_' are reserved for internal use")
			}
		}
	}
	p.ruleHead(r, true)
	p.filterOpts(r)
	if r.action == "block" && r.route != "" {
		p.fail("route-to, reply-to and dup-to are not supported on block rules")
	}
	p.pfruleChecks(r)
	if r.action != "anchor" {
		p.expand(r, out, depth)
		return
	}
	// anchor: an optional inline body
	p.skipNLBeforeBrace()
	if !p.isP("{") {
		p.expand(r, out, depth)
		p.endStmt(depth > 0)
		return
	}
	if strings.Contains(r.anchorName, "*") {
		p.fail("wildcard anchor name not allowed with inline rules")
	}
	p.next()
	r.anchorBody = true
	rules := p.expand(r, out, depth)
	var body []*Rule
	saveState := p.rulestate
	p.rulestate = stateFilter
	p.stmts(&body, depth+1, true)
	p.rulestate = saveState
	if !p.isP("}") {
		p.syntax()
	}
	p.next()
	for _, rr := range rules {
		rr.Anchor = body
	}
	p.endStmt(depth > 0)
}

// skipNLBeforeBrace allows "anchor foo\n{" like pfctl's optnl.
func (p *parser) skipNLBeforeBrace() {
	if p.tok.kind == tkNL && p.lx.peek().is("{") {
		p.next()
	}
}

func (p *parser) blockReturn() string {
	switch {
	case p.accept("drop"):
		return "drop"
	case p.accept("return"):
		return "return"
	case p.isWord("return-rst"):
		p.next()
		if p.accept("(") {
			p.expect("ttl")
			n := p.number(0, 255, "ttl")
			p.expect(")")
			return fmt.Sprintf("return-rst(ttl %d)", n)
		}
		return "return-rst"
	case p.isWord("return-icmp"), p.isWord("return-icmp6"):
		kw := p.next().s
		if !p.accept("(") {
			if kw == "return-icmp" {
				return "return-icmp" // codes depend on the address family
			}
			return "return-icmp6(port-unr)"
		}
		var codes []string
		for {
			c := p.str()
			name, ok := icmpCodeName(c, kw == "return-icmp6" || len(codes) == 1)
			if !ok {
				p.fail("unknown icmp code %s", c)
			}
			codes = append(codes, name)
			if p.accept(")") {
				break
			}
			p.expect(",")
		}
		if len(codes) > 2 || kw == "return-icmp6" && len(codes) > 1 {
			p.syntax()
		}
		if kw == "return-icmp" && len(codes) == 1 {
			return "return-icmp(" + codes[0] + ")"
		}
		return kw + "(" + strings.Join(codes, ", ") + ")"
	}
	return ""
}

// stateOpts reads a parenthesized state_opt_list (keep state (...)).
func (p *parser) stateOpts() string {
	p.expect("(")
	return p.stateOptList(true)
}

// stateOptList reads parse.y's state_opt_list: items separated by an
// optional comma, up to ')' when paren, else to the end of the line
// (set state-defaults takes the list bare).
func (p *parser) stateOptList(paren bool) string {
	var maxS, srcTrack, srcStates, srcConn, srcRate, srcNodes, overload string
	var flags, timeouts []string
	trackKind := ""
	// pfrule's checks of the state options, made in its loop over them
	seen := map[string]bool{}
	once := func(key, msg string) {
		if seen[key] {
			p.fail("%s", msg)
		}
		seen[key] = true
	}
	positive := func(kw string) int64 {
		n := p.number(0, 1<<32-1, kw)
		if n == 0 {
			p.fail("'%s' must be > 0", kw)
		}
		return n
	}
	for {
		switch {
		case p.accept("max"):
			once("max", "state option 'max' multiple definitions")
			maxS = fmt.Sprintf("max %d", p.number(0, 1<<32-1, "max"))
		case p.accept("no-sync"):
			once("no-sync", "state option 'sync' multiple definitions")
			flags = append(flags, "no-sync")
		case p.accept("source-track"):
			once("source-track", "state option 'source-track' multiple definitions")
			srcTrack = "source-track"
			if p.isWord("rule") || p.isWord("global") {
				trackKind = p.next().s
			}
		case p.accept("max-src-states"):
			once("max-src-states", "state option 'max-src-states' multiple definitions")
			srcStates = fmt.Sprintf("max-src-states %d", positive("max-src-states"))
		case p.accept("max-src-conn"):
			once("max-src-conn", "state option 'max-src-conn' multiple definitions")
			srcConn = fmt.Sprintf("max-src-conn %d", positive("max-src-conn"))
		case p.accept("max-src-nodes"):
			once("max-src-nodes", "state option 'max-src-nodes' multiple definitions")
			srcNodes = fmt.Sprintf("max-src-nodes %d", positive("max-src-nodes"))
			if trackKind == "" {
				trackKind = "rule"
			}
		case p.accept("max-src-conn-rate"):
			once("max-src-conn-rate", "state option 'max-src-conn-rate' multiple definitions")
			v := p.str()
			a, b, ok := strings.Cut(v, "/")
			if !ok {
				if !p.accept("/") {
					p.syntax()
				}
				b = p.str()
				a = v
			}
			na, errA := strconv.Atoi(a)
			nb, errB := strconv.Atoi(b)
			if errA != nil || errB != nil {
				p.syntax()
			}
			if na == 0 || nb == 0 {
				p.fail("'max-src-conn-rate' values must be > 0")
			}
			// PF_THRESHOLD_MAX is 0xffffffff / PF_THRESHOLD_MULT (1000)
			if na > 4294967 {
				p.fail("'max-src-conn-rate' maximum rate must be < 4294967")
			}
			srcRate = "max-src-conn-rate " + a + "/" + b
		case p.accept("overload"):
			once("overload", "multiple 'overload' table definitions")
			name := p.tableName()
			p.rs.TableRefs[name]++
			overload = "overload <" + name + ">"
			if p.accept("flush") {
				overload += " flush"
				if p.accept("global") {
					overload += " global"
				}
			}
		case p.isWord("if-bound"), p.isWord("floating"):
			once("statelock", "state locking option: multiple definitions")
			flags = append(flags, p.next().s)
		case p.isWord("sloppy"):
			once("sloppy", "state sloppy option: multiple definitions")
			flags = append(flags, p.next().s)
		case p.isWord("pflow"), p.isWord("allow-related"):
			p.after140(p.tok.s)
			flags = append(flags, p.next().s)
		case p.tok.kind == tkWord && timeoutNames[p.tok.s]:
			k := p.next().s
			if !strings.Contains(k, ".") {
				p.fail("illegal state timeout %s", k)
			}
			once("timeout "+k, "state timeout "+k+" multiple definitions")
			timeouts = append(timeouts, fmt.Sprintf("%s %d", k, p.number(0, 1<<32-1, "timeout")))
		default:
			p.syntax()
		}
		if paren && p.accept(")") {
			break
		}
		if !paren && (p.tok.kind == tkNL || p.tok.kind == tkEOF || p.isP("}")) {
			break
		}
		if paren {
			p.expect(",")
			p.skipNL()
		} else {
			p.accept(",")
		}
	}
	if trackKind == "global" {
		for _, o := range []struct{ v, kw string }{{srcNodes, "max-src-nodes"}, {srcConn, "max-src-conn"}, {srcRate, "max-src-conn-rate"}} {
			if o.v != "" {
				p.fail("'%s' is incompatible with 'source-track global'", o.kw)
			}
		}
	}
	var parts []string
	add := func(s string) {
		if s != "" {
			parts = append(parts, s)
		}
	}
	add(maxS)
	for _, f := range flags {
		if f == "no-sync" {
			add(f)
		}
	}
	if srcTrack != "" {
		if trackKind == "" {
			trackKind = "global"
		}
		add(srcTrack + " " + trackKind)
	}
	add(srcStates)
	add(srcConn)
	add(srcRate)
	add(srcNodes)
	add(overload)
	for _, f := range flags {
		if f != "no-sync" {
			add(f)
		}
	}
	for _, t := range timeouts {
		add(t)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// filterOpts parses the options after from/to, in any order.
func (p *parser) filterOpts(r *ruleSpec) {
	// filter_opt's markers: these options may be given once
	marked := map[string]bool{}
	mark := func(key, what string) {
		if marked[key] {
			p.fail("%s cannot be redefined", what)
		}
		marked[key] = true
	}
	for p.tok.kind == tkWord || p.isP("!") {
		switch p.tok.s {
		case "flags":
			mark("flags", "flags")
		case "icmp-type", "icmp6-type":
			mark("icmp", "icmp-type")
		case "tos":
			mark("tos", "tos")
		case "keep", "modulate", "synproxy", "no":
			mark("keep", "modulate or keep")
		case "queue":
			mark("queue", "queue")
		case "prio":
			mark("prio", "prio")
		case "label":
			if len(r.labels) >= maxLabels {
				p.fail("label can only be used %d times", maxLabels)
			}
		}
		switch p.tok.s {
		case "no-df", "random-id", "min-ttl", "max-mss", "set-tos", "reassemble":
			// not filter_opts in 14.0's parse.y (only inside scrub (...));
			// FreeBSD 15.0's pf.conf(5) lists them as filter options
			if p.opts.Release.Or() < policy.Release15 {
				p.syntax()
			}
		}
		switch p.tok.s {
		case "user", "group":
			kw := p.next().s
			items := p.ugidList(kw)
			if kw == "user" {
				r.user = items
			} else {
				r.group = items
			}
		case "flags":
			p.next()
			if p.accept("any") {
				r.flags = "any"
				continue
			}
			// flags: FLAGS flag '/' flag | FLAGS '/' flag | FLAGS ANY
			var a string
			if !p.isP("/") {
				a = p.flagWord()
			}
			p.expect("/")
			b := p.flagWord()
			r.flags = a + "/" + b
		case "icmp-type", "icmp6-type":
			r.icmpKind = p.next().s
			r.icmp = p.icmpList(r.icmpKind == "icmp6-type")
		case "tos":
			p.next()
			r.tos = p.tosValue()
		case "keep", "modulate", "synproxy":
			r.state = p.next().s
			p.expect("state")
			if p.isP("(") {
				r.stateOpts = p.stateOpts()
			}
		case "no":
			p.next()
			p.expect("state")
			r.state = "no"
		case "fragment":
			p.next()
			r.fragment = true
		case "no-df", "random-id":
			r.extra = append(r.extra, p.next().s)
		case "min-ttl", "max-mss":
			kw := p.next().s
			r.extra = append(r.extra, fmt.Sprintf("%s %d", kw, p.number(0, 65535, kw)))
		case "set-tos":
			p.next()
			r.extra = append(r.extra, "set-tos "+p.tosValue())
		case "reassemble":
			p.next()
			p.expect("tcp")
			r.extra = append(r.extra, "reassemble tcp")
		case "scrub":
			p.next()
			p.expect("(")
			var so []string
			for !p.accept(")") {
				p.accept(",")
				t := p.next()
				if t.kind == tkNL || t.kind == tkEOF {
					p.syntax()
				}
				so = append(so, t.s)
			}
			r.extra = append(r.extra, "scrub ("+strings.Join(so, " ")+")")
		case "allow-opts":
			p.next()
			r.allowOpts = true
		case "label":
			p.next()
			l := p.str()
			if len(l) >= 64 {
				p.fail("rule label too long (max 63 chars)")
			}
			r.labels = append(r.labels, l)
		case "ridentifier":
			p.next()
			r.ridentif = strconv.FormatInt(p.number(0, 1<<32-1, "ridentifier"), 10)
		case "tag":
			p.next()
			r.tag = p.str()
		case "tagged":
			p.next()
			r.tagged = p.str()
		case "!":
			p.next()
			p.expect("tagged")
			r.taggedNot = true
			r.tagged = p.str()
		case "queue":
			p.next()
			if p.accept("(") {
				a := p.str()
				p.accept(",")
				b := p.str()
				p.expect(")")
				r.queue = "(" + a + ", " + b + ")"
			} else {
				r.queue = " " + p.str()
			}
		case "rtable":
			p.next()
			r.rtable = p.rtable()
		case "probability":
			p.next()
			r.prob = p.probability()
		case "os":
			p.next()
			r.os = p.osSpec()
		case "divert-to":
			// parse.y: DIVERTTO portplain | DIVERTTO STRING PORT
			// portplain; FreeBSD ignores the address
			p.next()
			if !p.lx.peek().is("port") {
				pi := p.portItem(false)
				r.divert = fmt.Sprintf("divert-to %d", pi.lo)
				break
			}
			p.str()
			p.expect("port")
			pi := p.portItem(false)
			r.divert = fmt.Sprintf("divert-to %d", pi.lo)
		case "divert-reply":
			// parse.y filter_opt DIVERTREPLY, under __FreeBSD__
			p.fail("divert-reply has no meaning in FreeBSD pf(4)")
		case "divert-packet":
			p.next()
			p.expect("port")
			pi := p.portItem(false)
			r.divert = fmt.Sprintf("divert-packet port %d", pi.lo)
		case "prio":
			p.next()
			r.extra = append(r.extra, fmt.Sprintf("prio %d", p.number(0, 7, "prio")))
		case "set":
			p.next()
			r.extra = append(r.extra, p.setAction())
		case "max-pkt-rate":
			p.after140("max-pkt-rate")
			p.next()
			v := p.str()
			if a, b, ok := strings.Cut(v, "/"); !ok || !isDigits(a) || !isDigits(b) {
				if ok || !p.accept("/") {
					p.syntax()
				}
				v += "/" + p.str()
			}
			r.maxPktRate = v
		case "max-pkt-size":
			p.after140("max-pkt-size")
			p.next()
			r.maxPktSize = strconv.FormatInt(p.number(0, 65535, "max-pkt-size"), 10)
		case "once":
			p.after140("once")
			p.next()
			r.once = true
		case "received-on":
			p.after140("received-on")
			p.next()
			r.receivedOn = p.ifItem().name
		case "route-to", "reply-to", "dup-to", "fastroute":
			p.routeSpec(r)
		case "af-to":
			p.needs15("af-to")
			p.next()
			af := p.str()
			if af != "inet" && af != "inet6" {
				p.syntax()
			}
			p.expect("from")
			r.afTo = "af-to " + af
			r.afFrom = p.redirPool(false)
			if p.accept("to") {
				r.afDst = p.redirPool(false)
			}
		case "nat-to":
			p.needs15("nat-to")
			p.next()
			r.natKw, r.natTo = "nat-to", p.redirPool(true)
		case "rdr-to":
			p.needs15("rdr-to")
			p.next()
			r.rdrTo = p.redirPool(true)
		case "binat-to":
			p.needs15("binat-to")
			p.next()
			r.natKw, r.natTo = "binat-to", p.redirPool(true)
		case "state", "source":
			p.needs15(p.tok.s + " limiter")
			kw := p.next().s
			p.expect("limiter")
			var s string
			if p.accept("id") {
				s = fmt.Sprintf("%s limiter id %d", kw, p.number(0, 1<<32-1, "limiter id"))
			} else {
				lname := p.str()
				s = kw + " limiter " + lname
				if id, ok := p.limiterIDs[kw+" "+lname]; ok {
					s = kw + " limiter id " + id
				}
			}
			if p.accept("(") {
				s += " (" + p.str() + ")"
				p.expect(")")
			}
			r.limiters = append(r.limiters, s)
		case "dnpipe", "dnqueue":
			kw := p.next().s
			if p.accept("(") {
				a := p.number(0, 65535, kw)
				p.accept(",")
				b := p.number(0, 65535, kw)
				p.expect(")")
				r.extra = append(r.extra, fmt.Sprintf("%s(%d, %d)", kw, a, b))
			} else {
				r.extra = append(r.extra, fmt.Sprintf("%s %d", kw, p.number(0, 65535, kw)))
			}
		case "l3", "l2":
			r.extra = append(r.extra, p.next().s)
		default:
			return
		}
	}
}

// flagWord is parse.y's flag: parse_flags refuses a letter outside
// FSRPAUEW.
func (p *parser) flagWord() string {
	w := p.str()
	for _, c := range w {
		if !strings.ContainsRune("FSRPAUEW", c) {
			p.fail("bad flags %s", w)
		}
	}
	return w
}

// pfruleChecks are the checks of parse.y's pfrule and anchorrule actions
// that need the whole rule: flags (b1 & b2) != b1, flags and os only
// with tcp, routing needs a direction, anchors keep no state.
func (p *parser) pfruleChecks(r *ruleSpec) {
	if r.flags != "" && r.flags != "any" {
		a, b, _ := strings.Cut(r.flags, "/")
		for _, c := range a {
			if !strings.ContainsRune(b, c) {
				p.fail("flags always false")
			}
		}
	}
	if r.flags != "" && r.flags != "any" && strings.Trim(r.flags, "/") != "" || r.os != "" {
		if len(r.protos) > 0 && !contains(r.protos, "tcp") {
			if r.flags != "" && r.flags != "any" {
				p.fail("flags only apply to tcp")
			}
			if r.action == "anchor" {
				p.fail("OS fingerprinting only applies to tcp")
			}
			p.fail("OS fingerprinting only apply to tcp")
		}
	}
	if r.action == "anchor" && (r.state == "keep" || r.state == "modulate" || r.state == "synproxy") {
		p.fail("cannot specify state handling on anchors")
	}
	if r.route != "" && r.route != "fastroute" && r.dir == "" {
		p.fail("direction must be explicit with rules that specify routing")
	}
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (p *parser) setAction() string {
	if p.accept("(") {
		// set ( prio 2, tos 0x08 ): FreeBSD's grouped form
		var items []string
		for !p.accept(")") {
			p.accept(",")
			if p.isP(")") {
				continue
			}
			items = append(items, strings.TrimPrefix(p.setAction1(), "set "))
		}
		return "set ( " + strings.Join(items, ", ") + " )"
	}
	return p.setAction1()
}

func (p *parser) setAction1() string {
	switch {
	case p.accept("prio"):
		if p.accept("(") {
			a := p.number(0, 7, "prio")
			p.accept(",")
			b := p.number(0, 7, "prio")
			p.expect(")")
			return fmt.Sprintf("set prio(%d, %d)", a, b)
		}
		return fmt.Sprintf("set prio %d", p.number(0, 7, "prio"))
	case p.accept("tos"):
		return "set tos " + p.tosValue()
	case p.accept("queue"):
		if p.accept("(") {
			a := p.str()
			p.accept(",")
			b := p.str()
			p.expect(")")
			return "set queue(" + a + ", " + b + ")"
		}
		return "set queue " + p.str()
	}
	p.syntax()
	return ""
}

// tosNames is parse.y's map_tos table (DSCP code points and the old
// TOS names), looked up case-insensitively.
var tosNames = map[string]int{
	"af11": 0x28, "af12": 0x30, "af13": 0x38, "af21": 0x48, "af22": 0x50, "af23": 0x58,
	"af31": 0x68, "af32": 0x70, "af33": 0x78, "af41": 0x88, "af42": 0x90, "af43": 0x98,
	"critical": 0xa0, "cs0": 0x00, "cs1": 0x20, "cs2": 0x40, "cs3": 0x60, "cs4": 0x80,
	"cs5": 0xa0, "cs6": 0xc0, "cs7": 0xe0, "ef": 0xb8, "inetcontrol": 0xc0, "lowdelay": 0x10,
	"netcontrol": 0xe0, "reliability": 0x04, "throughput": 0x08, "va": 0xb0,
}

func (p *parser) tosValue() string {
	w := p.str()
	if n, ok := tosNames[strings.ToLower(w)]; ok {
		return fmt.Sprintf("0x%2.2x", n)
	}
	n, err := strconv.ParseInt(w, 0, 32)
	if err != nil || n < 0 || n > 255 {
		p.fail("illegal tos value %s", w)
	}
	return fmt.Sprintf("0x%2.2x", n)
}

func (p *parser) probability() string {
	w := p.str()
	pct := strings.HasSuffix(w, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(w, "%"), 64)
	if err != nil {
		p.syntax()
	}
	if !pct {
		v *= 100
	}
	if v < 0 || v > 100 {
		p.fail("invalid probability: %s", w)
	}
	return strconv.FormatFloat(v, 'g', -1, 64) + "%"
}

func (p *parser) ugidList(kw string) []string {
	item := func() string {
		if p.tok.kind == tkPunct {
			switch p.tok.s {
			case "=", "!=", "<", "<=", ">", ">=":
				op := p.next().s
				return op + " " + p.ugid(kw)
			}
		}
		a := p.ugid(kw)
		if p.tok.kind == tkPunct && (p.tok.s == "><" || p.tok.s == "<>") {
			op := p.next().s
			return a + " " + op + " " + p.ugid(kw)
		}
		return "= " + a
	}
	return braceList(p, listOpts{}, item)
}

func (p *parser) ugid(kw string) string {
	w := p.str()
	if w == "unknown" {
		return w
	}
	if isDigits(w) {
		return w
	}
	ids := userIDs
	if kw == "group" {
		ids = groupIDs
	}
	if n, ok := ids[w]; ok {
		return strconv.Itoa(n)
	}
	// parse.y uid/gid: getpwnam/getgrnam on the host
	p.warn(p.tok.line, fmt.Sprintf("%s %s must exist on the host (pfctl looks it up when loading)", kw, w))
	// The host's passwd is not known offline: keep the name.
	return w
}

func (p *parser) icmpList(v6 bool) []string {
	item := func() string {
		w := p.str()
		name, ok := icmpTypeName(w, v6)
		if !ok {
			p.fail("unknown icmp-type %s", w)
		}
		if p.accept("code") {
			c := p.str()
			if _, ok := icmpCodeName(c, v6); !ok {
				p.fail("unknown icmp-code %s", c)
			}
			name += " code " + c
		}
		return name
	}
	return braceList(p, listOpts{}, item)
}

// text prints the pool for a rule of address family af (interface names
// expand to that family's addresses).
func (pl *pool) text(af string) string {
	var hosts []hostItem
	for _, h := range expandHosts(pl.hosts) {
		if af != "" && h.af != "" && h.af != af {
			continue
		}
		hosts = append(hosts, h)
	}
	var hs []string
	for _, h := range hosts {
		hs = append(hs, h.String())
	}
	s := strings.Join(hs, ", ")
	if len(hs) > 1 {
		s = "{ " + s + " }"
	}
	if pl.port != nil {
		if pl.port.op == ":" {
			s += fmt.Sprintf(" port %d:%d", pl.port.lo, pl.port.hi)
		} else {
			s += fmt.Sprintf(" port %d", pl.port.lo)
		}
	}
	opts := pl.opts
	needRR := len(hosts) > 1
	for _, h := range hosts {
		if h.kind == "table" || h.kind == "dyn" {
			needRR = true
		}
	}
	hasType := false
	for _, o := range opts {
		if o == "bitmask" || o == "random" || o == "round-robin" || strings.HasPrefix(o, "source-hash") {
			hasType = true
		}
	}
	if needRR && !hasType {
		opts = append([]string{"round-robin"}, opts...)
	}
	if len(opts) > 0 {
		s += " " + strings.Join(opts, " ")
	}
	return s
}

func (p *parser) redirPool(withPort bool) *pool {
	pl := &pool{}
	if p.isP("{") {
		pl.list = true
	}
	pl.hosts = p.hostList()
	if withPort && p.accept("port") {
		it := p.portItem(true)
		if it.op != "=" && it.op != ":" {
			p.syntax()
		}
		if it.star {
			it.hi = 0
		}
		pl.port = &it
	}
	pl.opts = p.poolOpts()
	return pl
}

// natRule parses nat, rdr, binat (and their "no" and "-anchor" forms).
func (p *parser) natRule(out *[]*Rule, depth int) {
	r := &ruleSpec{line: p.tok.line}
	kw := p.next().s
	if kw == "no" {
		r.no = true
		kw = p.str()
		if kw != "nat" && kw != "rdr" && kw != "binat" {
			p.syntax()
		}
	}
	if strings.HasSuffix(kw, "-anchor") {
		r.action = kw
		r.anchorName = p.str()
		p.ruleHead(r, true)
		p.expand(r, out, depth)
		return
	}
	r.action = kw
	if p.accept("pass") {
		r.natPass = true
		if p.accept("log") {
			r.log = true
			if p.isP("(") {
				r.logOpts = p.logOpts()
			}
		}
	}
	if p.isWord("log") && !r.log {
		p.next()
		r.log = true
		if p.isP("(") {
			r.logOpts = p.logOpts()
		}
	}
	// natrule and binatrule have no direction: nataction interface af
	// proto fromto, and binat's FROM ipspec toipspec (no ports, no os,
	// no all)
	if p.accept("on") {
		r.ifaces = p.ifList()
	}
	if p.isWord("inet") || p.isWord("inet6") {
		r.af = p.next().s
	}
	if p.accept("proto") {
		r.protos = p.protoList()
	}
	if kw == "binat" {
		p.expect("from")
		r.from = p.hostList()
		if p.accept("to") {
			r.to = p.hostList()
		}
	} else {
		p.fromTo(r)
	}
	for {
		switch {
		case p.accept("tag"):
			r.tag = p.str()
			continue
		case p.accept("tagged"):
			r.tagged = p.str()
			continue
		case p.isP("!") && p.lx.peek().is("tagged"):
			p.next()
			p.next()
			r.taggedNot = true
			r.tagged = p.str()
			continue
		case p.accept("rtable"):
			r.rtable = p.rtable()
			continue
		}
		break
	}
	if p.isP("->") {
		if r.no && kw == "binat" {
			p.fail("'no binat' rule does not need '->'")
		}
		if r.no {
			p.fail("translation rule with 'no' does not need '->'")
		}
		p.next()
		if kw == "binat" && p.isP("{") {
			p.syntax() // redirection: ARROW host [PORT portstar]
		}
		r.redir = p.redirPool(kw != "binat")
		p.checkPool(kw, r.redir)
	} else if !(p.tok.kind == tkNL || p.tok.kind == tkEOF || p.isP("}")) {
		p.syntax()
	} else if !r.no {
		if kw == "binat" {
			p.fail("'binat' rule requires '-> address'")
		}
		p.fail("translation rule requires '-> address'")
	}
	if kw == "binat" {
		p.binatChecks(r)
	}
	p.expand(r, out, depth)
}

// binatChecks are parse.y's binatrule checks: an address family, one
// address each side, no tables or interfaces (round-robin aliases) as
// source or redirect, the same family and mask on both sides.
func (p *parser) binatChecks(r *ruleSpec) {
	from, to := expandHosts(r.from), expandHosts(r.to)
	var redir []hostItem
	if r.redir != nil {
		redir = expandHosts(r.redir.hosts)
	}
	af := r.af
	for _, l := range [][]hostItem{from, to, redir} {
		if af == "" && len(l) > 0 && l[0].af != "" {
			af = l[0].af
		}
	}
	if af == "" {
		p.fail("address family (inet/inet6) undefined")
	}
	for _, h := range from {
		if h.kind == "table" {
			p.fail("invalid use of table <%s> as the source address of a binat rule", h.table)
		}
	}
	for _, h := range redir {
		if h.kind == "table" {
			p.fail("invalid use of table <%s> as the redirect address of a binat rule", h.table)
		}
	}
	for _, l := range [][]hostItem{from, to} {
		if len(l) > 1 {
			p.fail("multiple binat ip addresses")
		}
		if len(l) == 1 && l[0].af != "" && l[0].af != af {
			p.fail("binat ip versions must match")
		}
	}
	if r.no {
		return
	}
	var inAF []hostItem
	for _, h := range redir {
		if h.af == "" || h.af == af {
			inAF = append(inAF, h)
		}
	}
	if len(inAF) > 1 {
		p.fail("binat rule must redirect to a single address")
	}
	if len(from) == 1 && from[0].kind == "addr" && len(inAF) == 1 && inAF[0].kind == "addr" &&
		hostBits(from[0], af) != hostBits(inAF[0], af) {
		p.fail("'binat' source mask and redirect mask must be the same")
	}
}

// hostBits is an address's prefix length (no mask: the whole address).
func hostBits(h hostItem, af string) int {
	if h.mask >= 0 {
		return h.mask
	}
	if af == "inet6" {
		return 128
	}
	return 32
}

// pfvar.h's PF_NAT_PROXY_PORT_LOW and _HIGH: nat's default port range.
const (
	natProxyPortLow  = 50001
	natProxyPortHigh = 65535
)

func (p *parser) checkPool(kw string, pl *pool) {
	has := func(o string) bool {
		for _, x := range pl.opts {
			if x == o || strings.HasPrefix(x, o+" ") {
				return true
			}
		}
		return false
	}
	if has("static-port") && kw != "nat" {
		p.fail("the 'static-port' option is only valid with nat rules")
	}
	if has("map-e-portset") && kw != "nat" {
		p.fail("the 'map-e-portset' option is only valid with nat rules")
	}
	// parse.y natrule: static-port and map-e-portset are refused with a
	// port only when both proxy ports differ from PF_NAT_PROXY_PORT_LOW
	// and _HIGH (a single port p is the range p:p).
	narrowed := false
	if pl.port != nil && kw == "nat" {
		lo, hi := pl.port.lo, pl.port.hi
		if pl.port.op != ":" {
			hi = lo
		}
		narrowed = lo != natProxyPortLow && hi != natProxyPortHigh
	}
	if has("static-port") && narrowed {
		p.fail("the 'static-port' option can't be used when specifying a port range")
	}
	if has("map-e-portset") && has("static-port") {
		p.fail("the 'map-e-portset' option can't be used 'static-port'")
	}
	if has("map-e-portset") && narrowed {
		p.fail("the 'map-e-portset' option can't be used when specifying a port range")
	}
	if kw == "rdr" && pl.port != nil && pl.port.op == ":" && !pl.port.star && pl.port.hi < pl.port.lo {
		p.fail("invalid port range")
	}
	nTypes := 0
	for _, o := range []string{"bitmask", "random", "round-robin", "source-hash"} {
		if has(o) {
			nTypes++
		}
	}
	if nTypes > 1 {
		p.fail("pool type specified twice")
	}
	if has("bitmask") || has("random") || has("source-hash") {
		for _, h := range pl.hosts {
			if h.kind == "table" && has("bitmask") {
				p.fail("tables are not supported by pool type")
			}
			if h.kind == "dyn" && has("bitmask") {
				p.fail("interface %s is not supported by pool type", h.text)
			}
		}
		if len(pl.hosts) > 1 {
			p.fail("only round-robin valid for multiple redirection addresses")
		}
	}
}
