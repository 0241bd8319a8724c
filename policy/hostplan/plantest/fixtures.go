// Package plantest holds the host descriptions the live plan tests share
// (policy/hostplan, apply/live, apply): a uirig-like rc.conf and its edits.
package plantest

import (
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/policy/hostdesc"
)

// BaseRC is a uirig-like host rc.conf, cut to what the live tests touch:
// two jails on xbridge, a default route, forwarding, sshd.
const BaseRC = `hostname="serverA"
ifconfig_igb0_name="xnic"
ifconfig_xnic="inet 203.0.113.10/24"
cloned_interfaces="bridge0 epair0 epair1"
ifconfig_bridge0_name="xbridge"
ifconfig_epair0a_name="ngx_a"
ifconfig_epair0b_name="ngx_b"
ifconfig_epair1a_name="pg_a"
ifconfig_epair1b_name="pg_b"
ifconfig_ngx_a="up"
ifconfig_pg_a="up"
ifconfig_xbridge="inet 10.0.2.1/24 addm ngx_a addm pg_a up"
defaultrouter="203.0.113.1"
gateway_enable="YES"
sshd_enable="YES"
pf_enable="YES"
jail_enable="YES"
`

// BaseJails are BaseRC's jails.
var BaseJails = []hostdesc.Jail{{Name: "nginx_j", Interfaces: []string{"ngx_b"}}, {Name: "pg_j", Interfaces: []string{"pg_b"}}}

// AddWeb2 are the Edit pairs that add a jail web2_j with an epair
// web2_a/web2_b whose host end joins xbridge.
var AddWeb2 = []string{
	`cloned_interfaces="bridge0 epair0 epair1"`, `cloned_interfaces="bridge0 epair0 epair1 epair2"`,
	"", `ifconfig_epair2a_name="web2_a"`,
	"", `ifconfig_epair2b_name="web2_b"`,
	"", `ifconfig_web2_a="up"`,
	"addm pg_a up", "addm pg_a addm web2_a up",
}

// Web2Jails are BaseJails and web2_j.
var Web2Jails = append(append([]hostdesc.Jail{}, BaseJails...), hostdesc.Jail{Name: "web2_j", Interfaces: []string{"web2_b"}})

// Edit replaces, pair by pair, the first occurrence of the first string
// by the second; an empty first string appends the second as a line.
func Edit(rc string, pairs ...string) string {
	for k := 0; k < len(pairs); k += 2 {
		if pairs[k] == "" {
			rc += pairs[k+1] + "\n"
			continue
		}
		if !strings.Contains(rc, pairs[k]) {
			panic("plantest.Edit: no " + pairs[k])
		}
		rc = strings.Replace(rc, pairs[k], pairs[k+1], 1)
	}
	return rc
}

// Desc is the description of rc with jails.
func Desc(t testing.TB, rc string, jails []hostdesc.Jail) *hostdesc.Host {
	t.Helper()
	h, err := hostdesc.ParseRC("rc.conf", []byte(rc), jails...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
