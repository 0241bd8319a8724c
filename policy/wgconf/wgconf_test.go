package wgconf

import (
	"errors"
	"strings"
	"testing"
)

const key = "YIDmDZlTGpVFmLQSaGHfNmMTJRNBgMnh4YtEE9eo/3k=" // 32 bytes

// rendered is a config in the form bundler/topology renders: no key in
// the file, PostUp loads it from the host.
const rendered = `# Rendered by rigger from the infra repo: edit the repo, not this file.
[Interface]
Address = 10.9.0.1/24, fd00:9::1/64
ListenPort = 51820
MTU = 1420
Table = off
PostUp = wg set %i private-key /usr/local/etc/wireguard/wg0.key
PostUp = route -q -n add -inet 10.8.0.0/16 -interface wg0 -fib 1

[Peer]
# serverB wg0
PublicKey = ` + key + `
AllowedIPs = 10.9.0.2/32
Endpoint = 192.0.2.2:51820
PersistentKeepalive = 25
`

func noShell(string) error { return nil }

func TestCheckRendered(t *testing.T) {
	if errs := Check("/usr/local/etc/wireguard/wg0.conf", []byte(rendered), Options{Shell: noShell}); len(errs) > 0 {
		t.Fatalf("rendered config rejected:\n%v", errs)
	}
	// with the real sh -n
	if errs := Check("wg0.conf", []byte(rendered), Options{}); len(errs) > 0 {
		t.Fatalf("rendered config rejected by sh -n:\n%v", errs)
	}
}

