package pf

import (
	"fmt"
	"strconv"
	"strings"
)

// Layer-2 rules, as sbin/pfctl/parse.y (freebsd-src 01c44736) reads them:
//
//	etherrule:       ETHER action dir quick interface bridge etherproto
//	                 etherfromto l3fromto etherfilter_opts
//	etheranchorrule: ETHER ANCHOR anchorname dir quick interface etherproto
//	                 etherfromto l3fromto etherpfa_anchor
//
// expand_eth_rule makes one rule per interface, protocol, source and
// destination MAC, and l3 source and destination.

// maxLabels is PF_RULE_MAX_LABEL_COUNT (sys/net/pfvar.h).
const maxLabels = 5

// macAddr is one parse.y mac: MAC, MAC/len or MAC&mask, maybe negated.
type macAddr struct {
	text string // printed form
	not  bool
}

func (m macAddr) String() string {
	if m.not {
		return "! " + m.text
	}
	return m.text
}

// etherSpec is an ether rule or anchor as written, before expansion.
type etherSpec struct {
	anchor     bool
	anchorName string
	action     string
	dir        string
	quick      bool
	ifaces     []ifSpec
	bridge     string
	protos     []int
	src, dst   []macAddr
	l3         ruleSpec
	opts       []string
}

func (p *parser) etherRule(out *[]*Rule, depth int) {
	line := p.tok.line
	p.next() // ether
	e := &etherSpec{}
	if p.accept("anchor") {
		e.anchor = true
		if p.tok.kind == tkString || p.tok.kind == tkWord && !keywords[p.tok.s] {
			e.anchorName = p.next().s
		}
		if strings.HasPrefix(e.anchorName, "_") || strings.Contains(e.anchorName, "/_") {
			p.fail("anchor names beginning with '_' are reserved for internal use")
		}
	} else {
		// parse.y action: pass | match | block blockspec; only the
		// action is kept for layer 2 (pfctl_eth_rule has no return)
		e.action = p.oneOf("pass", "block", "match")
		if e.action == "block" {
			p.blockReturn()
		}
	}
	if p.isWord("in") || p.isWord("out") {
		e.dir = p.next().s
	}
	e.quick = p.accept("quick")
	if p.accept("on") {
		e.ifaces = p.ifList()
	}
	if !e.anchor && p.accept("bridge-to") {
		// bridge: BRIDGE_TO STRING
		if p.tok.kind != tkString && (p.tok.kind != tkWord || keywords[p.tok.s]) {
			p.syntax()
		}
		e.bridge = p.next().s
	}
	if p.accept("proto") {
		e.protos = braceList(p, listOpts{nonEmpty: true}, p.etherProto)
	}
	p.etherFromTo(e)
	if p.accept("l3") {
		p.fromTo(&e.l3)
		p.l3Check(e.l3.from, "from")
		p.l3Check(e.l3.to, "to")
	}
	if !e.anchor {
		p.etherFilterOpts(e)
		for _, r := range p.expandEther(e, line, depth) {
			p.emit(r, out, depth)
		}
		return
	}
	// etherpfa_anchor: '{' '\n' etherpfa_anchorlist '}', or nothing
	var body []*Rule
	inline := p.isP("{")
	if inline {
		p.next()
		if p.tok.kind != tkNL {
			p.syntax()
		}
		save := p.etherBody
		p.etherBody = true
		p.stmts(&body, depth+1, true)
		p.etherBody = save
		p.expect("}")
		if strings.Contains(e.anchorName, "/") {
			p.fail("anchor paths containing '/' cannot be used for inline anchors.")
		}
	} else if e.anchorName == "" {
		p.fail("anchors without explicit rules must specify a name")
	}
	for _, r := range p.expandEther(e, line, depth) {
		r.Anchor = body
		r.body = inline
		p.emit(r, out, depth)
	}
}

