package pf

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func mapReader(files map[string]string) Options {
	return Options{ReadFile: func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}}
}

func TestParseErrors(t *testing.T) {
	files := map[string]string{
		"sub.conf":   "pass out\n\n  pass in on em0 proto tcp to port 99999\n",
		"loop.conf":  "include \"loop.conf\"\n",
		"t.table":    "10.0.0.1 ; ok\n# comment\nnot_an_address!x\n",
		"good.table": "; c\n10.0.0.0/8 # c\n!10.1.0.0/16\n",
		"anchor.pf":  "pass in\nbogus\n",
	}
	tests := []struct {
		name, src string
		want      string // first error
	}{
		{"syntax", "pass in\npass inn\n", "t.conf:2: syntax error near \"inn\""},
		{"macro undefined", "pass in on $ext_if\n", "t.conf:1: macro 'ext_if' not defined"},
		{"order", "pass in all\nnat on em0 from any to any -> 10.0.0.1\n", "t.conf:2: " + orderMsg},
		{"order scrub after filter", "block all\n\nscrub in all\n", "t.conf:3: " + orderMsg},
		{"include error names the included file", "pass in\ninclude \"sub.conf\"\n", "sub.conf:3: illegal port value 99999"},
		{"include missing", "\ninclude \"nope.conf\"\n\n\npass\n", "t.conf:2: failed to include file nope.conf (No such file or directory)"},
		{"include loop", "include \"loop.conf\"\n", "loop.conf:1: too many includes (loop?) at loop.conf"},
		{"continuation keeps physical lines", "pass in \\\n  on em0 \\\n  proto tcp to port 80:70\n", "t.conf:3: invalid port range"},
		{"unknown proto", "pass proto tcpp\n", "t.conf:1: unknown protocol tcpp"},
		{"port without proto", "pass in to any port 22\n", "t.conf:1: port only applies to tcp/udp/sctp"},
		{"block route-to", "block in route-to (em0 10.0.0.1)\n", "t.conf:1: route-to, reply-to and dup-to are not supported on block rules"},
		{"route-to family", "pass in route-to (em0 2001:db8::1) inet\n", "t.conf:1: no routing address with matching address family found."},
		{"family mismatch", "pass in inet from 2001:db8::1\n", "t.conf:1: rule expands to no valid combination"},
		{"table file entry", "table <t> file \"t.table\"\n", `t.conf:1: cannot load "t.table": Invalid argument (line 3: "not_an_address!x")`},
		{"table file missing", "\ntable <t> persist file \"x.table\"\n", `t.conf:2: cannot load "x.table": No such file or directory`},
		{"unterminated string", "pass in label \"abc\n", "t.conf:1: reached end of file while parsing quoted string"},
		{"unclosed anchor", "anchor foo {\n pass in\n", "t.conf:3: syntax error at end of file"},
		{"rule in anchor", "anchor foo {\n  pass in\n  pass inn\n}\n", "t.conf:3: syntax error near \"inn\""},
		{"load anchor file errors", "load anchor foo from \"anchor.pf\"\n", "anchor.pf:2: syntax error near \"bogus\""},
		{"static-port on rdr", "rdr on em0 proto tcp from any to any -> 10.0.0.1 static-port\n", "t.conf:1: the 'static-port' option is only valid with nat rules"},
		{"bad netmask", "pass from 10.0.0.0/33\n", "t.conf:1: could not parse host specification"},
		{"bad address", "pass from 10.0.0.256\n", "t.conf:1: could not parse host specification"},
		{"bad flags", "pass proto tcp flags S/SX\n", "t.conf:1: bad flags SX"},
		{"set option", "set block-policy reject\n", `t.conf:1: syntax error near "reject"`},
		{"keyword as macro name", "pass = \"x\"\n", `t.conf:1: syntax error near "="`},
		{"empty macro list", "a = \"{ }\"\npass from $a\n", "t.conf:2: syntax error at end of line"},
		{"timeout name", "set timeout tcp.frist 30\n", "t.conf:1: unknown timeout tcp.frist"},
		{"reserved anchor", "anchor \"_x\"\n", "t.conf:1: anchor names beginning with '_' are reserved for internal use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.conf", []byte(tt.src), mapReader(files))
			var el ErrorList
			if !errors.As(err, &el) {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
			if el[0].Error() != tt.want {
				t.Errorf("first error %q, want %q\nall:\n%v", el[0].Error(), tt.want, err)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	files := map[string]string{"good.table": "; c\n10.0.0.0/8 # c\n!10.1.0.0/16\n", "sub.conf": "pass out\n"}
	src := `# every section, in order
ext = "em0"
set require-order yes
set limit { states 10000, frags 5000 }
set skip on { lo0 }
scrub in on $ext all fragment reassemble
altq on $ext priq bandwidth 10Mb queue { q_def }
queue q_def priq(default)
table <good> const counters file "good.table"
no nat on $ext from 10.1.0.0/16 to any
nat on $ext inet from 10.0.0.0/8 to any -> ($ext:0) static-port
rdr pass on $ext proto tcp to port 8000:8010 -> 10.0.0.5 port 9000:*
binat on $ext from 10.0.0.9 to any -> 192.0.2.9
antispoof log quick for $ext inet
block return log (all, to pflog0) on $ext
pass in quick on $ext inet proto tcp from ! <good> port >= 1024 to ($ext) port { ssh, 443 } \
	user { root, 1000 } flags S/SAFR modulate state \
	(max 100, source-track rule, max-src-conn 10, max-src-conn-rate 5/1, overload <bad> flush global, if-bound) \
	label "in-$dstport" tag IN queue q_def rtable 0 probability 50%
pass out route-to { (em1 192.0.2.1), (em2 198.51.100.1) } round-robin inet proto udp to port 53 keep state
pass in inet proto icmp icmp-type { echoreq, unreach code 3 } tos lowdelay
anchor "jails/*" on $ext
anchor "inline" in {
	pass in proto tcp to port 22
	anchor "deep" {
		block
	}
}
include "sub.conf"
`
	rs, err := Parse("t.conf", []byte(src), mapReader(files))
	if err != nil {
		t.Fatalf("rejected:\n%v", err)
	}
	out := rs.Normalized()
	for _, w := range []string{
		"table <good> const counters file \"good.table\"\n",
		"no nat on em0 inet from 10.1.0.0/16 to any\n",
		"rdr pass on em0 inet proto tcp from any to any port 8000:8010 -> 10.0.0.5 port 9000:9010\n",
		"pass in quick on em0 inet proto tcp from ! <good> port >= 1024 to (em0) port = ssh user = 1000 flags S/SAFR modulate state probability 50% (max 100, source-track rule, max-src-conn 10, max-src-conn-rate 5/1, overload <bad> flush global, if-bound) label \"in-22\" queue q_def tag IN rtable 0\n",
		"pass in inet proto icmp all icmp-type echoreq tos 0x10 keep state\n",
		"pass in inet proto icmp all icmp-type unreach code 3 tos 0x10 keep state\n",
		"anchor \"inline\" in all {\n  pass in proto tcp from any to any port = ssh flags S/SA keep state\n  anchor \"deep\" all {\n    block drop all\n  }\n}\n",
		"pass out all flags S/SA keep state\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if got := rs.TableRefs["bad"]; got != 1 {
		t.Errorf("TableRefs[bad] = %d, want 1 (one overload clause)", got)
	}
	var anchors int
	for _, r := range rs.AllRules() {
		if r.Kind == "anchor" {
			anchors++
		}
	}
	if anchors != 3 {
		t.Errorf("%d anchors, want 3", anchors)
	}
}

func TestAntispoofInterfaces(t *testing.T) {
	opts := Options{Interfaces: map[string][]string{"em0": {"192.0.2.10/24", "2001:db8::10/64"}}}
	rs, err := Parse("t.conf", []byte("antispoof quick for { em0 lo0 } inet\nantispoof for em1\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := `block drop in quick on ! em0 inet from 192.0.2.0/24 to any
block drop in quick inet from 192.0.2.10 to any
block drop in quick on ! lo0 inet from lo0:network to any
block drop in on ! em1 from em1:network to any
block drop in from em1 to any
`
	if got := rs.Normalized(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestScopedAddress(t *testing.T) {
	rs, err := Parse("t.conf", []byte("pass in on em0 inet6 from fe80::1%em0 to any\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "pass in on em0 inet6 from fe80::1%em0 to any flags S/SA keep state\n"; rs.Normalized() != want {
		t.Errorf("got %q, want %q", rs.Normalized(), want)
	}
}

func TestRequireOrderNo(t *testing.T) {
	if _, err := Parse("t.conf", []byte("set require-order no\npass all\nnat on em0 from any to any -> 10.0.0.1\n"), Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestEndpointMatchesPort(t *testing.T) {
	tests := []struct {
		e    Endpoint
		port int
		want bool
	}{
		{Endpoint{}, 1, true},
		{Endpoint{Op: "=", Lo: 22}, 22, true},
		{Endpoint{Op: "=", Lo: 22}, 23, false},
		{Endpoint{Op: ":", Lo: 10, Hi: 20}, 20, true},
		{Endpoint{Op: "><", Lo: 10, Hi: 20}, 10, false},
		{Endpoint{Op: "<>", Lo: 10, Hi: 20}, 21, true},
		{Endpoint{Op: ">=", Lo: 1024}, 1023, false},
		{Endpoint{Op: "!=", Lo: 1}, 2, true},
	}
	for _, tt := range tests {
		if got := tt.e.MatchesPort(tt.port); got != tt.want {
			t.Errorf("%+v.MatchesPort(%d) = %v", tt.e, tt.port, got)
		}
	}
}
