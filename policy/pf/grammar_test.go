package pf

import (
	"errors"
	"strings"
	"testing"
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
