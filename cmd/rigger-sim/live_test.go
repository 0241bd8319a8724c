package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/apply/sim"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/cmd/internal/simfleet"
	"github.com/rigger-bsd/rigger/policy/hostdesc"
)

// liveFleet is one example repo running on a sim fleet, changed revision
// by revision the way pull requests change it.
type liveFleet struct {
	t    *testing.T
	ctx  context.Context
	f    *simfleet.Fleet
	base string // the unmapped working copy each revision edits
	orig string // the example repo
}

func startLiveFleet(t *testing.T, ctx context.Context, bin, example string) *liveFleet {
	t.Helper()
	applytest.NeedSpiped(t)
	orig := filepath.Join("..", "..", "testdata", "infra", example)
	lf := &liveFleet{t: t, ctx: ctx, orig: orig, base: filepath.Join(t.TempDir(), example)}
	lf.reset()
	lf.f = &simfleet.Fleet{Agent: []string{bin, "agent"}, Infra: lf.base, Work: t.TempDir(), HealthTimeout: 20 * time.Second, Edit: spreadWaves}
	t.Cleanup(func() {
		if t.Failed() {
			for _, h := range lf.f.Hosts {
				t.Logf("%s agent log:\n%s", h, tail(lf.f.Log(h), 40))
			}
		}
		if err := lf.f.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := lf.f.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := lf.f.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lf.f.StartAgents(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lf.f.BootWhenRequired(ctx, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, h := range lf.f.Hosts {
		lf.wait(h, 1, simfleet.Applied(1))
	}
	return lf
}

// reset makes the working copy the example again.
func (lf *liveFleet) reset() {
	lf.t.Helper()
	if err := os.RemoveAll(lf.base); err != nil {
		lf.t.Fatal(err)
	}
	if err := os.CopyFS(lf.base, os.DirFS(lf.orig)); err != nil {
		lf.t.Fatal(err)
	}
}

// edit replaces old by new in the working copy's topology.yaml.
func (lf *liveFleet) edit(old, new string) {
	lf.t.Helper()
	if err := simfleet.EditFile(filepath.Join(lf.base, "topology.yaml"), old, new); err != nil {
		lf.t.Fatal(err)
	}
}

// release publishes the working copy as the next serial (a merged pull
// request), moved onto the fleet's loopback addresses.
func (lf *liveFleet) release(msg string) uint64 {
	lf.t.Helper()
	if err := lf.f.Revise(lf.base, msg); err != nil {
		lf.t.Fatal(err)
	}
	return lf.publish()
}

func (lf *liveFleet) publish() uint64 {
	lf.t.Helper()
	n, err := lf.f.Release(lf.ctx)
	if err != nil {
		lf.t.Fatal(err)
	}
	return uint64(n)
}

func (lf *liveFleet) wait(host string, serial uint64, cond func(*agent.Status) bool) *agent.Status {
	lf.t.Helper()
	st, err := lf.f.WaitFor(lf.ctx, host, fmt.Sprintf("serial %d settled", serial), 2*time.Minute,
		func(s *agent.Status) bool { return simfleet.Settled(serial)(s) && cond(s) })
	if err != nil {
		lf.t.Fatal(err)
	}
	return st
}

// applied waits until every host applied serial live (no reboot) and
// returns serverA's (the first host's) status.
func (lf *liveFleet) applied(serial uint64) map[string]*agent.Status {
	lf.t.Helper()
	out := map[string]*agent.Status{}
	for _, h := range lf.f.Hosts {
		st := lf.wait(h, serial, func(*agent.Status) bool { return true })
		if !simfleet.Applied(serial)(st) || st.Current.RebootRequired || st.RebootPending != nil {
			lf.t.Fatalf("%s: serial %d not applied live and healthy: current %+v, rolled back %+v, reboot pending %+v, health %+v",
				h, serial, st.Current, st.RolledBack, st.RebootPending, st.Health)
		}
		out[h] = st
	}
	return out
}

func (lf *liveFleet) desc(host string) *hostdesc.Host {
	lf.t.Helper()
	r, err := topology.Load(lf.f.Repo())
	if err != nil {
		lf.t.Fatal(err)
	}
	hr, err := r.Render(host)
	if err != nil {
		lf.t.Fatal(err)
	}
	return hr.Desc
}

// rcAddr is the inet address an rc.conf gives an interface.
func rcAddr(t *testing.T, rcconf, ifname string) string {
	t.Helper()
	b, err := os.ReadFile(rcconf)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "ifconfig_"+ifname+"=\"inet ")
	if !ok {
		t.Fatalf("%s: no inet address for %s", rcconf, ifname)
	}
	v, _, _ := strings.Cut(after, "\"")
	return strings.Fields(v)[0]
}

func (lf *liveFleet) run(host string, argv ...string) string {
	lf.t.Helper()
	h, err := sim.NewHost(lf.f.Root(host), nil)
	if err != nil {
		lf.t.Fatal(err)
	}
	r, err := h.Run(lf.ctx, argv...)
	if err != nil || r.ExitCode != 0 {
		lf.t.Fatalf("%s: %s: exit %d, %v: %s", host, strings.Join(argv, " "), r.ExitCode, err, r.Stderr)
	}
	return string(r.Stdout)
}

func stateOf(t *testing.T, root string) *sim.State {
	t.Helper()
	s, err := sim.ReadState(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sameState reports every difference of got from want.
func sameState(t *testing.T, what string, want, got *sim.State) {
	t.Helper()
	for _, d := range got.Diff(want) {
		t.Errorf("%s: %s", what, d)
	}
}

// wantLive checks that the status lists exactly these live steps.
func wantLive(t *testing.T, host string, st *agent.Status, want ...string) {
	t.Helper()
	if !slices.Equal(st.Current.Live, want) {
		t.Errorf("%s serial %d: live steps\n  %s\nwant\n  %s", host, st.Current.Serial,
			strings.Join(st.Current.Live, "\n  "), strings.Join(want, "\n  "))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestLiveUirig is issue 12 on the emulated kernel, through the agents of
// a uirig fleet: each pull request below is built, signed, published and
// applied by `rigger-sim agent run` on both hosts, and the test reads the
// emulated kernel, the files and `agent status` afterwards.
func TestLiveUirig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	lf := startLiveFleet(t, ctx, buildSim(t), "uirig")
	const A = "serverA"
	rootA := lf.f.Root(A)
	s1 := stateOf(t, rootA)

	// A fourth jail with a new epair on xbridge and a spiped pipe to the
	// peer's database: its key is provisioned first, as for any secret.
	for _, h := range lf.f.Hosts {
		key, err := os.ReadFile(filepath.Join(lf.f.Root(h), "jails/node_j/etc/spiped.key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(lf.f.Root(h), "jails/web2_j/etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lf.f.Root(h), "jails/web2_j/etc/spiped.key"), key, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s1 = stateOf(t, rootA) // the key is the operator's, not the change's
	addWeb2 := func() {
		lf.edit("members: [ngx_a, node_a, pg_a]", "members: [ngx_a, node_a, pg_a, web2_a]")
		lf.edit("      - [ipg_a, ipg_b]\n", "      - [ipg_a, ipg_b]\n      - [web2_a, web2_b]\n")
		lf.edit("      node_pg_b: 10.0.4.40/24\n", "      node_pg_b: 10.0.4.40/24\n      web2_b: 10.0.2.50/24\n")
		lf.edit("        services: [sshd, nginx]\n", `        services: [sshd, nginx]
      - name: web2_j
        interfaces: [web2_b]
        gateway: xbridge
        services: [sshd]
        pipes:
          - {name: W2P, mode: encrypt, source: "web2_b:5432", target: "peer/ipg_b:5433", probe: pg-ssl}
`)
	}
	addWeb2()
	serial := lf.release("add web2_j")
	sts := lf.applied(serial)
	st := sts[A]
	wantLive(t, A, st,
		"ifconfig epair create",
		"ifconfig epair7a name web2_a",
		"ifconfig web2_a up",
		"ifconfig epair7b name web2_b",
		"ifconfig xbridge addm web2_a")
	// rigger-sim's line for the host says which steps ran.
	for _, r := range settle(lf.ctx, lf.f, serial, time.Minute) {
		var line strings.Builder
		printResult(&line, r, false)
		if r.Host == A && !strings.Contains(line.String(), "(live: ifconfig epair create; ifconfig epair7a name web2_a; ifconfig web2_a up; ifconfig epair7b name web2_b; ifconfig xbridge addm web2_a)") {
			t.Errorf("rigger-sim line %q, want the live steps", line.String())
		}
	}
	healthOK := map[string]bool{}
	for _, c := range st.Health {
		healthOK[c.Name] = c.OK
	}
	if !healthOK["jail-web2_j"] || !healthOK["w2p-to-serverB"] {
		t.Errorf("serverA health %+v: want jail-web2_j and w2p-to-serverB ok", st.Health)
	}
	s2 := stateOf(t, rootA)
	web2b := rcAddr(t, filepath.Join(rootA, "jails/web2_j/etc/rc.conf"), "web2_b")
	if i, ok := s2.Ifaces["web2_a"]; !ok || !i.Up || i.Kind != "epair" || i.Peer != "web2_b" {
		t.Errorf("web2_a on the host: %+v", i)
	}
	if i, ok := s2.Ifaces["web2_j|web2_b"]; !ok || i.Vnet != "web2_j" || !slices.Contains(i.Addrs, web2b) {
		t.Errorf("web2_b in web2_j: %+v, want address %s", i, web2b)
	}
	if x := s2.Ifaces["xbridge"]; !slices.Contains(x.Members, "web2_a") || len(x.Members) != 4 {
		t.Errorf("xbridge members %v, want web2_a added", x.Members)
	}
	if j := s2.Jails["web2_j"]; !strings.Contains(j, "dying false") || !strings.Contains(j, "spiped") {
		t.Errorf("jail web2_j: %q, want alive with its spiped pipe", j)
	}
	for _, j := range []string{"pg_j", "node_j", "nginx_j"} {
		if s2.Jails[j] != s1.Jails[j] {
			t.Errorf("jail %s restarted: %q, was %q", j, s2.Jails[j], s1.Jails[j])
		}
	}
	if !s2.Booted.Equal(s1.Booted) {
		t.Error("serverA rebooted for a live change")
	}
	if rc, _ := os.ReadFile(filepath.Join(rootA, "etc/rc.conf")); !strings.Contains(string(rc), "web2_a") {
		t.Error("/etc/rc.conf does not describe web2_a: it must stay the boot-time truth")
	}

	// git revert of it: jail and epair go live, and serverA is as before.
	if err := lf.f.Revert(); err != nil {
		t.Fatal(err)
	}
	lf.reset()
	serial = lf.publish()
	sts = lf.applied(serial)
	wantLive(t, A, sts[A],
		"service jail stop web2_j",
		"ifconfig xbridge deletem web2_a",
		"ifconfig web2_a destroy")
	s3 := stateOf(t, rootA)
	sameState(t, "after the revert", s1, s3)

	// An alias on xnic: one step.
	lf.edit("      xnic: 203.0.113.10/24\n", "      xnic: [203.0.113.10/24, 203.0.113.11/32]\n")
	serial = lf.release("alias on serverA")
	alias := lf.desc(A).Iface("xnic").Addrs[1]
	wantLive(t, A, lf.applied(serial)[A], "ifconfig xnic inet "+alias+" alias")
	if x := stateOf(t, rootA).Ifaces["xnic"]; !slices.Contains(x.Addrs, alias) {
		t.Errorf("xnic addresses %v, want %s", x.Addrs, alias)
	}

	// The MTU of xnic: one step.
	lf.edit("      xnic: {}\n", "      xnic: {mtu: 9000}\n")
	serial = lf.release("jumbo frames")
	wantLive(t, A, lf.applied(serial)[A], "ifconfig xnic mtu 9000")
	if x := stateOf(t, rootA).Ifaces["xnic"]; x.MTU != 9000 {
		t.Errorf("xnic mtu %d, want 9000", x.MTU)
	}

	// A service enabled, then disabled.
	lf.edit("services: [sshd, pflog, ntpd]", "services: [sshd, pflog, ntpd, fail2ban]")
	serial = lf.release("fail2ban")
	wantLive(t, A, lf.applied(serial)[A], "service fail2ban start")
	if s := stateOf(t, rootA).Host; !strings.Contains(s, "fail2ban") {
		t.Errorf("host services %q, want fail2ban running", s)
	}
	lf.edit("services: [sshd, pflog, ntpd, fail2ban]", "services: [sshd, pflog, ntpd]")
	serial = lf.release("no fail2ban")
	wantLive(t, A, lf.applied(serial)[A], "service fail2ban stop")
	before := stateOf(t, rootA)
	if strings.Contains(before.Host, "fail2ban") {
		t.Errorf("host services %q, want fail2ban stopped", before.Host)
	}
	beforeSt := lf.wait(A, serial, func(*agent.Status) bool { return true })

	// A route that cuts serverA off its git source (on loopback: the
	// agent's source is 127.0.0.1): applied, the source does not answer,
	// undone by itself; the serial is quarantined with the reason.
	lf.edit("    vars: {pg_role: primary}\n", "    vars: {pg_role: primary}\n    routes:\n      cut: \"-host 127.0.0.1 127.0.0.1 -reject\"\n")
	serial = lf.release("a route that cuts the agent off")
	st = lf.wait(A, serial, simfleet.RolledBack(serial))
	if !strings.Contains(st.RolledBack.Reason, "git source unreachable") || !strings.Contains(st.RolledBack.Reason, "no route to host") {
		t.Errorf("rolled back: %q, want the git source unreachable after the route", st.RolledBack.Reason)
	}
	if !slices.ContainsFunc(st.Quarantined, func(q agent.Quarantined) bool { return q.Serial == serial && q.Kind == "rolled-back" }) {
		t.Errorf("serial %d not quarantined: %+v", serial, st.Quarantined)
	}
	if st.Current.Serial != beforeSt.Current.Serial {
		t.Errorf("current serial %d, want %d", st.Current.Serial, beforeSt.Current.Serial)
	}
	sameState(t, "after the route was undone", before, stateOf(t, rootA))
	if out := lf.run(A, "route", "-n", "get", "127.0.0.1"); !strings.Contains(out, "interface: lo0") || strings.Contains(out, "REJECT") {
		t.Errorf("route -n get 127.0.0.1 after the rollback:\n%s", out)
	}

	// A step failing in the middle: an interface called web2_b exists
	// already (made by hand), so renaming the new epair's b end fails as
	// on FreeBSD; the steps before it are undone.
	lf.run(A, "ifconfig", "bridge", "create", "name", "web2_b")
	before = stateOf(t, rootA)
	lf.reset()
	lf.edit("      xnic: 203.0.113.10/24\n", "      xnic: [203.0.113.10/24, 203.0.113.11/32]\n")
	lf.edit("      xnic: {}\n", "      xnic: {mtu: 9000}\n")
	addWeb2()
	serial = lf.release("web2_j again, over a name clash on serverA")
	st = lf.wait(A, serial, simfleet.RolledBack(serial))
	if !strings.Contains(st.RolledBack.Reason, "ifconfig epair7b name web2_b") || !strings.Contains(st.RolledBack.Reason, "SIOCSIFNAME") {
		t.Errorf("rolled back: %q, want the failed rename with ifconfig's message", st.RolledBack.Reason)
	}
	sameState(t, "after the failed step was undone", before, stateOf(t, rootA))
	lf.wait("serverB", serial, simfleet.Applied(serial)) // no clash there

	// A file owned by a user no host has: bundler check cannot know the
	// hosts' users, every agent's pre-check refuses it before installing
	// anything. rigger-sim reports it as soon as it is quarantined, not
	// after its timeout (which here would fail the test with "error").
	current := map[string]uint64{}
	for _, h := range lf.f.Hosts {
		current[h] = lf.wait(h, serial, func(*agent.Status) bool { return true }).Current.Serial
	}
	lf.reset()
	lf.edit(`unit: "service:ntpd"}`, `unit: "service:ntpd", owner: rigger-nobody}`)
	serial = lf.release("ntp.conf owned by a user the hosts lack")
	for _, r := range settle(lf.ctx, lf.f, serial, 90*time.Second) {
		if r.Outcome != "refused" || !strings.Contains(r.Reason, `owner "rigger-nobody"`) || !strings.Contains(r.Reason, "/etc/ntp.conf") {
			t.Errorf("%s: %s %q, want refused naming the file and the owner", r.Host, r.Outcome, r.Reason)
		}
		var line strings.Builder
		printResult(&line, r, false)
		if !strings.Contains(line.String(), "refused") || strings.Contains(line.String(), "(live") {
			t.Errorf("%s: line %q, want refused without a live or reboot word", r.Host, line.String())
		}
		if st, err := lf.f.Status(lf.ctx, r.Host); err != nil {
			t.Error(err)
		} else if st.Current.Serial != current[r.Host] {
			t.Errorf("%s: current serial %d after the refusal, want %d", r.Host, st.Current.Serial, current[r.Host])
		}
	}
}

// TestLiveRoutedFIB: on a routed fleet, a new static route in FIB 1 on
// vpsbig (whose jails' host ends are in FIB 1) is one live step, and the
// route is in the emulated FIB 1 and not in FIB 0.
func TestLiveRoutedFIB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lf := startLiveFleet(t, ctx, buildSim(t), "routed")
	const big = "vpsbig"
	before := stateOf(t, lf.f.Root(big))
	lf.edit("    sysctl:\n      net.fibs: \"2\"\n", "    sysctl:\n      net.fibs: \"2\"\n    routes:\n      lab: \"-net 10.99.0.0/16 192.168.123.2 -fib 1\"\n")
	serial := lf.release("a lab network behind app_j, in FIB 1")
	st := lf.applied(serial)[big]
	gw := rcAddr(t, filepath.Join(lf.f.Root(big), "jails/app_j/etc/rc.conf"), "app_b")
	gw, _, _ = strings.Cut(gw, "/")
	wantLive(t, big, st, "route -n add -net 10.99.0.0/16 "+gw+" -fib 1")
	after := stateOf(t, lf.f.Root(big))
	want := sim.Route{Dest: "10.99.0.0/16", Gateway: gw}
	if !slices.Contains(after.Routes[1], want) {
		t.Errorf("FIB 1 routes %+v, want %+v", after.Routes[1], want)
	}
	if slices.ContainsFunc(after.Routes[0], func(r sim.Route) bool { return r.Dest == want.Dest }) {
		t.Errorf("FIB 0 routes %+v: the route belongs to FIB 1 only", after.Routes[0])
	}
	after.Routes, before.Routes = nil, nil
	after.Files, before.Files = nil, nil
	sameState(t, "beside the route", before, after)
}
