package pf

import (
	"errors"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/policy"
)

// TestRealWorldClasses holds one minimal file per class of disagreement
// with pfctl found on real-world pf.conf files (issue 16). Each case says
// which release's pfctl it is for and what that pfctl does: accept (want
// "") or reject with the first error want. The grammar facts are from
// sbin/pfctl/parse.y of freebsd-src (commit 01c44736, the 14.0 grammar),
// see testdata/conformance.tsv.
func TestRealWorldClasses(t *testing.T) {
	files := map[string]string{
		"noeol.conf": "pass out",
	}
	tests := []struct {
		class, name string
		rel         policy.Release // 0: both releases
		src         string
		want        string
	}{
		// parse.y: only the set options whose grammar action calls
		// check_rulestate(PFCTL_STATE_OPTION) are ordered.
		{"set order", "skip after filter", 0, "pass all\nset skip on lo0\n", ""},
		{"set order", "state-policy after filter", 0, "pass all\nset state-policy if-bound\n", ""},
		{"set order", "ruleset-optimization after filter", 0, "pass all\nset ruleset-optimization basic\n", ""},
		{"set order", "hostid after filter", 0, "pass all\nset hostid 1\n", ""},
		{"set order", "require-order after filter", 0, "pass all\nset require-order yes\n", ""},
		{"set order", "state-defaults after filter", 0, "pass all\nset state-defaults no-sync\n", ""},
		{"set order", "state-defaults list", 0, "set state-defaults no-sync, max 100 source-track rule\npass all\n", ""},
		{"set order", "keepcounters after filter", 0, "pass all\nset keepcounters\n", ""},
		{"set order", "syncookies after filter", 0, "pass all\nset syncookies adaptive\n", ""},
		{"set order", "block-policy after filter", 0, "pass all\nset block-policy return\n", "t.conf:2: " + orderMsg},
		{"set order", "limit after filter", 0, "pass all\nset limit states 100\n", "t.conf:2: " + orderMsg},
		{"set order", "timeout after filter", 0, "pass all\nset timeout interval 10\n", "t.conf:2: " + orderMsg},
		{"set order", "unordered set keeps the state", 0, "pass all\nset skip on lo0\nscrub in all\n", "t.conf:3: " + orderMsg},

		// parse.y table_opt: '{' optnl host_list '}', and host_list's
		// items are ipspecs, which may be braced lists themselves.
		{"table list", "list macro in a table", 0, "lan = \"{ 10.0.0.1 10.0.0.2 }\"\ntable <t> { $lan 10.0.0.3 }\npass from <t>\n", ""},
		{"table list", "nested braces", 0, "table <t> { 10.0.0.1, { 10.0.0.2 10.0.0.3 } }\npass from <t>\n", ""},

		// parse.y natrule: static-port fails only when both proxy
		// ports differ from PF_NAT_PROXY_PORT_LOW/HIGH (50001/65535).
		{"static-port", "range up to 65535", 0, "nat on em0 from 10.0.0.0/8 to any -> 192.0.2.1 port 1024:65535 static-port\n", ""},
		{"static-port", "range from 50001", 0, "nat on em0 from 10.0.0.0/8 to any -> 192.0.2.1 port 50001:60000 static-port\n", ""},
		{"static-port", "single port", 0, "nat on em0 from 10.0.0.0/8 to any -> 192.0.2.1 port 2000 static-port\n",
			"t.conf:1: the 'static-port' option can't be used when specifying a port range"},
		{"static-port", "inner range", 0, "nat on em0 from 10.0.0.0/8 to any -> 192.0.2.1 port 2000:3000 static-port\n",
			"t.conf:1: the 'static-port' option can't be used when specifying a port range"},

		// services come from FreeBSD's /etc/services
		{"services", "name only FreeBSD has", 0, "pass in proto tcp to port sieve\npass in proto tcp to port kerberos-adm\n", ""},
		{"services", "alias", 0, "pass in proto tcp to port ident\n", ""},
		{"services", "udp-only name", 0, "pass in proto udp to port radacct\n", ""},
		{"services", "name FreeBSD lacks", 0, "pass in proto tcp to port rfb\n", "t.conf:1: unknown port rfb"},
		{"services", "IANA name FreeBSD lacks", 0, "pass in proto udp to port syslog-tls\n", "t.conf:1: unknown port syslog-tls"},

		// parse.y altqif: ALTQ interface queue_opts QUEUE qassign, with
		// queue_opts (bandwidth, scheduler, qlimit, tbrsize) in any order.
		{"altq order", "bandwidth before scheduler", 0, "altq on em0 bandwidth 10Mb hfsc queue { std }\nqueue std bandwidth 100% hfsc(default)\n", ""},
		{"altq order", "qlimit first", 0, "altq on em0 qlimit 50 cbq bandwidth 10Mb queue { std }\nqueue std cbq(default)\n", ""},
		{"altq order", "queue list last", 0, "altq on em0 hfsc queue { std } bandwidth 10Mb\nqueue std hfsc(default)\n", "t.conf:1: syntax error near \"bandwidth\""},
		{"altq order", "scheduler twice", 0, "altq on em0 hfsc bandwidth 10Mb cbq queue { std }\n", "t.conf:1: scheduler cannot be respecified"},
		{"altq order", "no scheduler", 0, "altq on em0 bandwidth 10Mb queue { std }\n", "t.conf:1: no scheduler specified!"},
		{"altq order", "no child queues", 0, "altq on em0 hfsc bandwidth 10Mb queue\n", "t.conf:1: no child queues specified"},
		{"altq order", "queue keyword required", 0, "altq on em0 hfsc bandwidth 10Mb\n", "t.conf:1: syntax error at end of line"},
		{"altq order", "codel needs no children", 0, "altq on em0 codelq bandwidth 10Mb queue\n", ""},
		{"altq order", "queue options in any order", 0, "altq on em0 cbq bandwidth 10Mb queue { a b }\nqueue a cbq(default) priority 2 bandwidth 50%\nqueue b qlimit 20 bandwidth 50% priority 3\n", ""},
		{"altq order", "queue option twice", 0, "altq on em0 cbq bandwidth 10Mb queue { a }\nqueue a bandwidth 50% priority 2 bandwidth 40%\n", "t.conf:2: bandwidth cannot be respecified"},
		{"altq order", "queue interface first", 0, "altq on em0 hfsc bandwidth 10Mb queue { std }\nqueue std bandwidth 10% on em0 hfsc(default)\n", "t.conf:2: syntax error near \"on\""},

		// a last line without a newline
		{"no newline", "rule", 0, "pass all", ""},
		{"no newline", "macro", 0, "pass all\nx = \"em0\"", ""},
		{"no newline", "comment", 0, "pass all\n# end", ""},
		{"no newline", "table", 0, "table <t> { 10.0.0.1 }", ""},
		{"no newline", "set option", 0, "set skip on lo0", ""},
		{"no newline", "inline anchor", 0, "anchor a {\n pass all\n}", ""},
		{"no newline", "included file", 0, "include \"noeol.conf\"\npass in all\n", ""},
		{"no newline", "continuation at the end", 0, "pass all \\", ""},

		// syntax that only FreeBSD 15's pfctl knows
		{"release", "rdr-to on 14", 14, "pass in on em0 proto tcp to port 80 rdr-to 10.0.0.1\n", "t.conf:1: rdr-to needs FreeBSD 15"},
		{"release", "nat-to on 14", 14, "match out on em0 from 10.0.0.0/8 nat-to (em0)\n", "t.conf:1: nat-to needs FreeBSD 15"},
		{"release", "binat-to on 14", 14, "pass on em0 from 10.0.0.1 binat-to 192.0.2.1\n", "t.conf:1: binat-to needs FreeBSD 15"},
		{"release", "af-to on 14", 14, "pass in inet6 from any to 64:ff9b::/96 af-to inet from 192.0.2.1\n", "t.conf:1: af-to needs FreeBSD 15"},
		{"release", "state limiter on 14", 14, "state limiter web id 1 limit 100\n", "t.conf:1: state limiter needs FreeBSD 15"},
		{"release", "rdr-to on 15", 15, "pass in on em0 proto tcp to port 80 rdr-to 10.0.0.1\n", ""},
		{"release", "nat-to on 15", 15, "match out on em0 from 10.0.0.0/8 nat-to (em0)\n", ""},
		{"release", "af-to on 15", 15, "pass in inet6 from any to 64:ff9b::/96 af-to inet from 192.0.2.1\n", ""},
		{"release", "14 syntax on 15", 15, "nat on em0 from 10.0.0.0/8 to any -> (em0)\npass all\n", ""},
		{"release", "14 syntax on 14", 14, "nat on em0 from 10.0.0.0/8 to any -> (em0)\npass all\n", ""},

		// a bare syntax error names the token it stopped at
		{"syntax token", "word", 0, "pass in\nblock inn all\n", "t.conf:2: syntax error near \"inn\""},
		{"syntax token", "end of line", 0, "pass in on\n", "t.conf:1: syntax error at end of line"},
		{"syntax token", "end of file", 0, "pass in from { 10.0.0.1 \n", "t.conf:2: syntax error at end of file"},
		{"syntax token", "punctuation", 0, "pass in from ( em0 )\npass in from { em0 ( }\n", "t.conf:2: syntax error near \"}\""},
	}
	for _, tt := range tests {
		rels := []policy.Release{tt.rel}
		if tt.rel == 0 {
			rels = policy.Releases
		}
		for _, rel := range rels {
			t.Run(tt.class+"/"+tt.name+"/"+rel.String(), func(t *testing.T) {
				opts := mapReader(files)
				opts.Release = rel
				_, err := Parse("t.conf", []byte(tt.src), opts)
				if tt.want == "" {
					if err != nil {
						t.Fatalf("FreeBSD %v's pfctl accepts this; we reject it:\n%v", rel, err)
					}
					return
				}
				var el ErrorList
				if !errors.As(err, &el) {
					t.Fatalf("FreeBSD %v's pfctl rejects this with %q; we accept it", rel, tt.want)
				}
				if el[0].Error() != tt.want {
					t.Errorf("first error %q, want %q\nall:\n%v", el[0].Error(), tt.want, err)
				}
			})
		}
	}
}

