package pf

import (
	"errors"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/policy"
)

// parseCase is one minimal file and what FreeBSD's pfctl does with it:
// accept (want "") or reject with want as the first error.
type parseCase struct {
	name, src, want string
}

func runParseCases(t *testing.T, cases []parseCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.conf", []byte(tt.src), Options{})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("pfctl accepts this; we reject it:\n%v", err)
				}
				return
			}
			var el ErrorList
			if !errors.As(err, &el) {
				t.Fatalf("pfctl rejects this with %q; we accept it", tt.want)
			}
			if el[0].Error() != tt.want {
				t.Errorf("first error %q, want %q\nall:\n%v", el[0].Error(), tt.want, err)
			}
		})
	}
}

// TestLexerBackslash: parse.y's lgetc, outside quotes, drops a backslash
// before any character and deletes a backslash-newline outright (the
// lines are glued, no blank); inside quotes yylex keeps a backslash
// unless it escapes the quote or a newline.
func TestLexerBackslash(t *testing.T) {
	runParseCases(t, []parseCase{
		{"escaped dollar expands the macro", "ext = \"em0\"\npass out on \\$ext all\n", ""},
		{"backslash inside a word", "pass in on em\\0 all\n", ""},
		{"continuation keeps leading blanks", "pass in \\\n  on em0 all\n", ""},
		{"continuation glues words", "pass in\\\non em0 all\n", "t.conf:1: syntax error near \"inon\""},
		{"line after a continuation", "pass in \\\n on em0 all\nblock inn all\n", "t.conf:3: syntax error near \"inn\""},
	})
	rs, err := Parse("t.conf", []byte("pass in all label \"a\\ b\\\"c\\\nd\"\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.Rules[0].Text; !strings.Contains(got, `label "a\ b"cd"`) {
		t.Errorf("quoted backslashes: %q", got)
	}
	// yylex's buffer is 8096 bytes: a longer word is "string too long"
	_, err = Parse("t.conf", []byte("pass in on "+strings.Repeat("a", maxString)+" all\npass all\n"), Options{})
	var el ErrorList
	if !errors.As(err, &el) || el[0].Error() != "t.conf:1: string too long" || len(el) != 1 {
		msg := ""
		if err != nil {
			msg = err.Error()[:min(len(err.Error()), 80)]
		}
		t.Errorf("long word: got %q, want one error, string too long", msg)
	}
}

// TestProtocols: protocol names are getprotobyname's, from FreeBSD's
// /etc/protocols (protocols.txt, protocols_table.go), aliases included;
// parse.y's proto_item refuses protocol 0 and casts to u_int8_t.
func TestProtocols(t *testing.T) {
	if len(protocolsSource) != 40 {
		t.Errorf("protocolsSource %q is not a commit id", protocolsSource)
	}
	runParseCases(t, []parseCase{
		{"name only FreeBSD has", "pass in proto dccp all\npass in proto st2 all\n", ""},
		{"upper-case alias", "pass in proto TCP all\npass in proto OSPFIGP all\n", ""},
		{"alias", "pass in proto vrrp all\npass in proto icmp6 all\n", ""},
		{"divert is 258, cast to 2", "pass in proto divert all\n", ""},
		{"name FreeBSD lacks", "pass in proto st all\n", "t.conf:1: unknown protocol st"},
		{"commented-out name", "pass in proto hopopt all\n", "t.conf:1: unknown protocol hopopt"},
		{"ip is protocol 0", "pass in proto ip all\n", "t.conf:1: proto 0 cannot be used"},
		{"number 0", "pass in proto 0 all\n", "t.conf:1: proto 0 cannot be used"},
		{"number out of range", "pass in proto 256 all\n", "t.conf:1: protocol outside range"},
		{"quoted number is a name", "pass in proto \"6\" all\n", "t.conf:1: unknown protocol 6"},
	})
	rs, err := Parse("t.conf", []byte("pass in proto { TCP, vrrp, divert, 58 } all\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs.Rules {
		got = append(got, r.Proto)
	}
	if strings.Join(got, " ") != "tcp carp igmp ipv6-icmp" {
		t.Errorf("printed protocols %v, want getprotobynumber's names", got)
	}
}

// TestEtherRules: parse.y's etherrule with proto lists, MAC lists, "all",
// match, l3 and every etherfilter_opt, expanded and printed per rule as
// expand_eth_rule and print_eth_rule do.
func TestEtherRules(t *testing.T) {
	runParseCases(t, []parseCase{
		{"proto list", "ether pass in on bridge0 proto { 0x0800, 0x86dd } all\n", ""},
		{"proto number", "ether block out proto 2054\n", ""},
		{"mac list", "ether block in from { 00:01:02:03:04:05, ! 0:a:b:c:d:e } to 00:11:22:33:44:55/24\n", ""},
		{"all", "ether pass all\n", ""},
		{"match", "ether match in on em0 all tag l2\n", ""},
		{"block return", "ether block return in all\n", ""},
		{"l3", "ether pass in l3 from 10.0.0.0/8 to <t> label \"x\"\ntable <t> { 10.1.0.1 }\n", ""},
		{"opts", "ether pass quick on em0 bridge-to em1 proto 0x0800 queue (q) ! tagged a dnqueue 3 ridentifier 7\n", ""},
		{"symbolic ethertype", "ether pass proto ip all\n", "t.conf:1: Symbolic EtherType not yet supported"},
		{"ethertype 0", "ether pass proto 0x0000\n", "t.conf:1: proto 0 cannot be used"},
		{"bad hex", "ether pass proto 0xzz\n", "t.conf:1: invalid EtherType hex"},
		{"bad mac", "ether pass from 00:01:02:03:04\n", "t.conf:1: invalid MAC address"},
		{"bad mac mask", "ether pass to 00:01:02:03:04:05/49\n", "t.conf:1: invalid MAC mask length"},
		{"l3 dynamic address", "ether pass l3 from (em0)\n", "t.conf:1: from must be an address or table"},
		{"l3 range", "ether pass l3 to 10.0.0.1 - 10.0.0.9\n", "t.conf:1: to must be an address or table"},
		{"six labels", "ether pass label a label b label c label d label e label f\n", "t.conf:1: label can only be used 5 times"},
		{"queue twice", "ether pass queue a queue b\n", "t.conf:1: queue cannot be redefined"},
		{"log is not layer 2", "ether pass log all\n", "t.conf:1: syntax error near \"log\""},
		{"after filter rules", "pass all\nether pass all\n", "t.conf:2: " + orderMsg},
	})
	rs, err := Parse("t.conf", []byte("ether pass in on { em0 em1 } proto { 0x0800 2054 } from { 0:1:2:3:4:5 ! 00:aa:bb:cc:dd:ee } l3 to 10.0.0.1 label \"l\" ridentifier 3\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`ether pass in on em0 proto 0x0800 from 00:01:02:03:04:05 l3 from any to 10.0.0.1 label "l" ridentifier 3`,
		`ether pass in on em0 proto 0x0800 from ! 00:aa:bb:cc:dd:ee l3 from any to 10.0.0.1 label "l" ridentifier 3`,
		`ether pass in on em0 proto 0x0806 from 00:01:02:03:04:05 l3 from any to 10.0.0.1 label "l" ridentifier 3`,
		`ether pass in on em0 proto 0x0806 from ! 00:aa:bb:cc:dd:ee l3 from any to 10.0.0.1 label "l" ridentifier 3`,
		`ether pass in on em1 proto 0x0800 from 00:01:02:03:04:05 l3 from any to 10.0.0.1 label "l" ridentifier 3`,
		`ether pass in on em1 proto 0x0800 from ! 00:aa:bb:cc:dd:ee l3 from any to 10.0.0.1 label "l" ridentifier 3`,
		`ether pass in on em1 proto 0x0806 from 00:01:02:03:04:05 l3 from any to 10.0.0.1 label "l" ridentifier 3`,
		`ether pass in on em1 proto 0x0806 from ! 00:aa:bb:cc:dd:ee l3 from any to 10.0.0.1 label "l" ridentifier 3`,
	}
	if got := strings.TrimSpace(rs.Normalized()); got != strings.Join(want, "\n") {
		t.Errorf("expanded:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// TestEtherAnchors: parse.y's etheranchorrule, named or inline, whose
// braces hold only ether rules and ether anchors.
func TestEtherAnchors(t *testing.T) {
	runParseCases(t, []parseCase{
		{"named", "ether anchor \"l2\" in on em0\n", ""},
		{"inline", "ether anchor \"l2\" in on em0 {\n ether pass all\n ether anchor inner {\n  ether block from 00:01:02:03:04:05\n }\n}\npass all\n", ""},
		{"unnamed inline", "ether anchor {\n ether pass all\n}\n", ""},
		{"unnamed, no rules", "ether anchor in on em0\n", "t.conf:1: anchors without explicit rules must specify a name"},
		{"reserved name", "ether anchor \"_x\"\n", "t.conf:1: anchor names beginning with '_' are reserved for internal use"},
		{"path inline", "ether anchor \"a/b\" {\n ether pass all\n}\n", "t.conf:3: anchor paths containing '/' cannot be used for inline anchors."},
		{"filter rule inside", "ether anchor a {\n pass all\n}\n", "t.conf:2: syntax error near \"pass\""},
		{"brace needs a newline", "ether anchor a { ether pass all }\n", "t.conf:1: syntax error near \"ether\""},
		{"no filter options", "ether anchor a label \"x\"\n", "t.conf:1: syntax error near \"label\""},
	})
	rs, err := Parse("t.conf", []byte("ether anchor \"l2\" in on em0 {\n ether pass all\n ether anchor inner {\n  ether block from 00:01:02:03:04:05\n }\n}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := "ether anchor \"l2\" in on em0 l3 all {\n  ether pass l3 all\n  ether anchor \"inner\" l3 all {\n    ether block from 00:01:02:03:04:05 l3 all\n  }\n}\n"
	if got := rs.Normalized(); got != want {
		t.Errorf("printed:\n%s\nwant:\n%s", got, want)
	}
	if n := len(rs.AllRules()); n != 4 {
		t.Errorf("%d rules, want the anchor, its two rules and the inner rule", n)
	}
}

// TestTopLevelBrace: parse.y's "'{' fakeanchor '}' '\n'" can never
// match (fakeanchor has no production that does not start with
// fakeanchor), so pfctl reports a syntax error at the brace.
func TestTopLevelBrace(t *testing.T) {
	runParseCases(t, []parseCase{
		{"first line", "{\npass all\n}\n", "t.conf:1: syntax error near \"{\""},
		{"after rules", "pass all\n{ pass in all }\n", "t.conf:2: syntax error near \"{\""},
	})
}

// TestAfter140: syntax FreeBSD 14.0's parse.y does not have (not in its
// lookup() keyword table) but FreeBSD 15.0's pf.conf(5) documents is
// accepted for both releases, with a warning for a 14 host, which must
// run a later 14 release that carries it.
func TestAfter140(t *testing.T) {
	for src, what := range map[string]string{
		"pass in proto icmp max-pkt-rate 100/10\n":                             "max-pkt-rate",
		"pass in max-pkt-size 1500\n":                                          "max-pkt-size",
		"pass in received-on em0\n":                                            "received-on",
		"pass in once\n":                                                       "once",
		"pass in proto tcp keep state (pflow)\n":                               "pflow",
		"pass in proto sctp keep state (allow-related)\n":                      "allow-related",
		"match log (matches) inet proto tcp\n":                                 "log (matches)",
		"nat on em0 from 10.0.0.0/8 to any -> (em0) endpoint-independent\n":    "endpoint-independent",
		"pass in on em1 route-to (em0 2001:db8::1) prefer-ipv6-nexthop inet\n": "prefer-ipv6-nexthop",
	} {
		for _, rel := range policy.Releases {
			opts := Options{Release: rel}
			rs, err := Parse("t.conf", []byte(src), opts)
			if err != nil {
				t.Errorf("%d: %q rejected: %v", rel, src, err)
				continue
			}
			var got []string
			for _, w := range rs.Warnings {
				if strings.Contains(w.Msg, "FreeBSD 14.0") {
					got = append(got, w.Error())
				}
			}
			want := []string{}
			if rel == policy.Release14 {
				want = append(want, "t.conf:1: "+what+" is not in FreeBSD 14.0's pfctl: the host must run a later 14 release that has it")
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%d: %q warnings %q, want %q", rel, src, got, want)
			}
		}
	}
}

// TestHostLimits: an rtable id must be below the host's net.fibs, which
// pfctl reads when it parses (rt_tableid_max): a warning offline; and
// divert-reply is an error on FreeBSD (parse.y filter_opt DIVERTREPLY).
func TestHostLimits(t *testing.T) {
	rs, err := Parse("t.conf", []byte("pass in all rtable 0\npass in all rtable 3\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Warnings) != 1 || rs.Warnings[0].Error() != "t.conf:2: rtable 3 needs net.fibs above 3 on the host (pfctl checks it; the default is 1)" {
		t.Errorf("warnings %v", rs.Warnings)
	}
	runParseCases(t, []parseCase{
		{"divert-reply", "pass out proto tcp divert-reply\n", "t.conf:1: divert-reply has no meaning in FreeBSD pf(4)"},
	})
}

// TestScrubOpts: parse.y's scrub_opts, for scrub rules: commas between
// options (a false rejection before), each at most once, only scrub
// options, fragcache's two forms, and the scrubrule checks.
func TestScrubOpts(t *testing.T) {
	runParseCases(t, []parseCase{
		{"commas", "scrub in all no-df, random-id, max-mss 1400, min-ttl 5\n", ""},
		{"fragment no reassemble", "scrub in all fragment no reassemble\n", ""},
		{"reassemble tcp", "scrub all reassemble tcp\n", ""},
		{"tagged", "scrub in all ! tagged x rtable 0\n", ""},
		{"respecified", "scrub in all no-df no-df\n", "t.conf:1: no-df cannot be respecified"},
		{"min-ttl range", "scrub in all min-ttl 300\n", "t.conf:1: illegal min-ttl value 300"},
		{"reassemble udp", "scrub in all reassemble udp\n", "t.conf:1: scrub reassemble supports only tcp, not 'udp'"},
		{"filter option", "scrub in all label x\n", "t.conf:1: syntax error near \"label\""},
		{"fragment crop is OpenBSD's", "scrub in all fragment crop\n", "t.conf:1: syntax error near \"crop\""},
		{"quick", "scrub in quick all\n", "t.conf:1: scrub rules do not support 'quick'"},
		{"reassemble tcp with direction", "scrub in all reassemble tcp\n", "t.conf:1: reassemble tcp rules can not specify direction"},
		{"trailing comma", "scrub in all no-df,\n", "t.conf:1: syntax error at end of line"},
	})
}

// TestLaxerFixed: checks of parse.y (pfrule, anchorrule, filter_opt,
// state_opt_item, filter_consistent, rdr_consistent, option) that we did
// not make, so a file passed our check and failed pfctl -nf on the host.
func TestLaxerFixed(t *testing.T) {
	runParseCases(t, []parseCase{
		{"route-to without direction", "pass route-to (em0 10.0.0.1) all\n", "t.conf:1: direction must be explicit with rules that specify routing"},
		{"route-to with direction", "pass out route-to (em0 10.0.0.1) all\n", ""},
		{"flags always false", "pass in proto tcp all flags SA/S\n", "t.conf:1: flags always false"},
		{"flags on udp", "pass in proto udp all flags S/SA\n", "t.conf:1: flags only apply to tcp"},
		{"flags on a list with tcp", "pass in proto { tcp udp } all flags S/SA\n", ""},
		{"flags without slash", "pass in proto tcp all flags S\n", "t.conf:1: syntax error at end of line"},
		{"os on udp", "pass in proto udp from any os OpenBSD\n", "t.conf:1: OS fingerprinting only apply to tcp"},
		{"keep state twice", "pass in all keep state keep state\n", "t.conf:1: modulate or keep cannot be redefined"},
		{"flags twice", "pass in proto tcp all flags S/SA flags any\n", "t.conf:1: flags cannot be redefined"},
		{"six labels", "pass in all label a label b label c label d label e label f\n", "t.conf:1: label can only be used 5 times"},
		{"max-src-conn 0", "pass in proto tcp all keep state (max-src-conn 0)\n", "t.conf:1: 'max-src-conn' must be > 0"},
		{"max twice", "pass in all keep state (max 10, max 20)\n", "t.conf:1: state option 'max' multiple definitions"},
		{"global source-track", "pass in proto tcp all keep state (source-track global, max-src-nodes 3)\n", "t.conf:1: 'max-src-nodes' is incompatible with 'source-track global'"},
		{"interval is not a state timeout", "pass in all keep state (interval 5)\n", "t.conf:1: illegal state timeout interval"},
		{"overload alone", "table <bad> persist\npass in proto tcp all keep state (overload <bad>)\n", "t.conf:2: 'overload' requires 'max-src-conn' or 'max-src-conn-rate'"},
		{"return-rst without tcp", "block return-rst in all\n", "t.conf:1: return-rst can only be applied to TCP rules"},
		{"return-rst on tcp", "block return-rst in proto tcp all\n", ""},
		{"keep state on block", "block in all keep state\n", "t.conf:1: keep state is great, but only for pass rules"},
		{"allow-opts on block", "block in all allow-opts\n", "t.conf:1: allow-opts can only be specified for pass rules"},
		{"fragment with ports", "pass in proto tcp to port 80 fragment\n", "t.conf:1: fragments can be filtered only on IP header fields"},
		{"sloppy with modulate", "pass in proto tcp all modulate state (sloppy)\n", "t.conf:1: sloppy state matching cannot be used with synproxy state or modulate state"},
		{"modulate on udp is keep", "pass in proto udp all modulate state (sloppy)\n", ""},
		{"icmp-type needs af", "pass in proto icmp all icmp-type echoreq\n", "t.conf:1: must indicate address family with icmp-type/code"},
		{"icmp on inet6", "pass in proto icmp from { 10.0.0.1, ::1 }\n", "t.conf:1: proto icmp doesn't match address family inet6"},
		{"anchor keeps no state", "anchor a all keep state\n", "t.conf:1: cannot specify state handling on anchors"},
		{"anchor log", "anchor a log all\n", "t.conf:1: syntax error near \"log\""},
		{"rdr port operator", "rdr on em0 proto tcp to port > 80 -> 10.0.0.1\n", "t.conf:1: invalid port operator for rdr destination port"},
		{"rdr port range", "rdr on em0 proto tcp to port 80:90 -> 10.0.0.1 port 8080\n", ""},
		{"antispoof filter option", "antispoof for em0 keep state\n", "t.conf:1: syntax error near \"keep\""},
		{"antispoof label", "antispoof for em0 label \"x\" ridentifier 3\n", ""},
		{"skip on negation", "set skip on ! lo0\n", "t.conf:1: skip on ! <interface> is not supported"},
		{"hostid 0", "set hostid 0\n", "t.conf:1: hostid must be non-zero"},
		{"syncookies value", "set syncookies sometimes\n", "t.conf:1: illegal value for syncookies"},
		{"syncookies percentages", "set syncookies adaptive (start 25%, end 12%)\n", ""},
		{"syncookies percentage range", "set syncookies adaptive (start 125%, end 12%)\n", "t.conf:1: illegal percentage value"},
		{"debug level", "set debug verbose\n", "t.conf:1: error setting debuglevel verbose"},
		{"state-defaults twice", "set state-defaults no-sync\nset state-defaults max 10\n", "t.conf:2: cannot redefine state-defaults"},
	})
	// no-df and friends are scrub (...) options in 14.0's grammar, filter
	// options in 15.0's pf.conf(5)
	_, err := Parse("t.conf", []byte("pass in all no-df\n"), Options{Release: policy.Release14})
	var el ErrorList
	if !errors.As(err, &el) || el[0].Error() != "t.conf:1: syntax error near \"no-df\"" {
		t.Errorf("no-df on a pass rule for 14: %v", err)
	}
	if _, err := Parse("t.conf", []byte("pass in all no-df\n"), Options{Release: policy.Release15}); err != nil {
		t.Errorf("no-df on a pass rule for 15: %v", err)
	}
}

// TestBinatRules: parse.y's binatrule (no BINAT natpasslog interface af
// proto FROM ipspec toipspec tag tagged rtable redirection) and its
// checks; natrule has no direction either.
func TestBinatRules(t *testing.T) {
	runParseCases(t, []parseCase{
		{"binat", "binat on em0 from 10.0.0.1 to any -> 192.0.2.1\n", ""},
		{"binat networks", "binat on em0 inet from 10.0.0.0/24 -> 192.0.2.0/24\n", ""},
		{"no binat", "no binat on em0 from 10.0.0.1 to 192.0.2.9\n", ""},
		{"binat all", "binat on em0 all -> 192.0.2.1\n", "t.conf:1: syntax error near \"all\""},
		{"binat port", "binat on em0 from 10.0.0.1 port 80 -> 192.0.2.1\n", "t.conf:1: syntax error near \"port\""},
		{"binat list", "binat on em0 from { 10.0.0.1 10.0.0.2 } -> 192.0.2.1\n", "t.conf:1: multiple binat ip addresses"},
		{"binat redirect list", "binat on em0 from 10.0.0.1 -> { 192.0.2.1 192.0.2.2 }\n", "t.conf:1: syntax error near \"{\""},
		{"binat table", "table <t> { 10.0.0.1 }\nbinat on em0 inet from <t> -> 192.0.2.1\n", "t.conf:2: invalid use of table <t> as the source address of a binat rule"},
		{"binat versions", "binat on em0 from 10.0.0.1 to ::1 -> 192.0.2.1\n", "t.conf:1: binat ip versions must match"},
		{"binat masks", "binat on em0 from 10.0.0.0/24 -> 192.0.2.0/25\n", "t.conf:1: 'binat' source mask and redirect mask must be the same"},
		{"binat without af", "binat on em0 from any -> em1\n", "t.conf:1: address family (inet/inet6) undefined"},
		{"binat without ->", "binat on em0 from 10.0.0.1\n", "t.conf:1: 'binat' rule requires '-> address'"},
		{"no binat with ->", "no binat on em0 from 10.0.0.1 -> 192.0.2.1\n", "t.conf:1: 'no binat' rule does not need '->'"},
		{"nat without ->", "nat on em0 from 10.0.0.0/8\n", "t.conf:1: translation rule requires '-> address'"},
		{"no nat with ->", "no nat on em0 from 10.0.0.0/8 -> 192.0.2.1\n", "t.conf:1: translation rule with 'no' does not need '->'"},
		{"nat direction", "nat in on em0 from 10.0.0.0/8 -> 192.0.2.1\n", "t.conf:1: syntax error near \"in\""},
	})
}