// etherProto is parse.y's etherproto_item: a NUMBER up to 65565 (sic)
// or a 0x hex EtherType (sscanf "0x%4x"); symbolic EtherTypes are an
// error; 0 cannot be used.
func (p *parser) etherProto() int {
	quoted := p.tok.kind == tkString
	w := p.str()
	var n int
	if v, err := strconv.Atoi(w); err == nil && !quoted {
		if v < 0 || v > 65565 {
			p.fail("protocol outside range")
		}
		n = v
	} else if strings.HasPrefix(w, "0x") {
		hex := w[2:]
		i := 0
		for i < len(hex) && i < 4 && strings.IndexByte("0123456789abcdefABCDEF", hex[i]) >= 0 {
			i++
		}
		if i == 0 {
			p.fail("invalid EtherType hex")
		}
		v, _ := strconv.ParseUint(hex[:i], 16, 16)
		n = int(v)
	} else {
		p.fail("Symbolic EtherType not yet supported")
	}
	if uint16(n) == 0 {
		p.fail("proto 0 cannot be used")
	}
	return int(uint16(n))
}

// etherFromTo is parse.y's etherfromto: ALL | [FROM macspec] [TO macspec].
func (p *parser) etherFromTo(e *etherSpec) {
	if p.accept("all") {
		return
	}
	if p.accept("from") {
		e.src = p.macSpec()
	}
	if p.accept("to") {
		e.dst = p.macSpec()
	}
}

// macSpec is xmac | '{' optnl mac_list '}'; xmac is [!] mac.
func (p *parser) macSpec() []macAddr {
	return braceList(p, listOpts{nonEmpty: true}, func() macAddr {
		not := p.accept("!")
		m := p.mac()
		m.not = not
		return m
	})
}

// mac is parse.y's mac: string '/' NUMBER (node_mac_from_string_masklen)
// or string, with an optional &mask (node_mac_from_string_mask).
func (p *parser) mac() macAddr {
	w := p.str()
	addr, mask, hasMask := strings.Cut(w, "&")
	text, ok := macText(addr)
	if !ok {
		p.fail("invalid MAC address")
	}
	if hasMask {
		m, ok := macText(mask)
		if !ok {
			p.fail("invalid MAC address")
		}
		text += "&" + m
	}
	if p.accept("/") {
		if p.tok.kind != tkWord {
			p.syntax()
		}
		n, err := strconv.Atoi(p.tok.s)
		if err != nil {
			p.syntax()
		}
		if n < 0 || n > 48 {
			p.fail("invalid MAC mask length")
		}
		p.next()
		text += "/" + strconv.Itoa(n)
	}
	return macAddr{text: text}
}

// macText reads a MAC as node_mac_from_string's sscanf does: six groups
// of one or two hex digits separated by ':', anything after the sixth
// ignored. It returns the address printed with two digits a group.
func macText(s string) (string, bool) {
	var groups [6]string
	i := 0
	for g := 0; g < 6; g++ {
		if g > 0 {
			if i >= len(s) || s[i] != ':' {
				return "", false
			}
			i++
		}
		j := i
		for j < len(s) && j-i < 2 && strings.IndexByte("0123456789abcdefABCDEF", s[j]) >= 0 {
			j++
		}
		if j == i {
			return "", false
		}
		groups[g] = strings.ToLower(s[i:j])
		if len(groups[g]) == 1 {
			groups[g] = "0" + groups[g]
		}
		i = j
	}
	return strings.Join(groups[:], ":"), true
}

// l3Check is parse.y's l3fromto: each side must be an address or a
// table.
func (p *parser) l3Check(hosts []hostItem, side string) {
	for _, h := range hosts {
		switch h.kind {
		case "addr", "table", "name", "ifaddrs", "localhost", "any":
		default:
			p.fail("%s must be an address or table", side)
		}
	}
}

