package pf

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rigger-bsd/rigger/policy"
)

var anyHost = hostItem{text: "any", kind: "any"}

// maxExpansion bounds the rules one statement may expand to, so a few
// long lists cannot exhaust memory.
const maxExpansion = 1 << 17

// expandHosts replaces localhost by its two addresses, as the resolver
// would, and a known interface by its addresses, so that the address
// family picks among them.
func expandHosts(l []hostItem) []hostItem {
	var out []hostItem
	for _, h := range l {
		if h.kind == "ifaddrs" {
			for _, a := range h.expand {
				a.not = h.not
				out = append(out, a)
			}
			continue
		}
		if h.kind == "localhost" {
			a, b := h, h
			a.kind, a.text, a.af = "addr", "127.0.0.1", "inet"
			b.kind, b.text, b.af = "addr", "::1", "inet6"
			if h.mask >= 0 {
				a.text = maskText(a.text, h.mask)
				b.text = maskText(b.text, h.mask)
			}
			out = append(out, a, b)
			continue
		}
		out = append(out, h)
	}
	return out
}

// expand turns r into one Rule per combination of its lists, in pfctl's
// order (interface, protocol, source, source port, destination,
// destination port), and records their printed form.
func (p *parser) expand(r *ruleSpec, out *[]*Rule, depth int) []*Rule {
	ifaces := r.ifaces
	if len(ifaces) == 0 {
		ifaces = []ifSpec{{}}
	}
	protos := r.protos
	if len(protos) == 0 {
		protos = []string{""}
	}
	from, to := expandHosts(r.from), expandHosts(r.to)
	if len(from) == 0 {
		from = []hostItem{anyHost}
	}
	if len(to) == 0 {
		to = []hostItem{anyHost}
	}
	fps, tps := r.fromPorts, r.toPorts
	if len(fps) == 0 {
		fps = []portItem{{}}
	}
	if len(tps) == 0 {
		tps = []portItem{{}}
	}
	// rdr_consistent: its own messages, the rpool port, and only = or :
	// for the destination port
	if r.action == "rdr" {
		for _, pr := range protos {
			if pr == "tcp" || pr == "udp" || pr == "sctp" {
				continue
			}
			switch {
			case len(r.fromPorts) > 0:
				p.fail("src port only applies to tcp/udp")
			case len(r.toPorts) > 0:
				p.fail("dst port only applies to tcp/udp")
			case r.redir != nil && r.redir.port != nil:
				p.fail("rpool port only applies to tcp/udp")
			}
		}
		for _, dp := range r.toPorts {
			if dp.op != "=" && dp.op != ":" {
				p.fail("invalid port operator for rdr destination port")
			}
		}
	}
	// nat and binat skip this check in pfctl (nat_consistent is empty).
	if len(r.fromPorts)+len(r.toPorts) > 0 && r.action != "nat" && r.action != "binat" {
		for _, pr := range protos {
			if pr != "tcp" && pr != "udp" && pr != "sctp" {
				p.fail("port only applies to tcp/udp/sctp")
			}
		}
	}
	if len(r.icmp) > 0 {
		for _, pr := range protos {
			if r.icmpKind == "icmp-type" && pr != "icmp" || r.icmpKind == "icmp6-type" && pr != "ipv6-icmp" {
				p.fail("%s only applies to %s", r.icmpKind, map[string]string{"icmp-type": "icmp", "icmp6-type": "icmp6"}[r.icmpKind])
			}
		}
	}
	// user, group and icmp-type lists expand innermost
	type extra struct{ user, group, icmp string }
	var extras []extra
	for _, u := range orNone(r.user) {
		for _, g := range orNone(r.group) {
			for _, ic := range orNone(r.icmp) {
				extras = append(extras, extra{u, g, ic})
			}
		}
	}
	if n := len(ifaces) * len(protos) * len(from) * len(to) * len(fps) * len(tps) * len(extras); n > maxExpansion {
		p.fail("rule expands to %d rules (more than %d)", n, maxExpansion)
	}
	var made []*Rule
	routeMismatch := false
	for _, ifc := range ifaces {
		for _, pr := range protos {
			for _, src := range from {
				for _, sp := range fps {
					for _, dst := range to {
						for _, dp := range tps {
							for _, osName := range strings.Split(r.os, "\x00") {
								for _, x := range extras {
									af := r.af
									ok := true
									for _, h := range []hostItem{src, dst} {
										if h.af == "" {
											continue
										}
										if af == "" {
											af = h.af
										} else if af != h.af {
											ok = false
										}
									}
									filter := r.action != "nat" && r.action != "rdr" && r.action != "binat"
									if !filter && (pr == "icmp" && af == "inet6" || pr == "ipv6-icmp" && af == "inet") {
										ok = false
									}
									if r.redir != nil && ok {
										for _, h := range expandHosts(r.redir.hosts) {
											if h.af != "" && af == "" {
												af = h.af
											}
										}
									}
									if !ok {
										continue
									}
									if len(r.routeHosts) > 0 && af != "" && r.afTo == "" && !p.routeAFOK(r, af) {
										routeMismatch = true
										continue
									}
									if filter && ok {
										p.filterConsistent(r, pr, af, sp, dp)
									}
									c := combo{r: r, ifc: ifc, proto: pr, src: src, dst: dst, sp: sp, dp: dp, af: af, os: osName,
										user: x.user, group: x.group, icmp: x.icmp}
									rule := p.makeRule(c, depth)
									made = append(made, rule)
									p.emit(rule, out, depth)
								}
							}
						}
					}
				}
			}
		}
	}
	if len(made) == 0 {
		if routeMismatch {
			p.fail("no routing address with matching address family found.")
		}
		p.fail("rule expands to no valid combination")
	}
	return made
}

