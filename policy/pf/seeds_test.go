package pf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedFiles are the table files the seed configurations load.
var seedFiles = map[string][]byte{
	"/etc/ips_blocklist":   []byte("# DShield\n192.0.2.0/24\n198.51.100.0/24 ; comment\n"),
	"/etc/ips_martians":    []byte("0.0.0.0/8\n10.0.0.0/8 # private\n127.0.0.0/8\n"),
	"/etc/ips_stripe":      []byte("203.0.113.10\n203.0.113.11\n"),
	"/etc/ips_fastmail":    []byte("66.111.4/24\n"),
	"/etc/ips_xnic_peers":  []byte("198.51.100.7\n"),
	"/etc/ip_ipg_b":        []byte("10.0.4.40\n"),
	"/etc/ip_inode_b":      []byte("10.0.4.30\n"),
	"/etc/ip_peer_ipg_b":   []byte("10.0.56.40\n"),
	"/etc/ip_peer_inode_b": []byte("10.0.56.30\n"),
	"/etc/bogons":          []byte("0.0.0.0/8\n240.0.0.0/4\n"),
}

func seedOptions() Options {
	return Options{ReadFile: func(name string) ([]byte, error) {
		if b, ok := seedFiles[name]; ok {
			return b, nil
		}
		return nil, os.ErrNotExist
	}}
}

func readSeed(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "seeds", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSeedsAccepted(t *testing.T) {
	tests := []struct {
		file  string
		rules int // expanded top-level rules
		want  []string
	}{
		{"uirig.conf", 36, []string{
			"nat on xnic inet from 10.0.2.0/24 to any -> (xnic:0) round-robin",
			"rdr on xnic inet proto tcp from any to any port = https -> 10.0.2.20",
			"block drop in quick on xnic from urpf-failed to any",
			"pass in quick on xnic proto tcp from any to any port = http flags S/SA keep state (max-src-conn-rate 100/10, overload <ratelimit> flush global)",
			"pass out quick on ibridge proto tcp from any to any port = 5433 flags S/SA keep state",
		}},
		{"multiwan.conf", 3, []string{
			"table <localnet> persist { 216.28.123.0/24 216.28.124.0/24 216.28.125.0/24 216.29.126.0/24 }",
			"pass quick on em1 from <localnet> to <localnet> flags S/SA keep state",
			"pass on fxp0 all flags S/SA modulate state",
		}},
		{"multiwan-dsl.conf", 88, []string{
			"pass in quick on em1 route-to (em0 192.168.0.1) inet proto tcp from 216.28.123.34 to ! <localnet> port = ssh flags S/SA modulate state label \"DSL-1 216.28.123.34:22\"",
			"pass out quick on fxp0 route-to (em0 192.168.0.1) proto udp from em0 to any port = https keep state label \"DSL-2 em0:443\"",
		}},
		{"osfp.conf", 7, []string{
			"set fingerprints \"/etc/pf.os\"",
			"pass in quick proto tcp from any os \"Windows XP\" to bge0 flags S/SA keep state label \"Windows XP\"",
			"block drop in on bge0 proto tcp from any os \"unknown\" to any port = smtp",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			rs, err := Parse(tt.file, readSeed(t, tt.file), seedOptions())
			if err != nil {
				t.Fatalf("rejected:\n%v", err)
			}
			if len(rs.Rules) != tt.rules {
				t.Errorf("%d rules, want %d", len(rs.Rules), tt.rules)
			}
			out := rs.Normalized()
			for _, w := range tt.want {
				if !strings.Contains(out, w+"\n") {
					t.Errorf("normalized output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestSeedCorruptions changes one character of a seed and expects pfctl's
// error at the line of the change.
func TestSeedCorruptions(t *testing.T) {
	tests := []struct {
		file, old, new string
		msg            string
	}{
		{"uirig.conf", "pass in  quick on ipg_a", "pass in  quicj on ipg_a", `syntax error near "quicj"`},
		{"uirig.conf", "to <pgpeer> port 5434", "to <pgpeer> port 5x34", "unknown port 5x34"},
		{"uirig.conf", "fragment reassemble no-df", "fragment reassemble no-dg", `syntax error near "no-dg"`},
		{"uirig.conf", "from $xbridge_net -> (xnic:0)", "from $xbridge_nex -> (xnic:0)", "macro 'xbridge_nex' not defined"},
		{"uirig.conf", "table <ratelimit>\n", "table <ratelimit \n", "syntax error at end of line"},
		{"uirig.conf", "overload <ratelimit> flush global", "overload <ratelimit> flash global", `syntax error near "flash"`},
		{"uirig.conf", "from <xpeers> to port 2230", "from <xpeers> to port 2230:", "unknown port 2230:"},
		{"uirig.conf", "antispoof quick for xnic", "antispoof quick fro xnic", `syntax error near "fro"`},
		{"uirig.conf", "pass out on inic proto udp", "pass out on inic proto udq", "unknown protocol udq"},
		{"uirig.conf", `table <email>     file "/etc/ips_fastmail"`, `table <email>     file "/etc/ips_fastmaij"`, `cannot load "/etc/ips_fastmaij": No such file or directory`},
		{"multiwan.conf", "table <localnet> persist {", "table <localnet> persist (", `syntax error near "("`},
		{"multiwan.conf", "pass on $ext_if1 modulate state", "pass on $ext_if1 modulate stat", `syntax error near "stat"`},
		{"multiwan.conf", `int_if="em1"`, `int_if=="em1"`, `syntax error near "="`},
		{"multiwan.conf", "from <localnet> to <localnet>", "from <localnet> to <localnet]", "syntax error at end of line"},
		{"multiwan-dsl.conf", "route-to ($ext_if2 $ext_gw2) proto { tcp udp } from $dslnet", "route-to ($ext_if2 $ext_gw2( proto { tcp udp } from $dslnet", `syntax error near "("`},
		{"osfp.conf", `os "Linux 2.4" to $ext_if`, `os "Linux 2.4" to $ext_iff`, "macro 'ext_iff' not defined"},
		{"osfp.conf", "from any os \"unknown\" to any port 25", "from any os \"unknown\" to any porr 25", `syntax error near "porr"`},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.new, func(t *testing.T) {
			src := string(readSeed(t, tt.file))
			i := strings.Index(src, tt.old)
			if i < 0 || strings.Count(src, tt.old) != 1 {
				t.Fatalf("%q is not once in %s", tt.old, tt.file)
			}
			wantLine := strings.Count(src[:i], "\n") + 1
			for j := 0; j < len(tt.old) && j < len(tt.new); j++ {
				if tt.old[j] != tt.new[j] {
					wantLine = strings.Count(src[:i+j], "\n") + 1
					break
				}
			}
			bad := src[:i] + tt.new + src[i+len(tt.old):]
			_, err := Parse(tt.file, []byte(bad), seedOptions())
			var el ErrorList
			if !errors.As(err, &el) {
				t.Fatalf("accepted, want %s:%d: %s", tt.file, wantLine, tt.msg)
			}
			if el[0].File != tt.file || el[0].Line != wantLine || el[0].Msg != tt.msg {
				t.Errorf("first error %q, want %s:%d: %s", el[0], tt.file, wantLine, tt.msg)
			}
		})
	}
}
