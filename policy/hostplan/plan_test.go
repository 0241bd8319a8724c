package hostplan

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/policy/hostdesc"
	"github.com/rigger-bsd/rigger/policy/hostplan/plantest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const baseRC = plantest.BaseRC

var baseJails = plantest.BaseJails

func desc(t *testing.T, rc string, jails []hostdesc.Jail) *hostdesc.Host {
	return plantest.Desc(t, rc, jails)
}

func edit(rc string, pairs ...string) string { return plantest.Edit(rc, pairs...) }

// render is the golden form of a plan: each step with its phase, undo and
// marks, then the reboot reasons.
func render(p *Plan) string {
	var b strings.Builder
	for _, s := range p.Steps {
		fmt.Fprintf(&b, "%-6s %s", s.Phase, strings.Join(s.Do, " "))
		if s.Bind != "" {
			fmt.Fprintf(&b, "  [bind %s]", s.Bind)
		}
		if s.Mgmt {
			b.WriteString("  [mgmt]")
		}
		b.WriteString("\n")
		for k, u := range s.Undo {
			mark := ""
			if k == 0 && s.UndoBind != "" {
				mark = "  [bind " + s.UndoBind + "]"
			}
			if s.UndoLate {
				mark += "  [late]"
			}
			fmt.Fprintf(&b, "         undo: %s%s\n", strings.Join(u, " "), mark)
		}
	}
	for _, j := range p.StopJails {
		fmt.Fprintf(&b, "stop-jail %s\n", j)
	}
	for _, r := range p.Reboot {
		fmt.Fprintf(&b, "reboot-required: %s\n", r)
	}
	return b.String()
}

var (
	addWeb2   = plantest.AddWeb2
	web2Jails = plantest.Web2Jails
)