// filterConsistent is parse.y's filter_consistent for one expanded rule
// (expand_rule calls rule_consistent after it turned modulate and
// synproxy state into keep state for protocols other than tcp).
func (p *parser) filterConsistent(r *ruleSpec, proto, af string, sp, dp portItem) {
	if len(r.icmp) > 0 && af == "" {
		p.fail("must indicate address family with icmp-type/code")
	}
	if proto == "icmp" && af == "inet6" {
		p.fail("proto icmp doesn't match address family inet6")
	}
	if proto == "ipv6-icmp" && af == "inet" {
		p.fail("proto icmp6 doesn't match address family inet")
	}
	if strings.Contains(r.stateOpts, "overload <") && !strings.Contains(r.stateOpts, "max-src-conn") {
		p.fail("'overload' requires 'max-src-conn' or 'max-src-conn-rate'")
	}
	pass := r.action == "pass" || r.action == "anchor" // an anchor rule's action is PF_PASS
	if r.allowOpts && !pass {
		p.fail("allow-opts can only be specified for pass rules")
	}
	if r.fragment && r.action != "scrub" && (sp.op != "" || dp.op != "" || r.flags != "" && r.flags != "any" || len(r.icmp) > 0) {
		p.fail("fragments can be filtered only on IP header fields")
	}
	if strings.HasPrefix(r.returnSpec, "return-rst") && proto != "tcp" {
		p.fail("return-rst can only be applied to TCP rules")
	}
	state := r.state
	if (state == "modulate" || state == "synproxy") && proto != "" && proto != "tcp" {
		state = "keep"
	}
	if !pass && (state == "keep" || state == "modulate" || state == "synproxy") {
		p.fail("keep state is great, but only for pass rules")
	}
	if strings.Contains(r.stateOpts, "sloppy") && (state == "modulate" || state == "synproxy") {
		p.fail("sloppy state matching cannot be used with synproxy state or modulate state")
	}
	if r.action == "match" && p.opts.Release.Or() < policy.Release15 {
		// 14.0's "match rules rules"; 15 merged translation into
		// match and pass rules and its grammar was not readable here
		if strings.HasPrefix(r.divert, "divert-to") {
			p.fail("divert is not supported on match rules")
		}
		if r.route != "" {
			p.fail("route-to, reply-to, dup-to and fastroute must not be used on match rules")
		}
	}
}

func (p *parser) routeAFOK(r *ruleSpec, af string) bool {
	for _, rh := range r.routeHosts {
		if rh.addr.kind == "" || rh.addr.af == "" || rh.addr.af == af {
			return true
		}
		if af == "inet" && rh.addr.af == "inet6" {
			for _, o := range r.routeOpts {
				if o == "prefer-ipv6-nexthop" {
					return true
				}
			}
		}
	}
	return false
}

type combo struct {
	r        *ruleSpec
	ifc      ifSpec
	proto    string
	src, dst hostItem
	sp, dp   portItem
	af       string
	os       string
	user     string
	group    string
	icmp     string
}

func orNone(l []string) []string {
	if len(l) == 0 {
		return []string{""}
	}
	return l
}

