package hostdesc

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/policy/rcconf"
)

// TestFromRCSim reads the sim's hand-written host rc.conf (bare address
// before addm, a multi-line bridge value, DHCP on a renamed NIC).
func TestFromRCSim(t *testing.T) {
	src, err := os.ReadFile("../../apply/sim/testdata/host/etc/rc.conf")
	if err != nil {
		t.Fatal(err)
	}
	vars, err := rcconf.Parse("rc.conf", src)
	if err != nil {
		t.Fatal(err)
	}
	h, err := FromRC(vars)
	if err != nil {
		t.Fatal(err)
	}
	want := []Interface{
		{Name: "ibridge", Kind: Bridge, Clone: "bridge1", Members: []string{"ipg_a"}},
		{Name: "ipg_a", Kind: Epair, Clone: "epair6a", Peer: "ipg_b"},
		{Name: "ipg_b", Kind: Epair, Clone: "epair6b", Peer: "ipg_a"},
		{Name: "pg_a", Kind: Epair, Clone: "epair2a", Peer: "pg_b"},
		{Name: "pg_b", Kind: Epair, Clone: "epair2b", Peer: "pg_a"},
		{Name: "xbridge", Kind: Bridge, Clone: "bridge0", Addrs: []string{"10.0.2.1/24"}, Members: []string{"pg_a"}},
		// ifconfig_em0 is never read: rc.d/netif renames (ifnet_rename)
		// before ifn_start configures each interface by its new name.
		{Name: "xnic", Kind: Physical, Clone: "em0"},
	}
	if !reflect.DeepEqual(h.Interfaces, want) {
		g, _ := json.MarshalIndent(h.Interfaces, "", " ")
		t.Errorf("interfaces:\n%s", g)
	}
	if !h.Forwarding || len(h.Services) != 0 || len(h.Routes) != 0 {
		t.Errorf("forwarding %v services %v routes %v", h.Forwarding, h.Services, h.Routes)
	}
}

func TestFromRC(t *testing.T) {
	vars := map[string]string{
		"hostname":               "h1.example.org",
		"ifconfig_vtnet0":        "inet 192.0.2.2/24 mtu 9000 fib 2",
		"ifconfig_vtnet0_ipv6":   "inet6 2001:db8::2/64",
		"ifconfig_vtnet0_alias0": "inet 192.0.2.3/32",
		"cloned_interfaces":      "lagg0 vlan0",
		"ifconfig_lagg0_name":    "uplink",
		"ifconfig_uplink":        "laggproto failover laggport em0 laggport em1 inet 198.51.100.2/24",
		"ifconfig_vlan0_name":    "dmz",
		"ifconfig_dmz":           "vlan 101 vlandev uplink inet 10.9.0.1/24",
		"defaultrouter":          "192.0.2.1",
		"static_routes":          "lan vpn",
		"route_lan":              "-net 10.0.0.0/8 192.0.2.254",
		"route_vpn":              "-net 10.77.0.0/16 -interface wg0 -fib 1",
		"sshd_enable":            "YES",
		"sshd_flags":             "-o UseDNS=no",
		"ntpd_enable":            "NO",
		"pf_enable":              "YES",
		"gateway_enable":         "yes",
		"wireguard_interfaces":   "wg0",
	}
	h, err := FromRC(vars)
	if err != nil {
		t.Fatal(err)
	}
	v := h.Iface("vtnet0")
	if v == nil || v.MTU != 9000 || v.FIB != 2 || strings.Join(v.Addrs, " ") != "192.0.2.2/24 2001:db8::2/64 192.0.2.3/32" {
		t.Errorf("vtnet0: %+v", v)
	}
	u := h.Iface("uplink")
	if u == nil || u.Kind != Lagg || u.Proto != "failover" || strings.Join(u.Ports, " ") != "em0 em1" || u.Clone != "lagg0" {
		t.Errorf("uplink: %+v", u)
	}
	d := h.Iface("dmz")
	if d == nil || d.Tag != 101 || d.Parent != "uplink" {
		t.Errorf("dmz: %+v", d)
	}
	if w := h.Iface("wg0"); w == nil || w.Kind != WG {
		t.Errorf("wg0: %+v", w)
	}
	if len(h.Routes) != 3 || h.Routes[0].Dest != "10.0.0.0/8" || h.Routes[1].Dest != "default" ||
		h.Routes[2].FIB != 1 || h.Routes[2].Gateway != "wg0" {
		t.Errorf("routes: %+v", h.Routes)
	}
	if !reflect.DeepEqual(h.Services, []Service{{Name: "sshd", Flags: "-o UseDNS=no"}}) || !h.Forwarding {
		t.Errorf("services %+v forwarding %v", h.Services, h.Forwarding)
	}
}

func TestFromRCErrors(t *testing.T) {
	for _, c := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"defaultrouter_fib1": "10.0.0.1"}, "rc.d/routing never adds it"},
		{map[string]string{"static_routes": "x"}, "route_x not set"},
		{map[string]string{"static_routes": "x", "route_x": "-net"}, "no destination"},
		{map[string]string{"cloned_interfaces": "tap0"}, "unknown interface kind"},
		{map[string]string{"ifconfig_em0": "mtu big"}, `mtu "big": want a number`},
		{map[string]string{"ifconfig_em0": "inet"}, "inet without a value"},
	} {
		if _, err := FromRC(c.vars); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.vars, err, c.want)
		}
	}
}

// FuzzParseRoute: whatever route arguments say, a parsed route has a
// destination among its arguments and keeps them all.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"-net 10.0.0.0/8 10.0.0.1", "default 192.0.2.1 -fib 1", "-host 1.2.3.4 -interface wg0", "-fib", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRoute("x", s)
		if err != nil {
			return
		}
		if r.Dest == "" || strings.HasPrefix(r.Dest, "-") {
			t.Fatalf("%q: dest %q", s, r.Dest)
		}
		if strings.Join(r.Args, " ") != strings.Join(strings.Fields(s), " ") {
			t.Fatalf("%q: args %q", s, r.Args)
		}
		if r.FIB < 0 {
			t.Fatalf("%q: fib %d", s, r.FIB)
		}
	})
}

// FuzzFromRC: FromRC never panics, and what it returns passes through
// JSON unchanged (the manifest's form).
func FuzzFromRC(f *testing.F) {
	f.Add("cloned_interfaces=\"epair0 bridge0\"\nifconfig_epair0a_name=a\nifconfig_bridge0=\"addm a up\"\n")
	f.Add("ifconfig_em0=\"inet 192.0.2.1/24 mtu 1500\"\ndefaultrouter=192.0.2.254\n")
	f.Fuzz(func(t *testing.T, src string) {
		vars, err := rcconf.Parse("rc.conf", []byte(src))
		if err != nil {
			return
		}
		h, err := FromRC(vars)
		if err != nil {
			return
		}
		b, _ := json.Marshal(h)
		var back Host
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		b2, _ := json.Marshal(&back)
		if string(b) != string(b2) {
			t.Fatalf("round trip:\n%s\n%s", b, b2)
		}
	})
}