// etherFilterOpts is parse.y's etherfilter_opts.
func (p *parser) etherFilterOpts(e *etherSpec) {
	var labels []string
	var ident, queue, tag, tagged, pipe string
	for p.tok.kind == tkWord || p.isP("!") {
		switch {
		case p.accept("label"):
			if len(labels) >= maxLabels {
				p.fail("label can only be used %d times", maxLabels)
			}
			labels = append(labels, "label \""+p.str()+"\"")
		case p.accept("ridentifier"):
			ident = fmt.Sprintf("ridentifier %d", p.number(0, 1<<32-1, "ridentifier"))
		case p.accept("queue"):
			// etherqname: QUEUE STRING | QUEUE '(' STRING ')'
			if queue != "" {
				p.fail("queue cannot be redefined")
			}
			if p.accept("(") {
				queue = "queue " + p.str()
				p.expect(")")
			} else {
				queue = "queue " + p.str()
			}
		case p.accept("tag"):
			tag = "tag " + p.str()
		case p.isWord("tagged") || p.isP("!"):
			not := p.accept("!")
			p.expect("tagged")
			tagged = "tagged " + p.str()
			if not {
				tagged = "! " + tagged
			}
		case p.isWord("dnpipe") || p.isWord("dnqueue"):
			kw := p.next().s
			pipe = fmt.Sprintf("%s %d", kw, p.number(0, 65535, kw))
		default:
			p.syntax()
		}
	}
	// print_eth_rule's order
	e.opts = append(labels, ident, queue, tag, tagged, pipe)
}

// expandEther makes expand_eth_rule's rules, printed as print_eth_rule
// (sbin/pfctl/pfctl_parser.c) does.
func (p *parser) expandEther(e *etherSpec, line, depth int) []*Rule {
	ifaces := e.ifaces
	if len(ifaces) == 0 {
		ifaces = []ifSpec{{}}
	}
	protos := e.protos
	if len(protos) == 0 {
		protos = []int{0}
	}
	srcs, dsts := e.src, e.dst
	if len(srcs) == 0 {
		srcs = []macAddr{{}}
	}
	if len(dsts) == 0 {
		dsts = []macAddr{{}}
	}
	l3src, l3dst := expandHosts(e.l3.from), expandHosts(e.l3.to)
	if len(l3src) == 0 {
		l3src = []hostItem{{kind: "any", text: "any"}}
	}
	if len(l3dst) == 0 {
		l3dst = []hostItem{{kind: "any", text: "any"}}
	}
	var rules []*Rule
	for _, ifc := range ifaces {
		for _, proto := range protos {
			for _, src := range srcs {
				for _, dst := range dsts {
					for _, s3 := range l3src {
						for _, d3 := range l3dst {
							pr := proto
							if pr == 0 {
								pr = etherTypeOf(s3.af)
							}
							if pr == 0 {
								pr = etherTypeOf(d3.af)
							}
							rules = append(rules, &Rule{Kind: "ether", File: p.file, Line: line,
								Text: etherText(e, ifc, pr, src, dst, s3, d3), Quick: e.quick, Dir: e.dir,
								Iface: ifaceText(ifc)})
						}
					}
				}
			}
		}
	}
	return rules
}

func ifaceText(i ifSpec) string {
	if i.not {
		return "!" + i.name
	}
	return i.name
}

// etherTypeOf is pf_af_to_proto: an l3 address sets the EtherType.
func etherTypeOf(af string) int {
	switch af {
	case "inet":
		return 0x0800
	case "inet6":
		return 0x86dd
	}
	return 0
}

func etherText(e *etherSpec, ifc ifSpec, proto int, src, dst macAddr, s3, d3 hostItem) string {
	var b strings.Builder
	b.WriteString("ether ")
	switch {
	case e.anchor && e.anchorName == "":
		b.WriteString("anchor")
	case e.anchor:
		fmt.Fprintf(&b, "anchor %q", e.anchorName)
	default:
		b.WriteString(e.action)
	}
	if e.dir != "" {
		b.WriteString(" " + e.dir)
	}
	if e.quick {
		b.WriteString(" quick")
	}
	if ifc.name != "" {
		if ifc.not {
			b.WriteString(" on ! " + ifc.name)
		} else {
			b.WriteString(" on " + ifc.name)
		}
	}
	if e.bridge != "" {
		b.WriteString(" bridge-to " + e.bridge)
	}
	if proto != 0 {
		fmt.Fprintf(&b, " proto 0x%04x", proto)
	}
	if src.text != "" {
		b.WriteString(" from " + src.String())
	}
	if dst.text != "" {
		b.WriteString(" to " + dst.String())
	}
	if s3.kind == "any" && d3.kind == "any" {
		b.WriteString(" l3 all")
	} else {
		b.WriteString(" l3 from " + s3.String() + " to " + d3.String())
	}
	for _, o := range e.opts {
		if o != "" {
			b.WriteString(" " + o)
		}
	}
	return b.String()
}