func endpoint(h hostItem, pi portItem) Endpoint {
	e := Endpoint{Addr: h.text, Not: h.not, Op: pi.op, Lo: pi.lo, Hi: pi.hi}
	if pi.op == "" {
		e.Op = ""
	}
	return e
}

func (p *parser) makeRule(c combo, depth int) *Rule {
	r := c.r
	rule := &Rule{
		Kind:  r.action,
		File:  p.file,
		Line:  r.line,
		Quick: r.quick,
		Dir:   r.dir,
		AF:    c.af,
		Proto: c.proto,
		From:  endpoint(c.src, c.sp),
		To:    endpoint(c.dst, c.dp),
		NoNat: r.no,
		Pass:  r.natPass,
	}
	if c.ifc.name != "" {
		rule.Iface = c.ifc.name
		if c.ifc.not {
			rule.Iface = "!" + c.ifc.name
		}
	}
	rule.Catchall = (r.action == "pass" || r.action == "block") && !r.antispoof &&
		c.ifc.name == "" && r.af == "" && c.proto == "" && c.src.kind == "any" && !c.src.not &&
		c.dst.kind == "any" && !c.dst.not && c.sp.op == "" && c.dp.op == "" && r.os == "" &&
		r.user == nil && r.group == nil && r.icmp == nil && r.tos == "" && r.tagged == "" &&
		r.prob == "" && r.receivedOn == "" && len(r.extra) == 0 && !r.fragment &&
		r.maxPktRate == "" && r.maxPktSize == "" && r.rtable == "" && r.route == "" && r.flags == "" && !r.once
	switch r.action {
	case "nat", "rdr", "binat", "nat-anchor", "rdr-anchor", "binat-anchor":
		rule.Text = p.natText(c)
	default:
		rule.Text = p.filterText(c)
		if r.action != "scrub" {
			p.nr++
		}
	}
	rule.body = r.anchorBody
	return rule
}

func (p *parser) addLine(s string) {
	p.rs.lines = append(p.rs.lines, s)
}

// loadOrder is the order pfctl_rules loads (and, with -v, prints) a
// ruleset's rules: scrub, translation by type, then filter rules and
// anchors.
var loadOrder = [][]string{
	{"scrub"},
	{"nat", "nat-anchor"},
	{"rdr", "rdr-anchor"},
	{"binat", "binat-anchor"},
	{"pass", "block", "match", "anchor"},
}