// TestNestedTableAddrs: a list macro inside a table's braces gives the
// table each address once.
func TestNestedTableAddrs(t *testing.T) {
	rs, err := Parse("t.conf", []byte("lan = \"{ 10.0.0.1 10.0.0.2 }\"\ntable <t> { $lan, 10.0.0.3 }\npass from <t>\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rs.Tables[0].Addrs, " "); got != "10.0.0.1 10.0.0.2 10.0.0.3" {
		t.Errorf("table addresses %q", got)
	}
}

// TestServicesTable: the generated table is FreeBSD's (names and
// aliases, first entry wins for a port), not a hand-picked subset.
func TestServicesTable(t *testing.T) {
	if len(servicesSource) != 40 {
		t.Errorf("servicesSource %q is not a commit id", servicesSource)
	}
	for name, port := range map[string]int{"ssh": 22, "www": 80, "ident": 113, "submission": 587, "http-alt": 591, "sieve": 4190, "nfs": 2049} {
		if got, ok := lookupService(name); !ok || got != port {
			t.Errorf("lookupService(%q) = %d, %v; want %d", name, got, ok, port)
		}
	}
	for port, name := range map[int]string{465: "smtps", 80: "http", 8080: "http-alt", 5555: "personal-agent"} {
		if got := serviceName(port, "tcp"); got != name {
			t.Errorf("serviceName(%d) = %q, want %q", port, got, name)
		}
	}
	if got := serviceName(512, "udp"); got != "biff" {
		t.Errorf("serviceName(512/udp) = %q, want biff", got)
	}
	if len(servicesTCP) < 900 {
		t.Errorf("only %d tcp names: not the whole services file", len(servicesTCP))
	}
}

// TestStricterFixed: productions the conformance table had as "stricter"
// (we rejected what pfctl accepts), each accepted now.
func TestStricterFixed(t *testing.T) {
	for _, src := range []string{
		"set fail-policy return\npass all\n",
		"no scrub in on em0 all\nscrub in all\n",
		"pass in proto tcp to port 22 set tos af41\npass in tos EF\npass in tos va\n",
		"pass in from (em0:network:0)\n",
		"antispoof for (em0)\nantispoof for { (em0) lo0 }\n",
		"pass in proto tcp to port 80 divert-to 8080\npass in proto tcp to port 81 divert-to 127.0.0.1 port 8081\n",
		"altq on em0 cbq bandwidth 10Mbit queue { a }\nqueue a bandwidth 12.5% cbq(default)\n",
		"altq on em0 cbq bandwidth 1GB queue { a }\nqueue a bandwidth 100KBit cbq(default)\n",
	} {
		if _, err := Parse("t.conf", []byte(src), Options{}); err != nil {
			t.Errorf("%q rejected:\n%v", src, err)
		}
	}
	for src, want := range map[string]string{
		"pass in from (em0:network:peer)\n":              "t.conf:1: illegal combination of interface modifiers",
		"pass in from (em0:nets)\n":                      "t.conf:1: interface em0:nets has bad modifier",
		"pass in from (0em)\n":                           "t.conf:1: invalid interface name '0em'",
		"altq on em0 cbq bandwidth 10Mbps queue { a }\n": "t.conf:1: unknown unit Mbps",
		"altq on em0 cbq bandwidth 120% queue { a }\n":   "t.conf:1: bandwidth spec out of range",
	} {
		_, err := Parse("t.conf", []byte(src), Options{})
		var el ErrorList
		if !errors.As(err, &el) || el[0].Error() != want {
			t.Errorf("%q: got %v, want %s", src, err, want)
		}
	}
}

// TestNameWarnings: names pfctl resolves on the host when it loads the
// file are warnings naming the file and line, not errors.
func TestNameWarnings(t *testing.T) {
	src := "table <t> { gw.example.org 10.0.0.1 }\npass in from www.example.org to (em0)\n" +
		"pass out from em1:network\npass out proto tcp user alice group www\npass in on em2 from 10.0.0.1\n"
	rs, err := Parse("t.conf", []byte(src), Options{})
	if err != nil {
		t.Fatalf("names are not errors offline: %v", err)
	}
	var got []string
	for _, w := range rs.Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		"t.conf:1: gw.example.org must be an interface or a host name that resolves on the host (pfctl looks it up when loading)",
		"t.conf:2: www.example.org must be an interface or a host name that resolves on the host (pfctl looks it up when loading)",
		"t.conf:3: interface em1 must exist on the host (pfctl reads its addresses when loading)",
		"t.conf:4: user alice must exist on the host (pfctl looks it up when loading)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// a known interface resolves offline: no warning
	rs, err = Parse("t.conf", []byte("pass out from em1:network\n"), Options{Interfaces: map[string][]string{"em1": {"10.0.0.1/24"}}})
	if err != nil || len(rs.Warnings) != 0 {
		t.Errorf("known interface: err %v, warnings %v", err, rs.Warnings)
	}
}

// TestEmptyDynIf: an empty interface name in parentheses is an error, not
// a crash (found while fuzzing the dynaddr check).
func TestEmptyDynIf(t *testing.T) {
	_, err := Parse("t.conf", []byte("pass in from (\"\")\n"), Options{})
	var el ErrorList
	if !errors.As(err, &el) || el[0].Error() != "t.conf:1: invalid interface name ''" {
		t.Errorf("got %v", err)
	}
}
