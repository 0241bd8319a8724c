package sim

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

// TestIfconfigVlanhwtagValue: vlanhwtag is a capability flag without a
// value (sbin/ifconfig/ifvlan.c, DEF_CMD("vlanhwtag", ...)), so in
// `ifconfig inic inet 10.0.56.10/24 vlanhwtag 2222` the 2222 is a second
// address word: the destination, on an Ethernet interface the broadcast
// address, read by inet_aton as 0.0.8.174. FreeBSD takes it silently;
// the emulator must not refuse it with "bad value".
func TestIfconfigVlanhwtagValue(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	h.run(t, "ifconfig", "bridge", "create", "name", "inic")
	if _, e, code := h.run(t, "ifconfig", "inic", "inet", "10.0.56.10/24", "vlanhwtag", "2222"); code != 0 {
		t.Fatalf("ifconfig ... vlanhwtag 2222: exit %d: %s", code, e)
	}
	out, _, _ := h.run(t, "ifconfig", "inic")
	if !strings.Contains(out, "inet 10.0.56.10 netmask 0xffffff00 broadcast 0.0.8.174") {
		t.Errorf("ifconfig inic:\n%s", out)
	}
	if _, e, code := h.run(t, "ifconfig", "inic", "inet", "10.0.56.11/32", "alias", "no.such.host"); code != 1 || e != "ifconfig: no.such.host: bad value\n" {
		t.Errorf("a word inet_aton refuses: %q %d", e, code)
	}
	for in, want := range map[string]string{"2222": "0.0.8.174", "10.1": "10.0.0.1", "0x7f000001": "127.0.0.1", "010.0.0.1": "8.0.0.1", "256.1.1.1": "", "1.2.3.4.5": ""} {
		a, ok := inetAton(in)
		if got := map[bool]string{true: a.String(), false: ""}[ok]; got != want {
			t.Errorf("inetAton(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLiveCommands: what the live steps run, as FreeBSD answers it:
// clones print their new name, names clash with SIOCSIFNAME's EEXIST,
// aliases come and go, and route -n get names the outgoing interface of
// the most specific route, with REJECT for a -reject route.
func TestLiveCommands(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	if out, _, _ := h.run(t, "ifconfig", "bridge", "create", "name", "lab0"); out != "lab0\n" {
		t.Errorf("bridge create name = %q", out)
	}
	if out, _, code := h.run(t, "ifconfig", "epair", "create"); code != 0 || !strings.HasPrefix(out, "epair") || !strings.HasSuffix(out, "a\n") {
		t.Fatalf("epair create = %q", out)
	}
	if _, e, code := h.run(t, "ifconfig", "epair0b", "name", "lab0"); code != 1 || e != "ifconfig: ioctl SIOCSIFNAME (set name): File exists\n" {
		t.Errorf("name clash: %q %d", e, code)
	}
	h.run(t, "ifconfig", "lab0", "inet", "192.0.2.1/24", "up")
	h.run(t, "ifconfig", "lab0", "inet", "192.0.2.9/32", "alias")
	if out, _, _ := h.run(t, "ifconfig", "lab0"); !strings.Contains(out, "inet 192.0.2.9 netmask 0xffffffff") {
		t.Errorf("alias missing:\n%s", out)
	}
	h.run(t, "ifconfig", "lab0", "inet", "192.0.2.9", "-alias")
	if _, e, code := h.run(t, "ifconfig", "lab0", "inet", "192.0.2.9", "-alias"); code != 1 || !strings.Contains(e, "SIOCDIFADDR") {
		t.Errorf("-alias twice: %q %d", e, code)
	}
	if _, e, code := h.run(t, "route", "add", "default", "192.0.2.254"); code != 0 {
		t.Fatalf("route add default: %q %d", e, code)
	}
	out, _, code := h.run(t, "route", "-n", "get", "198.51.100.7")
	for _, want := range []string{"   route to: 198.51.100.7\n", "destination: default\n", "       mask: default\n", "    gateway: 192.0.2.254\n", "  interface: lab0\n", "      flags: <UP,GATEWAY,DONE,STATIC>\n"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("route -n get via the default route lacks %q:\n%s", want, out)
		}
	}
	if out, _, _ := h.run(t, "route", "-n", "get", "127.0.0.1"); !strings.Contains(out, "  interface: lo0\n") || strings.Contains(out, "gateway") {
		t.Errorf("route -n get 127.0.0.1 (connected on lo0):\n%s", out)
	}
	drv := h.drv
	src := netip.MustParseAddr("198.51.100.7")
	if err := drv.Reach(context.Background(), src); err != nil {
		t.Errorf("Reach before the reject route: %v", err)
	}
	m, err := drv.ManagementPath(context.Background(), src)
	if err != nil || m.Iface != "lab0" {
		t.Errorf("ManagementPath = %+v, %v; want lab0", m, err)
	}
	h.run(t, "route", "add", "-host", "198.51.100.7", "192.0.2.254", "-reject")
	if out, _, _ := h.run(t, "route", "-n", "get", "198.51.100.7"); !strings.Contains(out, "REJECT") || !strings.Contains(out, "destination: 198.51.100.7\n") {
		t.Errorf("route -n get with the host route:\n%s", out)
	}
	if err := drv.Reach(context.Background(), src); err == nil || !strings.Contains(err.Error(), "no route to host") {
		t.Errorf("Reach through a reject route: %v", err)
	}
}
