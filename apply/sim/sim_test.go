package sim

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/apply/freebsd"
	"github.com/rigger-bsd/rigger/verify"
)

// twoHosts boots two hosts whose pg_j PGC pipes point at each other.
func twoHosts(t *testing.T, keyA, keyB []byte) (a, b *simHost) {
	t.Helper()
	applytest.NeedSpiped(t)
	ipA, ipB := pair()
	a, b = newHost(t, ipA, ipB, keyA), newHost(t, ipB, ipA, keyB)
	for _, h := range []*simHost{a, b} {
		h.boot(t)
	}
	return a, b
}

// TestBootStartsJailsAndTunnels: a boot does what /etc/rc does, and the
// jails' tunnels are real spiped processes that carry a PostgreSQL
// exchange from one host to the other.
func TestBootStartsJailsAndTunnels(t *testing.T) {
	key := newKey(t)
	a, b := twoHosts(t, key, key)
	ctx := context.Background()
	for _, h := range []*simHost{a, b} {
		for _, j := range []string{"pg_j", "web_j"} {
			ok, err := h.drv.JailRunning(ctx, j)
			if err != nil || !ok {
				t.Fatalf("%s: JailRunning(%s) = %v, %v; boot log:\n%s", h.root, j, ok, err, readFile(t, h.root, "/"+BootLog))
			}
		}
	}
	if err := pgProbe(net.JoinHostPort(a.ip, "5435")); err != nil {
		t.Fatalf("A's PGC -> B's postgres: %v", err)
	}
	if err := pgProbe(net.JoinHostPort(b.ip, "5435")); err != nil {
		t.Fatalf("B's PGC -> A's postgres: %v", err)
	}
	k, err := ReadKernel(a.root)
	if err != nil {
		t.Fatal(err)
	}
	j := k.Jails["pg_j"]
	var got []string
	for _, name := range []string{"spiped", "postgresql"} {
		for _, p := range j.Services[name].Procs {
			got = append(got, p.Service+":"+p.Name)
			if sid := session(t, p.PID); sid != p.PID {
				t.Errorf("%s %s (pid %d) in session %d: not detached", p.Service, p.Name, p.PID, sid)
			}
		}
	}
	if strings.Join(got, " ") != "spiped:PGS spiped:PGC postgresql:postgresql" {
		t.Errorf("processes = %q", got)
	}
	// The epairs were created and renamed by netif; pg_j holds its ends.
	for _, tc := range []struct{ key, vnet, addr string }{
		{"pg_j|ipg_b", "pg_j", a.ip + "/24"},
		{"pg_j|pg_b", "pg_j", ""},
		{"ipg_a", "", ""},
		{"xnic", "", ""},
	} {
		i := k.Ifaces[tc.key]
		if i == nil || i.Vnet != tc.vnet || tc.addr != "" && strings.Join(i.Addrs, ",") != tc.addr {
			t.Errorf("interface %s = %+v", tc.key, i)
		}
	}
	if br := k.Ifaces["ibridge"]; br == nil || strings.Join(br.Members, ",") != "ipg_a" || !br.Up {
		t.Errorf("ibridge = %+v", br)
	}
	if !k.PF.Enabled || len(k.PF.Rules) == 0 {
		t.Errorf("pf after boot: %+v", k.PF)
	}
	if v := k.Sysctls["net.inet.ip.forwarding"]; v != "1" {
		t.Errorf("gateway_enable: net.inet.ip.forwarding = %q", v)
	}
	out, _, code := a.run(t, "jls", "name", "jid")
	if code != 0 || !strings.Contains(out, "pg_j ") || !strings.Contains(out, "web_j ") {
		t.Errorf("jls name jid = %q (%d)", out, code)
	}
}

// session reads a process's session id from /proc.
func session(t *testing.T, pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	n, _ := strconv.Atoi(f[3]) // state ppid pgrp session
	return n
}

