package lint

import (
	"strings"
	"testing"
)

// TestHostRunsEveryChecker: bundler check reaches the WireGuard checker,
// jail.conf's value checks and pf's load-time name warnings.
func TestHostRunsEveryChecker(t *testing.T) {
	files := map[string][]byte{
		"/usr/local/etc/wireguard/wg0.conf": []byte("[Interface]\nAddress = 10.9.0.1/24\nPostUp = wg set %i private-key /k\n\n[Peer]\nPublicKey = short\nAllowedIPs = 10.9.0.2/32\n"),
		JailConf:                            []byte("web {\n  path = /jails/web;\n  devfs_ruleset = four;\n}\n"),
		PfConf:                              []byte("pass out to gw.example.org\n"),
	}
	var got []string
	for _, f := range Host(files, Options{}) {
		got = append(got, f.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"/usr/local/etc/wireguard/wg0.conf:6: error: PublicKey: not a 32-byte base64 key",
		"/etc/jail.conf:3: error: jail web: devfs_ruleset: non-integer value \"four\"",
		"/etc/pf.conf:1: warning: gw.example.org must be an interface or a host name that resolves on the host",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
}