func TestCheckErrors(t *testing.T) {
	edit := func(old, new string) string {
		if !strings.Contains(rendered, old) {
			t.Fatalf("%q not in the rendered config", old)
		}
		return strings.Replace(rendered, old, new, 1)
	}
	tests := []struct{ name, src, want string }{
		{"short key", edit("PublicKey = "+key, "PublicKey = abc="), "wg0.conf:12: PublicKey: not a 32-byte base64 key"},
		{"key not base64", edit("PublicKey = "+key, "PublicKey = "+strings.Repeat("!", 44)), "wg0.conf:12: PublicKey: not a 32-byte base64 key"},
		{"private key inline ok", edit("PostUp = wg set %i private-key /usr/local/etc/wireguard/wg0.key", "PrivateKey = "+key), ""},
		{"no private key", edit("PostUp = wg set %i private-key /usr/local/etc/wireguard/wg0.key\n", ""), "wg0.conf:2: no private key: set PrivateKey, or load it with PostUp = wg set %i private-key FILE"},
		{"bad address", edit("10.9.0.1/24", "10.9.0.1/33"), "wg0.conf:3: Address \"10.9.0.1/33\": want an address or address/prefix"},
		{"bad allowed ips", edit("AllowedIPs = 10.9.0.2/32", "AllowedIPs = 10.9.0.2/32, 10.9.0/24"), "wg0.conf:13: AllowedIPs \"10.9.0/24\": want an address or address/prefix"},
		{"endpoint without port", edit("192.0.2.2:51820", "192.0.2.2"), "wg0.conf:14: Endpoint \"192.0.2.2\": want host:port"},
		{"endpoint v6 without brackets", edit("192.0.2.2:51820", "2001:db8::2:51820"), "wg0.conf:14: Endpoint \"2001:db8::2:51820\": an IPv6 address needs brackets: [address]:port"},
		{"endpoint v6 ok", edit("192.0.2.2:51820", "[2001:db8::2]:51820"), ""},
		{"endpoint host name ok", edit("192.0.2.2:51820", "vpn.example.org:51820"), ""},
		{"endpoint bad port", edit("192.0.2.2:51820", "192.0.2.2:http"), "wg0.conf:14: Endpoint \"192.0.2.2:http\": port must be a number from 1 to 65535"},
		{"mtu", edit("MTU = 1420", "MTU = 100"), "wg0.conf:5: MTU \"100\": want a number from 576 to 65535"},
		{"table name", edit("Table = off", "Table = main"), "wg0.conf:6: Table \"main\": want a number from 0 to 2147483647"},
		{"table number ok", edit("Table = off", "Table = 12"), ""},
		{"fwmark ok", edit("MTU = 1420", "FwMark = 0x1f"), ""},
		{"fwmark bad", edit("MTU = 1420", "FwMark = mark"), "wg0.conf:5: FwMark \"mark\": want a number from 0 to 4294967295"},
		{"listen port", edit("ListenPort = 51820", "ListenPort = 70000"), "wg0.conf:4: ListenPort \"70000\": want a number from 0 to 65535"},
		{"keepalive", edit("PersistentKeepalive = 25", "PersistentKeepalive = often"), "wg0.conf:15: PersistentKeepalive \"often\": want a number from 0 to 65535"},
		{"unknown key", edit("MTU = 1420", "Mtu2 = 1420"), "wg0.conf:5: line unrecognized: unknown key Mtu2 in [Interface]"},
		{"keys ignore case", edit("MTU = 1420", "mtu = 1420"), ""},
		{"no equals", edit("MTU = 1420", "MTU 1420"), "wg0.conf:5: line unrecognized: \"MTU 1420\" (want Key = Value)"},
		{"unknown section", edit("[Peer]", "[Peers]"), "wg0.conf:10: unknown section [Peers] (want [Interface] or [Peer])"},
		{"peer without key", edit("PublicKey = "+key+"\n", ""), "wg0.conf:10: [Peer] without PublicKey"},
		{"before any section", "MTU = 1420\n" + rendered, "wg0.conf:1: MTU outside a section: the file must start with [Interface]"},
		{"hook syntax", edit("-fib 1", "-fib 1; if"), "wg0.conf:8: PostUp: sh -n: broken"},
	}
	shell := func(cmd string) error {
		if strings.HasSuffix(cmd, "; if") {
			return errors.New("broken")
		}
		if strings.Contains(cmd, "%i") {
			return errors.New("%i not replaced")
		}
		return nil
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := Check("/usr/local/etc/wireguard/wg0.conf", []byte(tt.src), Options{Shell: shell})
			got := ""
			if len(errs) > 0 {
				got = strings.TrimPrefix(errs[0].Error(), "/usr/local/etc/wireguard/")
			}
			if got != tt.want {
				t.Errorf("first error %q, want %q\nall: %v", got, tt.want, errs)
			}
		})
	}
}

func TestCheckSize(t *testing.T) {
	big := make([]byte, MaxSize+1)
	errs := Check("wg0.conf", big, Options{Shell: noShell})
	if len(errs) != 1 || !strings.Contains(errs[0].Msg, "larger than") {
		t.Errorf("oversized file: %v", errs)
	}
}

// FuzzCheck: any input gives errors that name the file and a line of it
// (0 only for whole-file problems), never panics, and a config that
// passes keeps passing with blank lines and comments added.
func FuzzCheck(f *testing.F) {
	f.Add([]byte(rendered))
	f.Add([]byte("[Interface]\nPrivateKey = " + key + "\n[Peer]\nPublicKey = " + key + "\nEndpoint = [::1]:1\n"))
	f.Add([]byte("[Peer\nx=\n=y\n[Interface]#c\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		errs := Check("wg0.conf", src, Options{Shell: noShell})
		lines := strings.Count(string(src), "\n") + 1
		for _, e := range errs {
			if e.File != "wg0.conf" || e.Line < 0 || e.Line > lines {
				t.Fatalf("error outside the file: %v (%d lines)", e, lines)
			}
		}
		if len(errs) == 0 && len(src) < MaxSize-100 {
			more := append([]byte("# comment\n\n"), src...)
			if again := Check("wg0.conf", more, Options{Shell: noShell}); len(again) != 0 {
				t.Fatalf("a comment and a blank line broke a valid config: %v", again)
			}
		}
	})
}