func TestPlans(t *testing.T) {
	base := desc(t, baseRC, baseJails)
	mgmt := &Management{Iface: "xnic", Source: netip.MustParseAddr("198.51.100.7")}
	cases := []struct {
		name   string
		new    *hostdesc.Host
		old    *hostdesc.Host
		steps  int // how many steps exactly
		expect []string
	}{
		{name: "jail-added", new: desc(t, edit(baseRC, addWeb2...), web2Jails), steps: 5,
			expect: []string{"after  ifconfig epair create  [bind epair2]", "after  ifconfig epair2a name web2_a", "after  ifconfig xbridge addm web2_a"}},
		{name: "jail-removed", old: desc(t, edit(baseRC, addWeb2...), web2Jails), new: base, steps: 3,
			expect: []string{"before service jail stop web2_j", "before ifconfig xbridge deletem web2_a", "before ifconfig web2_a destroy", "stop-jail web2_j"}},
		{name: "alias-added", new: desc(t, edit(baseRC, "", `ifconfig_xnic_alias0="inet 203.0.113.11/32"`), baseJails), steps: 1,
			expect: []string{"after  ifconfig xnic inet 203.0.113.11/32 alias  [mgmt]", "undo: ifconfig xnic inet 203.0.113.11/32 -alias"}},
		{name: "mtu-changed", new: desc(t, edit(baseRC, `ifconfig_xbridge="inet`, `ifconfig_xbridge="mtu 9000 inet`), baseJails), steps: 1,
			expect: []string{"after  ifconfig xbridge mtu 9000", "undo: ifconfig xbridge mtu 1500"}},
		{name: "route-fib1-added", new: desc(t, edit(baseRC, "", `static_routes="lan"`, "", `route_lan="-net 10.1.0.0/16 10.0.2.254 -fib 1"`), baseJails), steps: 1,
			expect: []string{"after  route -n add -net 10.1.0.0/16 10.0.2.254 -fib 1", "undo: route -n delete -net 10.1.0.0/16 10.0.2.254 -fib 1"}},
		{name: "default-changed", new: desc(t, edit(baseRC, `defaultrouter="203.0.113.1"`, `defaultrouter="203.0.113.2"`), baseJails), steps: 1,
			expect: []string{"after  route -n change default 203.0.113.2  [mgmt]", "undo: route -n change default 203.0.113.1"}},
		{name: "service-enabled", new: desc(t, edit(baseRC, "", `ntpd_enable="YES"`), baseJails), steps: 1,
			expect: []string{"after  service ntpd start", "undo: service ntpd stop"}},
		{name: "service-disabled", new: desc(t, edit(baseRC, `sshd_enable="YES"`, ``), baseJails), steps: 1,
			expect: []string{"before service sshd stop", "undo: service sshd start"}},
		{name: "service-flags", new: desc(t, edit(baseRC, "", `sshd_flags="-p 2222"`), baseJails), steps: 1,
			expect: []string{"after  service sshd restart", "undo: service sshd restart  [late]"}},
		{name: "nic-renamed", new: desc(t, edit(baseRC, `ifconfig_igb0_name`, `ifconfig_igb1_name`), baseJails), steps: 0,
			expect: []string{"reboot-required: interface xnic: driver name igb0 → igb1"}},
		{name: "bridge-added", new: desc(t, edit(baseRC, `cloned_interfaces="bridge0 epair0 epair1"`, `cloned_interfaces="bridge0 bridge1 epair0 epair1"`,
			"", `ifconfig_bridge1_name="ibridge"`, "", `ifconfig_ibridge="inet 10.0.56.1/24 up"`), baseJails), steps: 3,
			expect: []string{"after  ifconfig bridge create name ibridge", "undo: ifconfig ibridge destroy", "after  ifconfig ibridge inet 10.0.56.1/24 alias"}},
		{name: "address-moved", new: desc(t, edit(baseRC, `ifconfig_xnic="inet 203.0.113.10/24"`, `ifconfig_xnic="inet 203.0.113.12/24"`), baseJails), steps: 2,
			expect: []string{"after  ifconfig xnic inet 203.0.113.12/24 alias  [mgmt]\n         undo: ifconfig xnic inet 203.0.113.12/24 -alias\nafter  ifconfig xnic inet 203.0.113.10/24 -alias  [mgmt]"}},
		{name: "forwarding-off", new: desc(t, edit(baseRC, `gateway_enable="YES"`, ``), baseJails), steps: 1,
			expect: []string{"after  sysctl net.inet.ip.forwarding=0", "undo: sysctl net.inet.ip.forwarding=1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old := c.old
			if old == nil {
				old = base
			}
			p, err := Compute(old, c.new, mgmt)
			if err != nil {
				t.Fatal(err)
			}
			got := render(p)
			if len(p.Steps) != c.steps {
				t.Errorf("%d steps, want %d:\n%s", len(p.Steps), c.steps, got)
			}
			for _, e := range c.expect {
				if !strings.Contains(got, e) {
					t.Errorf("plan lacks %q:\n%s", e, got)
				}
			}
			golden(t, c.name, got)
			// Nothing to do the other way round either when nothing changed.
			if p2, _ := Compute(c.new, c.new, mgmt); len(p2.Steps) != 0 || len(p2.Reboot) != 0 {
				t.Errorf("plan from a description to itself: %s", render(p2))
			}
		})
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(want) != got {
		t.Errorf("plan differs from %s:\n%s", path, got)
	}
}

// TestForbidManagement: with management: forbid, a plan that touches the
// path to the git source is refused and names the steps.
func TestForbidManagement(t *testing.T) {
	base := desc(t, baseRC, baseJails)
	n := desc(t, edit(baseRC, `defaultrouter="203.0.113.1"`, `defaultrouter="203.0.113.2"`), baseJails)
	n.Management = hostdesc.MgmtForbid
	mgmt := &Management{Iface: "xnic", Source: netip.MustParseAddr("198.51.100.7")}
	_, err := Compute(base, n, mgmt)
	var fe *ForbiddenError
	if !errors.As(err, &fe) || len(fe.Steps) != 1 || fe.Steps[0] != "route -n change default 203.0.113.2" {
		t.Fatalf("err %v", err)
	}
	// A change off the management path is allowed.
	n2 := desc(t, edit(baseRC, "", `ntpd_enable="YES"`), baseJails)
	n2.Management = hostdesc.MgmtForbid
	if _, err := Compute(base, n2, mgmt); err != nil {
		t.Fatal(err)
	}
	// A route to somewhere else than the source is not the management path.
	n3 := desc(t, edit(baseRC, "", `static_routes="lan"`, "", `route_lan="-net 10.1.0.0/16 10.0.2.254"`), baseJails)
	n3.Management = hostdesc.MgmtForbid
	if _, err := Compute(base, n3, mgmt); err != nil {
		t.Fatal(err)
	}
	n3.Routes[0].Args = []string{"-net", "198.51.100.0/24", "10.0.2.254"}
	n3.Routes[0].Dest = "198.51.100.0/24"
	if _, err := Compute(base, n3, mgmt); !errors.As(err, &fe) {
		t.Fatalf("route covering the source: err %v", err)
	}
}

// TestUndoIsInverse: the undo of a plan from A to B, run backwards, is
// the plan's own inverse: for jail addition, the undo lines equal the
// removal plan's do lines as a set.
func TestUndoReversesAddition(t *testing.T) {
	base := desc(t, baseRC, baseJails)
	withWeb2 := desc(t, edit(baseRC, addWeb2...), web2Jails)
	add, err := Compute(base, withWeb2, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The undo of the create destroys the epair; the undo of the addm
	// deletes the member: what removal does.
	var undo []string
	for k := len(add.Steps) - 1; k >= 0; k-- {
		for _, u := range add.Steps[k].Undo {
			undo = append(undo, strings.Join(u, " "))
		}
	}
	want := []string{"ifconfig xbridge deletem web2_a", "ifconfig web2_b name epair2b", "ifconfig web2_a name epair2a", "ifconfig epair2a destroy"}
	if strings.Join(undo, "\n") != strings.Join(want, "\n") {
		t.Fatalf("undo:\n%s", strings.Join(undo, "\n"))
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
