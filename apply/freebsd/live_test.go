package freebsd

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/apply/live"
	"github.com/rigger-bsd/rigger/policy/hostdesc"
	"github.com/rigger-bsd/rigger/policy/rcconf"
)

const liveRC = `
ifconfig_igb0_name="xnic"
ifconfig_xnic="inet 203.0.113.10/24"
cloned_interfaces="bridge0 epair0"
ifconfig_bridge0_name="xbridge"
ifconfig_epair0a_name="pg_a"
ifconfig_epair0b_name="pg_b"
ifconfig_pg_a="up"
ifconfig_xbridge="inet 10.0.2.1/24 addm pg_a up"
defaultrouter="203.0.113.1"
sshd_enable="YES"
`

func liveDesc(t *testing.T, rc string, jails ...hostdesc.Jail) *hostdesc.Host {
	t.Helper()
	v, err := rcconf.Parse("rc.conf", []byte(rc))
	if err != nil {
		t.Fatal(err)
	}
	h, err := hostdesc.FromRC(v)
	if err != nil {
		t.Fatal(err)
	}
	h.Jails = jails
	for _, j := range jails {
		for _, n := range j.Interfaces {
			h.Iface(n).Jail = j.Name
		}
	}
	return h
}

// TestLivePlanCommandLines: the plan that adds a jail with an epair on
// xbridge, a FIB 1 route and a service, run through the FreeBSD driver,
// issues exactly these command lines, with the epair unit the kernel
// printed bound into the later ones; then the same plan's undo.
func TestLivePlanCommandLines(t *testing.T) {
	pg := hostdesc.Jail{Name: "pg_j", Interfaces: []string{"pg_b"}}
	old := liveDesc(t, liveRC, pg)
	newRC := strings.Replace(liveRC, `cloned_interfaces="bridge0 epair0"`, `cloned_interfaces="bridge0 epair0 epair1"`, 1) +
		"ifconfig_epair1a_name=\"web2_a\"\nifconfig_epair1b_name=\"web2_b\"\nifconfig_web2_a=\"up\"\n" +
		"static_routes=\"vpn\"\nroute_vpn=\"-net 10.77.0.0/16 10.0.2.254 -fib 1\"\nntpd_enable=\"YES\"\n"
	newRC = strings.Replace(newRC, "addm pg_a up", "addm pg_a addm web2_a up", 1)
	nw := liveDesc(t, newRC, pg, hostdesc.Jail{Name: "web2_j", Interfaces: []string{"web2_b"}})
	p, err := live.Compute(old, nw, nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := func(stdout string) func(*testing.T, []string) Result {
		return func(*testing.T, []string) Result { return Result{Stdout: []byte(stdout)} }
	}
	d, f := newDriver(t, "/",
		step{argv: strings.Fields("ifconfig epair create"), reply: ok("epair9a\n")},
		step{argv: strings.Fields("ifconfig epair9a name web2_a"), reply: ok("web2_a\n")},
		step{argv: strings.Fields("ifconfig web2_a up")},
		step{argv: strings.Fields("ifconfig epair9b name web2_b"), reply: ok("web2_b\n")},
		step{argv: strings.Fields("ifconfig xbridge addm web2_a")},
		step{argv: strings.Fields("route -n add -net 10.77.0.0/16 10.0.2.254 -fib 1"), reply: ok("add net 10.77.0.0: gateway 10.0.2.254 fib 1\n")},
		step{argv: strings.Fields("service ntpd start"), reply: ok("Starting ntpd.\n")},
		// The undo, newest first.
		step{argv: strings.Fields("service ntpd stop"), reply: ok("Stopping ntpd.\n")},
		step{argv: strings.Fields("route -n delete -net 10.77.0.0/16 10.0.2.254 -fib 1")},
		step{argv: strings.Fields("ifconfig xbridge deletem web2_a")},
		step{argv: strings.Fields("ifconfig web2_b name epair9b")},
		step{argv: strings.Fields("ifconfig web2_a name epair9a")},
		step{argv: strings.Fields("ifconfig epair9a destroy")},
	)
	x := &live.Exec{Path: filepath.Join(t.TempDir(), live.JournalName), Cmd: d}
	if err := x.Begin(2, p); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := x.Run(ctx, live.Before, nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := x.Run(ctx, live.After, nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := x.UndoAll(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 13 {
		t.Fatalf("calls: %q", f.calls)
	}
}

// TestLiveServiceNotEnabled: rc.subr's "Cannot 'start'" with exit 0 is a
// failed step, not a success (FREEBSD.md §0.2).
func TestLiveServiceNotEnabled(t *testing.T) {
	d, _ := newDriver(t, "/", step{argv: strings.Fields("service nginx restart"), reply: out("service_restart_not_enabled.txt", "", 0)})
	_, err := d.RunLive(context.Background(), "service", "nginx", "restart")
	var ne *ServiceNotEnabledError
	if !errors.As(err, &ne) || ne.RCVar != "nginx_enable" {
		t.Fatalf("err %v", err)
	}
}

// TestLiveJailStopChecked: rc.d/jail exits 0 even when the jail keeps
// running; jls decides.
func TestLiveJailStopChecked(t *testing.T) {
	jls := []string{"jls", "--libxo", "json", "-v", "-j", "pg_j"}
	d, _ := newDriver(t, "/",
		step{argv: strings.Fields("service jail stop pg_j")},
		step{argv: jls, reply: out("jls_v_pg_j.json", "", 0)},
		step{argv: strings.Fields("service jail stop pg_j")},
		step{argv: jls, reply: out("", "jls_notfound.stderr", 1)},
	)
	if _, err := d.RunLive(context.Background(), "service", "jail", "stop", "pg_j"); err == nil || !strings.Contains(err.Error(), "running=true") {
		t.Fatalf("err %v", err)
	}
	if _, err := d.RunLive(context.Background(), "service", "jail", "stop", "pg_j"); err != nil {
		t.Fatal(err)
	}
}

func TestManagementPath(t *testing.T) {
	d, _ := newDriver(t, "/", step{argv: strings.Fields("route -n get 198.51.100.7"), reply: out("route_get_default.txt", "", 0)})
	m, err := d.ManagementPath(context.Background(), netip.MustParseAddr("198.51.100.7"))
	if err != nil || m.Iface != "xnic" || m.Source.String() != "198.51.100.7" {
		t.Fatalf("%+v %v", m, err)
	}
	if g := ParseRouteGet(recorded(t, "route_get_default.txt")); g["gateway"] != "203.0.113.1" || g["fib"] != "0" {
		t.Fatalf("%v", g)
	}
}

// runPlan runs a plan's Before and After steps through d, journaled.
func runPlan(t *testing.T, d *Driver, p *live.Plan) error {
	t.Helper()
	x := &live.Exec{Path: filepath.Join(t.TempDir(), live.JournalName), Cmd: d}
	if err := x.Begin(3, p); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := x.Run(ctx, live.Before, nil, 0); err != nil {
		return err
	}
	return x.Run(ctx, live.After, nil, 0)
}

// TestLivePlanCommandLinesEach: the plans of the other sim tests (the
// revert of the jail, an alias, an MTU, a service disabled, a route on
// the path to the git source), each through the FreeBSD driver against
// recorded outputs: exactly these command lines and no other.
func TestLivePlanCommandLinesEach(t *testing.T) {
	pg := hostdesc.Jail{Name: "pg_j", Interfaces: []string{"pg_b"}}
	web2 := hostdesc.Jail{Name: "web2_j", Interfaces: []string{"web2_b"}}
	withWeb2 := strings.Replace(liveRC, `cloned_interfaces="bridge0 epair0"`, `cloned_interfaces="bridge0 epair0 epair1"`, 1) +
		"ifconfig_epair1a_name=\"web2_a\"\nifconfig_epair1b_name=\"web2_b\"\nifconfig_web2_a=\"up\"\n"
	withWeb2 = strings.Replace(withWeb2, "addm pg_a up", "addm pg_a addm web2_a up", 1)
	ok := func(stdout string) func(*testing.T, []string) Result {
		return func(*testing.T, []string) Result { return Result{Stdout: []byte(stdout)} }
	}
	// jls's recorded "not found" for pg_j, for web2_j.
	jlsGone := step{argv: strings.Fields("jls --libxo json -v -j web2_j"), reply: func(t *testing.T, _ []string) Result {
		return Result{ExitCode: 1, Stderr: bytes.ReplaceAll(recorded(t, "jls_notfound.stderr"), []byte("pg_j"), []byte("web2_j"))}
	}}
	src := netip.MustParseAddr("198.51.100.7")
	for _, tc := range []struct {
		name     string
		old, new *hostdesc.Host
		mgmt     *live.Management
		steps    []step
	}{{
		name: "revert of the jail",
		old:  liveDesc(t, withWeb2, pg, web2), new: liveDesc(t, liveRC, pg),
		steps: []step{
			{argv: strings.Fields("service jail stop web2_j"), reply: out("service_jail_stop_ok.txt", "", 0)},
			jlsGone,
			{argv: strings.Fields("ifconfig xbridge deletem web2_a")},
			{argv: strings.Fields("ifconfig web2_a destroy")},
		},
	}, {
		name: "alias",
		old:  liveDesc(t, liveRC, pg), new: liveDesc(t, liveRC+"ifconfig_xnic_alias0=\"inet 203.0.113.11/32\"\n", pg),
		steps: []step{{argv: strings.Fields("ifconfig xnic inet 203.0.113.11/32 alias")}},
	}, {
		name: "mtu",
		old:  liveDesc(t, liveRC, pg), new: liveDesc(t, strings.Replace(liveRC, `ifconfig_xnic="inet 203.0.113.10/24"`, `ifconfig_xnic="inet 203.0.113.10/24 mtu 9000"`, 1), pg),
		steps: []step{{argv: strings.Fields("ifconfig xnic mtu 9000")}},
	}, {
		name: "service disabled",
		old:  liveDesc(t, liveRC+"ntpd_enable=\"YES\"\n", pg), new: liveDesc(t, liveRC, pg),
		steps: []step{{argv: strings.Fields("service ntpd stop"), reply: ok("Stopping ntpd.\nWaiting for PIDS: 812.\n")}},
	}, {
		name: "route to the git source",
		old:  liveDesc(t, liveRC, pg), new: liveDesc(t, liveRC+"static_routes=\"mgmt\"\nroute_mgmt=\"-host 198.51.100.7 203.0.113.1\"\n", pg),
		mgmt:  &live.Management{Iface: "xnic", Source: src},
		steps: []step{{argv: strings.Fields("route -n add -host 198.51.100.7 203.0.113.1"), reply: ok("add host 198.51.100.7: gateway 203.0.113.1\n")}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := live.Compute(tc.old, tc.new, tc.mgmt)
			if err != nil {
				t.Fatal(err)
			}
			if tc.mgmt != nil && !p.Mgmt() {
				t.Errorf("plan %q: the route to the git source is not marked", p.Lines())
			}
			d, f := newDriver(t, "/", tc.steps...)
			if err := runPlan(t, d, p); err != nil {
				t.Fatal(err)
			}
			if len(f.calls) != len(tc.steps) {
				t.Fatalf("calls %q, want %d", f.calls, len(tc.steps))
			}
		})
	}
}
