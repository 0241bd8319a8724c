package verify

import (
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/policy/hostdesc"
)

func TestCheckHostDesc(t *testing.T) {
	ok := func() *hostdesc.Host {
		return &hostdesc.Host{
			Interfaces: []hostdesc.Interface{{Name: "xbridge", Kind: hostdesc.Bridge, Clone: "bridge0", Members: []string{"web_a"}, Addrs: []string{"10.0.2.1/24"}, Options: []string{"-vlanhwtag"}}},
			Routes:     []hostdesc.Route{{Name: "lan", FIB: 1, Dest: "10.0.0.0/8", Args: []string{"-net", "10.0.0.0/8", "10.0.2.254", "-fib", "1"}}},
			Services:   []hostdesc.Service{{Name: "sshd"}},
			Jails:      []hostdesc.Jail{{Name: "web_j", Interfaces: []string{"web_b"}}},
		}
	}
	if err := checkHostDesc(ok()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		edit func(*hostdesc.Host)
		want string
	}{
		{func(h *hostdesc.Host) { h.Interfaces[0].Name = "x bridge" }, "not an interface name"},
		{func(h *hostdesc.Host) { h.Interfaces[0].Members[0] = "-up" }, "not an interface name"},
		{func(h *hostdesc.Host) { h.Interfaces[0].Kind = "tap" }, "unknown kind"},
		{func(h *hostdesc.Host) { h.Interfaces = append(h.Interfaces, h.Interfaces[0]) }, "listed twice"},
		{func(h *hostdesc.Host) { h.Interfaces[0].Addrs[0] = "10.0.0.1 -alias" }, "word"},
		{func(h *hostdesc.Host) { h.Interfaces[0].Tag = 5000 }, "out of range"},
		{func(h *hostdesc.Host) { h.Routes[0].Args[1] = "10.0.0.0/8 gw" }, "argument"},
		{func(h *hostdesc.Host) { h.Services[0].Name = "../sshd" }, "not a service name"},
		{func(h *hostdesc.Host) { h.Jails[0].Name = "web j" }, "not a jail name"},
		{func(h *hostdesc.Host) { h.Management = "maybe" }, "management"},
		{func(h *hostdesc.Host) { h.Sysctls = map[string]string{"a b": "1"} }, "sysctl"},
	} {
		h := ok()
		c.edit(h)
		if err := checkHostDesc(h); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err %v, want %q", err, c.want)
		}
	}
}