// printRules appends the rules as pfctl -nv prints them when loading.
func (p *parser) printRules(rules []*Rule, depth int) {
	indent := strings.Repeat("  ", depth)
	for _, kinds := range loadOrder {
		for _, r := range rules {
			if !contains(kinds, r.Kind) {
				continue
			}
			if !r.body {
				p.addLine(indent + r.Text)
				continue
			}
			p.addLine(indent + r.Text + " {")
			p.printRules(r.Anchor, depth+1)
			p.addLine(indent + "}")
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func hostText(h hostItem, af string) string {
	return h.String()
}

func portText(pi portItem, proto string) string {
	switch pi.op {
	case "":
		return ""
	case "=", "!=":
		return fmt.Sprintf(" port %s %s", pi.op, serviceName(pi.lo, proto))
	case ":":
		if pi.lo == pi.hi {
			return fmt.Sprintf(" port = %s", serviceName(pi.lo, proto))
		}
		return fmt.Sprintf(" port %d:%d", pi.lo, pi.hi)
	case "><", "<>":
		return fmt.Sprintf(" port %d %s %d", pi.lo, pi.op, pi.hi)
	}
	return fmt.Sprintf(" port %s %d", pi.op, pi.lo)
}

func fromToText(c combo, os string) string {
	if c.src.kind == "any" && !c.src.not && c.dst.kind == "any" && !c.dst.not && c.sp.op == "" && c.dp.op == "" && os == "" {
		return " all"
	}
	s := " from " + hostText(c.src, c.af) + portText(c.sp, c.proto)
	if os != "" {
		s += " os \"" + os + "\""
	}
	return s + " to " + hostText(c.dst, c.af) + portText(c.dp, c.proto)
}

// labelExpand replaces pfctl's label macros for one expanded rule.
func (p *parser) labelExpand(s string, c combo) string {
	if !strings.Contains(s, "$") {
		return s
	}
	ifn := "any"
	if c.ifc.name != "" {
		ifn = c.ifc.name
	}
	port := func(pi portItem) string {
		switch pi.op {
		case "":
			return ""
		case "=":
			return strconv.Itoa(pi.lo)
		case ":":
			return fmt.Sprintf("%d:%d", pi.lo, pi.hi)
		}
		return fmt.Sprintf("%s%d", pi.op, pi.lo)
	}
	r := strings.NewReplacer(
		"$nr", strconv.Itoa(p.nr),
		"$if", ifn,
		"$proto", c.proto,
		"$srcaddr", c.src.String(),
		"$srcport", port(c.sp),
		"$dstaddr", c.dst.String(),
		"$dstport", port(c.dp),
	)
	return r.Replace(s)
}

func (p *parser) filterText(c combo) string {
	r := c.r
	var b strings.Builder
	switch r.action {
	case "block":
		rs := r.returnSpec
		if rs == "" {
			rs = p.blockPolicy
		}
		if rs == "return-icmp" {
			if c.af == "" {
				rs = "return-icmp(port-unr, port-unr)"
			} else {
				rs = "return-icmp(port-unr)"
			}
		}
		b.WriteString("block " + rs)
	case "anchor":
		b.WriteString("anchor")
		if r.anchorName != "" {
			name := r.anchorName
			if i := strings.LastIndexByte(name, '/'); i >= 0 {
				name = name[i:] // pfctl prints the last path component only
			}
			b.WriteString(" \"" + name + "\"")
		}
	default:
		if r.no {
			b.WriteString("no ")
		}
		b.WriteString(r.action)
	}
	if r.dir != "" {
		b.WriteString(" " + r.dir)
	}
	if r.log {
		b.WriteString(" log")
		if len(r.logOpts) > 0 {
			b.WriteString(" (" + strings.Join(r.logOpts, ", ") + ")")
		}
	}
	if r.quick {
		b.WriteString(" quick")
	}
	if c.ifc.name != "" {
		if c.ifc.not {
			b.WriteString(" on ! " + c.ifc.name)
		} else {
			b.WriteString(" on " + c.ifc.name)
		}
	}
	if r.route != "" {
		b.WriteString(" " + r.route)
		var hs []string
		for _, rh := range r.routeHosts {
			if !rh.hasIf {
				hs = append(hs, rh.ifname)
				continue
			}
			a := rh.addr
			if a.kind == "localhost" {
				if c.af == "inet6" {
					a.text = "::1"
				} else {
					a.text = "127.0.0.1"
				}
			}
			if a.kind == "" {
				hs = append(hs, "("+rh.ifname+")")
			} else {
				hs = append(hs, "("+rh.ifname+" "+a.String()+")")
			}
		}
		if len(hs) > 1 {
			b.WriteString(" { " + strings.Join(hs, ", ") + " }")
		} else if len(hs) == 1 {
			b.WriteString(" " + hs[0])
		}
		for _, o := range r.routeOpts {
			b.WriteString(" " + o)
		}
	}
	if c.af != "" {
		b.WriteString(" " + c.af)
	}
	if c.proto != "" {
		b.WriteString(" proto " + c.proto)
	}
	b.WriteString(fromToText(c, c.os))
	if r.receivedOn != "" {
		b.WriteString(" received-on " + r.receivedOn)
	}
	if c.user != "" {
		b.WriteString(" user " + c.user)
	}
	if c.group != "" {
		b.WriteString(" group " + c.group)
	}
	tcpish := c.proto == "" || c.proto == "tcp"
	state := r.state
	if state == "" && r.action == "pass" {
		state = "keep"
	}
	if (state == "modulate" || state == "synproxy") && !tcpish {
		state = "keep"
	}
	switch {
	case r.flags == "any":
		if r.action == "pass" && tcpish && state != "no" {
			b.WriteString(" flags any")
		}
	case r.flags != "":
		if tcpish {
			b.WriteString(" flags " + r.flags)
		}
	case r.action == "pass" && state != "no" && tcpish && !r.fragment:
		b.WriteString(" flags S/SA")
	}
	if c.icmp != "" {
		b.WriteString(" " + r.icmpKind + " " + c.icmp)
	}
	if r.tos != "" {
		b.WriteString(" tos " + r.tos)
	}
	for _, e := range r.extra {
		if strings.HasPrefix(e, "prio") || strings.HasPrefix(e, "set ") {
			b.WriteString(" " + e)
		}
	}
	if r.maxPktRate != "" {
		b.WriteString(" max-pkt-rate " + r.maxPktRate)
	}
	if r.maxPktSize != "" {
		b.WriteString(" max-pkt-size " + r.maxPktSize)
	}
	switch {
	case state == "no" && r.action == "pass":
		b.WriteString(" no state")
	case state == "keep" || state == "modulate" || state == "synproxy":
		if r.action != "anchor" {
			b.WriteString(" " + state + " state")
		}
	}
	if r.prob != "" {
		b.WriteString(" probability " + r.prob)
	}
	if r.stateOpts != "" {
		b.WriteString(" " + r.stateOpts)
	}
	if r.action == "scrub" {
		for _, e := range r.extra {
			if !strings.HasPrefix(e, "prio") && !strings.HasPrefix(e, "set ") {
				b.WriteString(" " + e)
			}
		}
		for _, s := range r.scrub {
			b.WriteString(" " + s)
		}
	} else {
		for _, e := range r.extra {
			if !strings.HasPrefix(e, "prio") && !strings.HasPrefix(e, "set ") {
				b.WriteString(" " + e)
			}
		}
		if r.fragment {
			b.WriteString(" fragment")
		}
	}
	if r.allowOpts {
		b.WriteString(" allow-opts")
	}
	for _, l := range r.labels {
		b.WriteString(" label \"" + p.labelExpand(l, c) + "\"")
	}
	if r.ridentif != "" {
		b.WriteString(" ridentifier " + r.ridentif)
	}
	if r.queue != "" {
		b.WriteString(" queue" + r.queue)
	}
	if r.tag != "" {
		b.WriteString(" tag " + p.labelExpand(r.tag, c))
	}
	if r.tagged != "" {
		if r.taggedNot {
			b.WriteString(" !")
		}
		b.WriteString(" tagged " + p.labelExpand(r.tagged, c))
	}
	if r.rtable != "" {
		b.WriteString(" rtable " + r.rtable)
	}
	if r.divert != "" {
		b.WriteString(" " + r.divert)
	}
	if r.natTo != nil {
		b.WriteString(" " + r.natKw + " " + r.natTo.text(c.af))
	}
	if r.rdrTo != nil {
		b.WriteString(" rdr-to " + r.rdrTo.text(c.af))
	}
	if r.afTo != "" {
		target := strings.TrimPrefix(r.afTo, "af-to ")
		b.WriteString(" " + r.afTo + " from " + r.afFrom.text(target))
		if r.afDst != nil {
			b.WriteString(" to " + r.afDst.text(target))
		}
	}
	if r.once {
		b.WriteString(" once")
	}
	for _, l := range r.limiters {
		b.WriteString(" " + l)
	}
	return b.String()
}

func (p *parser) natText(c combo) string {
	r := c.r
	var b strings.Builder
	if r.no {
		b.WriteString("no ")
	}
	b.WriteString(r.action)
	if strings.HasSuffix(r.action, "-anchor") {
		b.WriteString(" \"" + r.anchorName + "\"")
	}
	if r.natPass {
		b.WriteString(" pass")
	}
	if r.log {
		b.WriteString(" log")
		if len(r.logOpts) > 0 {
			b.WriteString(" (" + strings.Join(r.logOpts, ", ") + ")")
		}
	}
	if r.dir != "" {
		b.WriteString(" " + r.dir)
	}
	if c.ifc.name != "" {
		if c.ifc.not {
			b.WriteString(" on ! " + c.ifc.name)
		} else {
			b.WriteString(" on " + c.ifc.name)
		}
	}
	if c.af != "" {
		b.WriteString(" " + c.af)
	}
	if c.proto != "" {
		b.WriteString(" proto " + c.proto)
	}
	b.WriteString(fromToText(c, c.os))
	if r.tag != "" {
		b.WriteString(" tag " + r.tag)
	}
	if r.tagged != "" {
		if r.taggedNot {
			b.WriteString(" !")
		}
		b.WriteString(" tagged " + r.tagged)
	}
	if r.rtable != "" {
		b.WriteString(" rtable " + r.rtable)
	}
	if r.redir != nil {
		pl := *r.redir
		if pl.port != nil && pl.port.star {
			pt := *pl.port
			pt.hi = pt.lo + (c.dp.hi - c.dp.lo)
			if c.dp.op != ":" {
				pt.hi = pt.lo
			}
			pl.port = &pt
		}
		b.WriteString(" -> " + pl.text(c.af))
	}
	return b.String()
}