func TestWrongKeyBreaksTunnel(t *testing.T) {
	key := newKey(t)
	a, b := twoHosts(t, key, key)
	if err := pgProbe(net.JoinHostPort(a.ip, "5435")); err != nil {
		t.Fatalf("before: %v", err)
	}
	write(t, b.root, "/jails/pg_j/etc/spiped.key", string(newKey(t)))
	if err := b.drv.Activate(context.Background(), unit(t, "jail-service:pg_j:spiped")); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(a.ip, "5435"), time.Second)
	if err != nil {
		t.Fatalf("connect through a broken tunnel should still succeed: %v", err)
	}
	c.Close()
	err = pgProbe(net.JoinHostPort(a.ip, "5435"))
	if err == nil || !strings.Contains(err.Error(), "exchange") {
		t.Fatalf("probe through mismatched keys = %v, want an exchange failure", err)
	}
	if ok, _ := b.drv.JailRunning(context.Background(), "pg_j"); !ok {
		t.Error("pg_j on B should still be running")
	}
}

// TestNewJailNeedsBoot is the emulator not being kinder than FreeBSD: a
// new jail whose epairs are only in a newly written rc.conf cannot start,
// with jail(8)'s message, because nothing created them; after a boot it
// runs.
func TestNewJailNeedsBoot(t *testing.T) {
	applytest.NeedSpiped(t)
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	full := readFile(t, h.root, "/etc/rc.conf")
	// The host booted before pg_j and its epairs existed.
	write(t, h.root, "/etc/rc.conf", strings.Replace(full, "epair2 epair6", "", 1))
	h.boot(t)
	write(t, h.root, "/etc/rc.conf", full)
	ctx := context.Background()
	out, _, code := h.run(t, "service", "jail", "restart", "pg_j")
	if code != 0 {
		t.Errorf("service jail restart exit %d, want 0 (rc.d/jail exits 0 on failure)", code)
	}
	for _, want := range []string{
		` cannot start jail  "pg_j": `,
		"ifconfig: interface pg_b does not exist",
		"jail: pg_j: /sbin/ifconfig pg_b vnet pg_j: failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("service jail restart pg_j output lacks %q:\n%s", want, out)
		}
	}
	err := h.drv.Activate(ctx, unit(t, "jail:pg_j"))
	if err == nil {
		t.Fatal("jail:pg_j activated although its epairs do not exist")
	}
	if ok, _ := h.drv.JailRunning(ctx, "pg_j"); ok {
		t.Fatal("pg_j runs without its epairs")
	}
	h.boot(t)
	if ok, err := h.drv.JailRunning(ctx, "pg_j"); !ok || err != nil {
		t.Fatalf("after boot: JailRunning = %v, %v", ok, err)
	}
	if err := pgProbe(net.JoinHostPort(ipA, "5432")); err != nil {
		t.Fatalf("postgres after boot: %v", err)
	}
}

// TestServiceNotEnabled: rc.subr prints its refusal and exits 0, and
// nothing starts (FREEBSD.md errata 2).
func TestServiceNotEnabled(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	h.boot(t)
	out, errOut, code := h.run(t, "service", "sshd", "restart")
	want := "Cannot 'restart' sshd. Set sshd_enable to YES in /etc/rc.conf or use 'onerestart' instead of 'restart'.\n"
	if code != 0 || out != want || errOut != "" {
		t.Errorf("service sshd restart = %q, %q, exit %d; want %q, exit 0", out, errOut, code, want)
	}
	k, _ := ReadKernel(h.root)
	if k.Host != nil && k.Host.Services["sshd"] != nil {
		t.Error("sshd started although not enabled")
	}
	if _, _, code := h.run(t, "service", "sshd", "onestart"); code != 0 {
		t.Error("onestart refused")
	}
	if out, _, code := h.run(t, "service", "sshd", "onestatus"); code != 0 || !strings.HasPrefix(out, "sshd is running as pid ") {
		t.Errorf("onestatus = %q, %d", out, code)
	}
	if _, errOut, code := h.run(t, "service", "nosuch", "start"); code != 1 || !strings.Contains(errOut, "nosuch does not exist in /etc/rc.d") {
		t.Errorf("unknown script: %q, %d", errOut, code)
	}
	// A jail's service is refused the same way inside the jail.
	write(t, h.root, "/jails/pg_j/etc/rc.conf", strings.Replace(readFile(t, h.root, "/jails/pg_j/etc/rc.conf"), `spiped_enable="YES"`, "", 1))
	err := h.drv.Activate(context.Background(), unit(t, "jail-service:pg_j:spiped"))
	out, _, _ = h.run(t, "service", "-j", "pg_j", "spiped", "restart")
	if !strings.HasPrefix(out, "Cannot 'restart' spiped.") {
		t.Errorf("service -j pg_j spiped restart = %q", out)
	}
	t.Logf("driver on a refused restart: %v", err)
}

func TestJlsFormats(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	h.boot(t)
	out, _, code := h.run(t, "jls", "--libxo", "json", "-v", "-j", "web_j")
	if code != 0 {
		t.Fatalf("jls json exit %d", code)
	}
	jails, err := freebsd.ParseJLS([]byte(out))
	if err != nil || len(jails) != 1 || jails[0].Name != "web_j" || jails[0].State != "ACTIVE" || jails[0].Path != "/jails/web_j" {
		t.Fatalf("ParseJLS(%s) = %+v, %v", out, jails, err)
	}
	if _, e, code := h.run(t, "jls", "-j", "nosuch"); code != 1 || e != "jls: jail \"nosuch\" not found\n" {
		t.Errorf("missing jail: %q %d", e, code)
	}
	if err := h.drv.Host().withKernel(func(k *Kernel) error { k.Jails["web_j"].Dying = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, e, code := h.run(t, "jls", "-j", "web_j"); code != 1 || e != "jls: jail \"web_j\" is dying\n" {
		t.Errorf("dying jail: %q %d", e, code)
	}
	out, _, _ = h.run(t, "jls")
	if !strings.HasPrefix(out, "   JID  IP Address      Hostname                      Path\n") || strings.Contains(out, "web_j") {
		t.Errorf("jls = %q", out)
	}
}

func TestPfctl(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	conf := hostPath(h.root, "/etc/pf.conf")
	if _, e, code := h.run(t, "pfctl", "-s", "info"); code != 1 || e != "pfctl: Failed to open netlink: No such file or directory\n" {
		t.Errorf("pfctl -s info without pf.ko: %q %d", e, code)
	}
	if _, _, code := h.run(t, "pfctl", "-n", "-f", conf); code != 0 {
		t.Error("pfctl -nf without pf.ko should parse (FreeBSD 14)")
	}
	if _, _, code := h.run(t, "kldload", "-n", "pf"); code != 0 {
		t.Fatal("kldload -n pf")
	}
	if _, e, code := h.run(t, "kldload", "pf"); code != 1 || !strings.Contains(e, "module already loaded") {
		t.Errorf("kldload pf twice: %q %d", e, code)
	}
	bad := hostPath(h.root, "/etc/pf.bad")
	write(t, h.root, "/etc/pf.bad", "pass in\nthis is not pf\n")
	if _, e, code := h.run(t, "pfctl", "-n", "-f", bad); code != 1 || !strings.HasPrefix(e, bad+":2: ") || strings.Contains(e, "not loaded") {
		t.Errorf("pfctl -nf bad: %q %d", e, code)
	}
	if _, e, code := h.run(t, "pfctl", "-f", bad); code != 1 || !strings.HasSuffix(e, "pfctl: Syntax error in config file: pf rules not loaded\n") {
		t.Errorf("pfctl -f bad: %q %d", e, code)
	}
	if _, _, code := h.run(t, "pfctl", "-f", conf); code != 0 {
		t.Fatal("pfctl -f")
	}
	if _, e, code := h.run(t, "pfctl", "-e"); code != 0 || e != "pf enabled\n" {
		t.Errorf("pfctl -e: %q %d", e, code)
	}
	if _, e, code := h.run(t, "pfctl", "-e"); code != 1 || e != "pfctl: pf already enabled\n" {
		t.Errorf("pfctl -e twice: %q %d", e, code)
	}
	out, _, _ := h.run(t, "pfctl", "-s", "info")
	if on, err := freebsd.ParsePFInfo([]byte(out)); !on || err != nil || len(strings.SplitN(out, "\n", 2)[0]) != 59 {
		t.Errorf("pfctl -s info = %q (%v, %v)", out, on, err)
	}
	write(t, h.root, "/etc/new_martians", "192.0.2.0/24\n198.51.100.7\n")
	_, e, code := h.run(t, "pfctl", "-t", "martians", "-T", "replace", "-f", hostPath(h.root, "/etc/new_martians"))
	if code != 0 || !strings.Contains(e, "addresses added.") {
		t.Errorf("-T replace: %q %d", e, code)
	}
	out, _, _ = h.run(t, "pfctl", "-t", "martians", "-T", "show")
	if out != "   192.0.2.0/24\n   198.51.100.7\n" {
		t.Errorf("-T show = %q", out)
	}
	_, e, code = h.run(t, "pfctl", "-t", "fresh", "-T", "replace", "-f", hostPath(h.root, "/etc/new_martians"))
	if code != 0 || !strings.HasPrefix(e, "1 table created.\n") {
		t.Errorf("-T replace of a new table: %q %d", e, code)
	}
	write(t, h.root, "/etc/pf.const", "table <c> const { 10.0.0.1 }\npass in from <c>\n")
	h.run(t, "pfctl", "-f", hostPath(h.root, "/etc/pf.const"))
	if _, e, code := h.run(t, "pfctl", "-t", "c", "-T", "replace", "10.0.0.2"); code == 0 || !strings.Contains(e, "Operation not permitted") {
		t.Errorf("-T replace on a const table: %q %d", e, code)
	}
}

func TestIfconfigRouteSysctl(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	if out, _, code := h.run(t, "ifconfig", "epair", "create"); code != 0 || out != "epair0a\n" {
		t.Fatalf("ifconfig epair create = %q %d", out, code)
	}
	if out, _, _ := h.run(t, "ifconfig", "epair0a", "name", "app_a"); out != "app_a\n" {
		t.Errorf("rename = %q", out)
	}
	if _, e, code := h.run(t, "ifconfig", "epair0a"); code != 1 || e != "ifconfig: interface epair0a does not exist\n" {
		t.Errorf("old name: %q %d", e, code)
	}
	if _, e, code := h.run(t, "ifconfig", "app_a", "fib", "1"); code != 1 || !strings.Contains(e, "SIOCSIFFIB") {
		t.Errorf("fib 1 with net.fibs=1: %q %d", e, code)
	}
	if out, _, code := h.run(t, "sysctl", "net.fibs=2"); code != 0 || out != "net.fibs: 1 -> 2\n" {
		t.Errorf("sysctl net.fibs=2: %q %d", out, code)
	}
	if _, _, code := h.run(t, "ifconfig", "app_a", "inet", "192.0.2.1/30", "fib", "1", "mtu", "1380", "up"); code != 0 {
		t.Fatal("ifconfig app_a ...")
	}
	out, _, _ := h.run(t, "ifconfig", "app_a")
	for _, want := range []string{"app_a: flags=8843<UP,", "mtu 1380", "inet 192.0.2.1 netmask 0xfffffffc", "fib: 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("ifconfig app_a lacks %q:\n%s", want, out)
		}
	}
	if _, e, code := h.run(t, "ifconfig", "epair0b", "vnet", "nosuch"); code != 1 || e != "ifconfig: jail \"nosuch\" not found\n" {
		t.Errorf("vnet to a missing jail: %q %d", e, code)
	}
	if out, _, code := h.run(t, "route", "add", "default", "192.0.2.2", "-fib", "1"); code != 0 || out != "add net default: gateway 192.0.2.2 fib 1\n" {
		t.Errorf("route add -fib 1 = %q %d", out, code)
	}
	if _, e, code := h.run(t, "route", "add", "default", "192.0.2.2", "-fib", "1"); code != 1 || !strings.Contains(e, "route already in table") {
		t.Errorf("route add twice: %q %d", e, code)
	}
	if _, e, code := h.run(t, "route", "add", "default", "203.0.113.1"); code != 1 || !strings.Contains(e, "Network is unreachable") {
		t.Errorf("unreachable gateway: %q %d", e, code)
	}
	h.run(t, "ifconfig", "epair0b", "destroy")
	if _, _, code := h.run(t, "ifconfig", "app_a"); code != 1 {
		t.Error("destroying one end of an epair left the other")
	}
	write(t, h.root, "/etc/sysctl.conf", "net.inet.ip.forwarding=1\nnet.bogus=1\n")
	if _, e, code := h.run(t, "sysctl", "-f", hostPath(h.root, "/etc/sysctl.conf")); code != 1 || e != "sysctl: unknown oid 'net.bogus' at line 2\n" {
		t.Errorf("sysctl -f: %q %d", e, code)
	}
	if _, e, code := h.run(t, "service", "sysctl", "restart"); code != 0 || e != "" {
		t.Errorf("service sysctl restart cannot fail: %q %d", e, code)
	}
}

func TestJailExecHooks(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	write(t, h.root, "/etc/jail.conf", readFile(t, h.root, "/etc/jail.conf")+`
hook_j {
  path = "/jails/web_j";
  vnet;
  vnet.interface = hook_b;
  exec.prestart = "ifconfig epair9 create";
  exec.prestart += "ifconfig epair9a name hook_a";
  exec.prestart += "ifconfig epair9b name hook_b";
  exec.poststop = "ifconfig hook_a destroy";
}
`)
	out, e, code := h.run(t, "jail", "-f", hostPath(h.root, "/etc/jail.conf"), "-c", "hook_j")
	if code != 0 || !strings.Contains(out, "hook_j: created") {
		t.Fatalf("jail -c hook_j: %q %q %d", out, e, code)
	}
	k, _ := ReadKernel(h.root)
	if i := k.Ifaces["hook_j|hook_b"]; i == nil {
		t.Fatalf("hook_b not in hook_j: %v", k.Ifaces)
	}
	if _, e, code := h.run(t, "jail", "-f", hostPath(h.root, "/etc/jail.conf"), "-c", "hook_j"); code != 1 || e != "jail: \"hook_j\" already exists\n" {
		t.Errorf("duplicate jail: %q %d", e, code)
	}
	if _, _, code := h.run(t, "jail", "-q", "-f", hostPath(h.root, "/etc/jail.conf"), "-r", "hook_j"); code != 0 {
		t.Fatal("jail -r")
	}
	k, _ = ReadKernel(h.root)
	if k.Ifaces["hook_a"] != nil || k.Ifaces["hook_b"] != nil {
		t.Error("exec.poststop did not destroy the epair")
	}
}

func TestJailConfList(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	out, e, code := h.run(t, "jail", "-f", hostPath(h.root, "/etc/jail.conf"), "-e", ",")
	if code != 0 || e != "" || !strings.Contains(out, "name=pg_j,") || !strings.Contains(out, "vnet.interface=pg_b,ipg_b") {
		t.Errorf("jail -e: %q %q %d", out, e, code)
	}
	write(t, h.root, "/etc/jail.conf", readFile(t, h.root, "/etc/jail.conf")+"x_j { path = \"$nosuch\"; }\n")
	_, e, code = h.run(t, "jail", "-f", hostPath(h.root, "/etc/jail.conf"), "-e", ",")
	if code != 0 || !strings.HasPrefix(e, "jail: ") {
		t.Errorf("jail -e with an unknown variable: stderr %q, exit %d (jail(8): stderr and exit 0)", e, code)
	}
}

func TestShutdownStopsEverything(t *testing.T) {
	key := newKey(t)
	a, b := twoHosts(t, key, key)
	var procs []Proc
	for _, h := range []*simHost{a, b} {
		k, _ := ReadKernel(h.root)
		for _, s := range k.Jails["pg_j"].Services {
			procs = append(procs, s.Procs...)
		}
		if err := h.drv.Close(); err != nil {
			t.Fatal(err)
		}
		if ok, _ := h.drv.JailRunning(context.Background(), "pg_j"); !ok {
			t.Fatal("Close stopped the jail")
		}
	}
	for _, h := range []*simHost{a, b} {
		if err := Shutdown(h.root); err != nil {
			t.Fatal(err)
		}
		if ok, _ := h.drv.JailRunning(context.Background(), "pg_j"); ok {
			t.Error("jail running after Shutdown")
		}
	}
	if len(procs) != 6 {
		t.Fatalf("procs = %d, want 6", len(procs))
	}
	for _, p := range procs {
		if alive(p) {
			t.Errorf("%s %s (pid %d) alive after Shutdown", p.Service, p.Name, p.PID)
		}
	}
}

func TestRegistered(t *testing.T) {
	d, err := apply.NewDriver("sim", apply.DriverOptions{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != "sim" {
		t.Errorf("Name = %q", d.Name())
	}
	if _, err := apply.NewDriver("sim", apply.DriverOptions{Root: "/"}); err == nil {
		t.Error("sim on / accepted")
	}
}

func TestPrecheckThroughEmulator(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	stage := t.TempDir()
	var files []verify.File
	for _, p := range []string{"/etc/pf.conf", "/etc/jail.conf", "/etc/rc.conf", "/jails/pg_j/etc/rc.conf"} {
		write(t, stage, p, readFile(t, h.root, p))
		files = append(files, verify.File{Path: p, Unit: "none"})
	}
	ctx := context.Background()
	if err := h.drv.Precheck(ctx, stage, files); err != nil {
		t.Fatalf("pre-check of the host's own files: %v", err)
	}
	write(t, stage, "/etc/pf.conf", readFile(t, stage, "/etc/pf.conf")+"pass in on $nosuch\n")
	err := h.drv.Precheck(ctx, stage, files)
	if err == nil || !strings.Contains(err.Error(), "/etc/pf.conf:") || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("pre-check with a bad pf.conf: %v", err)
	}
}

// TestSyntaxChecksTakeNoLock: the pre-check's commands (pfctl -n -f,
// jail -f -e, sh -n) read files only, so they answer while another
// process holds the sandbox's kernel lock, with what they answer under it.
func TestSyntaxChecksTakeNoLock(t *testing.T) {
	h := newHost(t, "127.0.0.1", "127.0.0.2", newKey(t))
	write(t, h.root, "/etc/bad.conf", "pass in on\n")
	write(t, h.root, "/etc/rc.d/x", "echo \"\n")
	checks := []struct {
		argv []string
		code int
		out  string // in stdout or stderr
	}{
		{[]string{"pfctl", "-n", "-f", filepath.Join(h.root, "etc/pf.conf")}, 0, ""},
		{[]string{"pfctl", "-n", "-f", filepath.Join(h.root, "etc/bad.conf"), "-D", "x=1"}, 1, "bad.conf:1:"},
		{[]string{"jail", "-f", filepath.Join(h.root, "etc/jail.conf"), "-e", ","}, 0, "name=pg_j,"},
		{[]string{"sh", "-n", filepath.Join(h.root, "etc/rc.d/x")}, 2, "x: 2: Syntax error"},
	}
	unlock, err := lockState(h.root)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, c := range checks {
		done := make(chan struct{})
		var stdout, stderr string
		var code int
		go func() {
			defer close(done)
			r, err := h.drv.Host().Run(context.Background(), c.argv...)
			if err != nil {
				t.Errorf("%q: %v", c.argv, err)
			}
			stdout, stderr, code = string(r.Stdout), string(r.Stderr), r.ExitCode
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatalf("%q waits for the kernel lock", c.argv)
		}
		if code != c.code || !strings.Contains(stdout+stderr, c.out) {
			t.Errorf("%q: exit %d, output %q; want exit %d with %q", c.argv, code, stdout+stderr, c.code, c.out)
		}
	}
}
