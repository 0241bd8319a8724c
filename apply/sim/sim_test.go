package sim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/freebsd/layout"
	"github.com/rigger-bsd/rigger/verify"
)

func TestMain(m *testing.M) {
	ServiceMain() // the stand-in services re-execute this binary
	os.Exit(m.Run())
}

func needSpiped(t testing.TB) {
	t.Helper()
	if _, err := lookSpiped(); err != nil {
		t.Fatal(err)
	}
}

func lookSpiped() (string, error) {
	p, err := exec.LookPath("spiped")
	if err != nil {
		return "", fmt.Errorf("spiped is not on PATH: the sim runs real spiped processes; install it (apt-get install spiped): %w", err)
	}
	return p, nil
}

func mkdirWrite(t testing.TB, full string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// simHost is one sandbox host made from testdata/host.
type simHost struct {
	root string
	ip   string // pg_j's address on ipg_b
	drv  *Driver
}

// newHost copies testdata/host into a sandbox and writes the per-host
// files (the jail's addresses, the spiped key) as an installer would.
func newHost(t *testing.T, ip, peerIP string, key []byte) *simHost {
	t.Helper()
	root := t.TempDir()
	copyTree(t, "testdata/host", root)
	write(t, root, "/jails/pg_j/etc/ip_ipg_b", ip+"\n")
	write(t, root, "/jails/pg_j/etc/ip_peer_ipg_b", peerIP+"\n")
	write(t, root, "/jails/pg_j/etc/spiped.key", string(key))
	jc := readFile(t, root, "/etc/jail.conf")
	write(t, root, "/etc/jail.conf", strings.Replace(jc, "127.0.0.1", webIP(ip), 1))
	d, err := New(apply.DriverOptions{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	ShutdownOnCleanup(t, root)
	return &simHost{root: root, ip: ip, drv: d}
}

func webIP(ip string) string { return strings.TrimSuffix(ip, filepath.Ext(ip)) + ".80" }

// pair returns loopback addresses for two hosts, random per test so
// parallel runs (and other packages' tests) do not collide on ports.
func pair() (a, b string) {
	x, y := 64+mrand.IntN(190), 1+mrand.IntN(250)
	return fmt.Sprintf("127.%d.%d.30", x, y), fmt.Sprintf("127.%d.%d.40", x, y)
}

func newKey(t *testing.T) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func copyTree(t *testing.T, src, dst string) { copyTreeTB(t, src, dst) }

func copyTreeTB(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, root, p, content string) {
	t.Helper()
	full := hostPath(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(hostPath(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func unit(t *testing.T, s string) verify.Unit {
	t.Helper()
	u, err := verify.ParseUnit(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// pgProbe sends a PostgreSQL SSLRequest to addr and wants 'N' or 'S':
// the end-to-end check a tunnel needs (a connect alone proves nothing).
func pgProbe(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	var req [8]byte
	binary.BigEndian.PutUint32(req[0:], 8)
	binary.BigEndian.PutUint32(req[4:], sslRequestCode)
	if _, err := c.Write(req[:]); err != nil {
		return fmt.Errorf("exchange: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return fmt.Errorf("exchange: %w", err)
	}
	if b[0] != 'N' && b[0] != 'S' {
		return fmt.Errorf("exchange: got %q", b[0])
	}
	return nil
}

// twoHosts starts pg_j on two hosts whose PGC pipes point at each other.
func twoHosts(t *testing.T, keyA, keyB []byte) (a, b *simHost) {
	t.Helper()
	needSpiped(t)
	ipA, ipB := pair()
	a, b = newHost(t, ipA, ipB, keyA), newHost(t, ipB, ipA, keyB)
	ctx := context.Background()
	for _, h := range []*simHost{a, b} {
		if err := h.drv.Activate(ctx, unit(t, "jail:pg_j")); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

func TestTunnelThroughTwoHosts(t *testing.T) {
	key := newKey(t)
	a, b := twoHosts(t, key, key)
	ctx := context.Background()
	for _, h := range []*simHost{a, b} {
		ok, err := h.drv.JailRunning(ctx, "pg_j")
		if err != nil || !ok {
			t.Fatalf("%s: JailRunning = %v, %v", h.root, ok, err)
		}
	}
	// PGC on A -> PGS on B -> postgres stand-in on B, and the other way.
	if err := pgProbe(net.JoinHostPort(a.ip, "5435")); err != nil {
		t.Fatalf("A's PGC -> B's postgres: %v", err)
	}
	if err := pgProbe(net.JoinHostPort(b.ip, "5435")); err != nil {
		t.Fatalf("B's PGC -> A's postgres: %v", err)
	}
	s, err := ReadState(a.root)
	if err != nil {
		t.Fatal(err)
	}
	j := s.Jails["pg_j"]
	var got []string
	for _, p := range j.Procs {
		got = append(got, p.Service+":"+p.Name)
		if sid := session(t, p.PID); sid != p.PID {
			t.Errorf("%s %s (pid %d) in session %d: not detached", p.Service, p.Name, p.PID, sid)
		}
	}
	if strings.Join(got, " ") != "spiped:PGS spiped:PGC postgresql:postgresql" {
		t.Errorf("processes = %q", got)
	}
	if strings.Join(j.Ifaces, ",") != "pg_b,ipg_b" || strings.Join(j.Addrs, ",") != a.ip {
		t.Errorf("jail ifaces %q addrs %q", j.Ifaces, j.Addrs)
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
	// The local connect still succeeds; the exchange fails.
	c, err := net.DialTimeout("tcp", net.JoinHostPort(a.ip, "5435"), time.Second)
	if err != nil {
		t.Fatalf("connect through a broken tunnel should still succeed: %v", err)
	}
	c.Close()
	err = pgProbe(net.JoinHostPort(a.ip, "5435"))
	if err == nil || !strings.Contains(err.Error(), "exchange") {
		t.Fatalf("probe through mismatched keys = %v, want an exchange failure", err)
	}
	// Both jails still "run": only an end-to-end probe sees the break.
	if ok, _ := b.drv.JailRunning(context.Background(), "pg_j"); !ok {
		t.Error("pg_j on B should still be running")
	}
}

func TestJailStartFailures(t *testing.T) {
	needSpiped(t)
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, root string)
		want   string
	}{
		{"broken rc.conf", func(t *testing.T, root string) {
			write(t, root, "/jails/pg_j/etc/rc.conf", readFile(t, root, "/jails/pg_j/etc/rc.conf")+"spiped_pipe_PGC_key=\"/etc/spiped.key\n")
		}, "/jails/pg_j/etc/rc.conf:"},
		{"unknown vnet interface", func(t *testing.T, root string) {
			write(t, root, "/etc/jail.conf", strings.Replace(readFile(t, root, "/etc/jail.conf"), "pg_b, ipg_b", "pg_b, ipg_x", 1))
		}, "ifconfig: interface ipg_x does not exist"},
		{"epair not renamed", func(t *testing.T, root string) {
			write(t, root, "/etc/rc.conf", strings.Replace(readFile(t, root, "/etc/rc.conf"), `ifconfig_epair6b_name="ipg_b"`, "", 1))
		}, "interface ipg_b does not exist"},
		{"missing path", func(t *testing.T, root string) {
			if err := os.RemoveAll(hostPath(root, "/jails/pg_j")); err != nil {
				t.Fatal(err)
			}
		}, "jail: pg_j: path /jails/pg_j: No such file or directory"},
		{"no jail.conf entry", func(t *testing.T, root string) {
			write(t, root, "/etc/jail.conf", strings.Replace(readFile(t, root, "/etc/jail.conf"), "pg_j {", "pgx_j {", 1))
		}, `jail "pg_j" not found`},
		{"broken jail.conf", func(t *testing.T, root string) {
			write(t, root, "/etc/jail.conf", readFile(t, root, "/etc/jail.conf")+"oops {\n")
		}, "/etc/jail.conf:"},
		{"jail_enable off", func(t *testing.T, root string) {
			write(t, root, "/etc/rc.conf", strings.Replace(readFile(t, root, "/etc/rc.conf"), `jail_enable="YES"`, "", 1))
		}, "Set jail_enable to YES"},
		{"missing key", func(t *testing.T, root string) {
			os.Remove(hostPath(root, "/jails/pg_j/etc/spiped.key"))
		}, "Cannot open file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ipA, ipB := pair()
			h := newHost(t, ipA, ipB, newKey(t))
			tc.break_(t, h.root)
			err := h.drv.Activate(context.Background(), unit(t, "jail:pg_j"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Activate = %v, want an error containing %q", err, tc.want)
			}
			var je *JailError
			if tc.name != "missing key" && tc.name != "jail_enable off" && !errors.As(err, &je) {
				t.Errorf("error is %T, want *JailError", err)
			}
			if ok, _ := h.drv.JailRunning(context.Background(), "pg_j"); ok {
				t.Error("JailRunning after a failed start")
			}
			acts, _ := Activations(h.root)
			if len(acts) != 1 || acts[0].Unit != "jail:pg_j" || acts[0].Err == "" {
				t.Errorf("activations = %+v", acts)
			}
		})
	}
}

func TestVnetInterfaceHeldByAnotherJail(t *testing.T) {
	needSpiped(t)
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	write(t, h.root, "/etc/jail.conf", readFile(t, h.root, "/etc/jail.conf")+"pg2_j { path = \"/jails/pg_j\"; vnet; vnet.interface = ipg_b; }\n")
	ctx := context.Background()
	if err := h.drv.Activate(ctx, unit(t, "jail:pg_j")); err != nil {
		t.Fatal(err)
	}
	err := h.drv.Activate(ctx, unit(t, "jail:pg2_j"))
	if err == nil || !strings.Contains(err.Error(), "it is in jail pg_j") {
		t.Fatalf("second jail on ipg_b: %v", err)
	}
}

func TestDeadProcessMeansJailDown(t *testing.T) {
	key := newKey(t)
	a, _ := twoHosts(t, key, key)
	s, _ := ReadState(a.root)
	p := s.Jails["pg_j"].Procs[0]
	if err := terminate(p); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.drv.JailRunning(context.Background(), "pg_j"); ok || err != nil {
		t.Fatalf("JailRunning with %s dead = %v, %v", p.Name, ok, err)
	}
	// A restart brings it back.
	if err := a.drv.Activate(context.Background(), unit(t, "jail:pg_j")); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.drv.JailRunning(context.Background(), "pg_j"); !ok {
		t.Fatal("not running after restart")
	}
}

func TestShutdownStopsEverything(t *testing.T) {
	key := newKey(t)
	a, b := twoHosts(t, key, key)
	var procs []Proc
	for _, h := range []*simHost{a, b} {
		s, _ := ReadState(h.root)
		procs = append(procs, s.Jails["pg_j"].Procs...)
		// Close leaves jails running, as on FreeBSD.
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
	if _, err := net.DialTimeout("tcp", net.JoinHostPort(a.ip, "5435"), 200*time.Millisecond); err == nil {
		t.Error("PGC still listening after Shutdown")
	}
}

func TestPF(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	ctx := context.Background()
	if on, _ := h.drv.PFEnabled(ctx); on {
		t.Fatal("pf enabled before any load")
	}
	if err := h.drv.Activate(ctx, unit(t, "pf-table:martians")); err == nil {
		t.Error("table load before pf is loaded should fail")
	}
	if err := h.drv.Activate(ctx, unit(t, "pf")); err != nil {
		t.Fatal(err)
	}
	if on, err := h.drv.PFEnabled(ctx); !on || err != nil {
		t.Fatalf("PFEnabled = %v, %v", on, err)
	}
	s1, _ := ReadState(h.root)
	write(t, h.root, "/etc/ips_martians", "192.0.2.0/24\n")
	if err := h.drv.Activate(ctx, unit(t, "pf-table:martians")); err != nil {
		t.Fatal(err)
	}
	s2, _ := ReadState(h.root)
	if s1.PF.Tables["martians"] == s2.PF.Tables["martians"] || s1.PF.Ruleset != s2.PF.Ruleset {
		t.Errorf("table replace: before %+v after %+v", s1.PF, s2.PF)
	}
	for _, tc := range []struct{ unit, want string }{
		{"pf-table:ratelimit", "declared without a file"},
		{"pf-table:nosuch", "not declared"},
	} {
		if err := h.drv.Activate(ctx, unit(t, tc.unit)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.unit, err)
		}
	}
	// A table file that pfctl cannot load fails the load; the old rules stay.
	os.Remove(hostPath(h.root, "/etc/ips_martians"))
	err := h.drv.Activate(ctx, unit(t, "pf"))
	if err == nil || !strings.Contains(err.Error(), "/etc/pf.conf:2:") || !strings.Contains(err.Error(), "/etc/ips_martians") {
		t.Fatalf("pf with a missing table file: %v", err)
	}
	if s3, _ := ReadState(h.root); s3.PF.Ruleset != s2.PF.Ruleset {
		t.Error("a failed load changed the loaded ruleset")
	}
}

func TestNetifOfVnetJail(t *testing.T) {
	needSpiped(t)
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	ctx := context.Background()
	if err := h.drv.Activate(ctx, unit(t, "netif:ipg_b")); err != nil {
		t.Fatalf("ipg_b on the host before the jail runs: %v", err)
	}
	if err := h.drv.Activate(ctx, unit(t, "jail:pg_j")); err != nil {
		t.Fatal(err)
	}
	err := h.drv.Activate(ctx, unit(t, "netif:ipg_b"))
	if err == nil || !strings.Contains(err.Error(), "moved into vnet jail pg_j") {
		t.Fatalf("netif restart of a jail's interface: %v", err)
	}
}

func TestOtherUnits(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	ctx := context.Background()
	for _, u := range []string{"netif:pg_a", "netif:xnic", "netif:ibridge", "sysctl", "cron", "none", "reboot-required"} {
		if err := h.drv.Activate(ctx, unit(t, u)); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	write(t, h.root, "/etc/sysctl.conf", "net.inet.ip.forwarding=1\nbogus line\n")
	write(t, h.root, "/usr/local/etc/wireguard/wg1.conf", "[Peer]\n")
	for _, tc := range []struct{ unit, want string }{
		{"netif:epair2a", "interface epair2a does not exist"}, // renamed to pg_a
		{"sysctl", "/etc/sysctl.conf:2:"},
		{"wireguard:wg0", "wireguard/wg0.conf"},
		{"wireguard:wg1", "no [Interface] section"},
		{"service:sshd", "Set sshd_enable to YES"},
		{"jail-service:pg_j:spiped", `jail "pg_j" not found`},
	} {
		err := h.drv.Activate(ctx, unit(t, tc.unit))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.unit, err, tc.want)
		}
	}
}

func TestNginxStandIn(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	if err := h.drv.Activate(context.Background(), unit(t, "jail:web_j")); err != nil {
		t.Fatal(err)
	}
	s, _ := ReadState(h.root)
	j := s.Jails["web_j"]
	if j == nil || j.Addrs[0] != webIP(ipA) {
		t.Fatalf("web_j state = %+v", j)
	}
	// Port 80 needs root: as a user the stand-in is skipped, as root it serves.
	if os.Geteuid() == 0 && len(j.Procs) != 1 {
		t.Errorf("as root, nginx stand-in should run: %+v", j.Procs)
	}
	if os.Geteuid() != 0 && len(j.Procs) != 0 {
		t.Errorf("as a user, nginx stand-in cannot bind :80: %+v", j.Procs)
	}
}

func TestPrecheck(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	stage := t.TempDir()
	var files []verify.File
	add := func(p, content, u string) {
		write(t, stage, p, content)
		files = append(files, verify.File{Path: p, Unit: u})
	}
	for _, p := range []string{"/etc/pf.conf", "/etc/jail.conf", "/etc/rc.conf", "/jails/pg_j/etc/rc.conf"} {
		add(p, readFile(t, h.root, p), "none")
	}
	add("/etc/ips_martians", "10.0.0.0/8\n", "pf-table:martians")
	add("/usr/local/etc/rc.d/node", "#!/bin/sh\n. /etc/rc.subr\nname=node\nrun_rc_command \"$1\"\n", "none")
	ctx := context.Background()
	if err := h.drv.Precheck(ctx, stage, files); err != nil {
		t.Fatalf("good tree: %v", err)
	}
	// The staged table file is the one read: break it only in the stage.
	write(t, stage, "/etc/ips_martians", "10.0.0.300\n")
	write(t, stage, "/jails/pg_j/etc/rc.conf", "a=\"b\n")
	write(t, stage, "/etc/jail.conf", "pg_j {\n  path = \"/x\"\n")
	write(t, stage, "/usr/local/etc/rc.d/node", "if then\n")
	err := h.drv.Precheck(ctx, stage, files)
	if err == nil {
		t.Fatal("broken tree passed")
	}
	for _, want := range []string{
		`/etc/pf.conf:2: cannot load "/etc/ips_martians"`,
		"/etc/ips_martians:1:",
		"/jails/pg_j/etc/rc.conf:1:",
		"/etc/jail.conf:",
		"/usr/local/etc/rc.d/node:1:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), stage) {
		t.Errorf("error names the stage:\n%v", err)
	}
	var fe *layout.FileError
	if !errors.As(err, &fe) {
		t.Errorf("no FileError in %T", err)
	}
	var pe *apply.PrecheckError
	if !errors.As(err, &pe) || pe.Path != "/etc/pf.conf" {
		t.Errorf("not a PrecheckError naming /etc/pf.conf: %#v", pe)
	}
}

func TestRegistered(t *testing.T) {
	d, err := apply.NewDriver("sim", apply.DriverOptions{Root: t.TempDir()})
	if err != nil || d.Name() != "sim" {
		t.Fatalf("NewDriver = %v, %v", d, err)
	}
	if _, err := apply.NewDriver("sim", apply.DriverOptions{Root: "/"}); err == nil {
		t.Error("sim must refuse the real root")
	}
}

func TestRCEval(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/etc/ip", "127.1.2.3\n")
	if err := os.Symlink("/etc/passwd", hostPath(root, "/etc/escape")); err != nil {
		t.Fatal(err)
	}
	v := &rcVars{file: "/etc/rc.conf", root: root, raw: map[string]string{
		"ip":    "`/bin/cat /etc/ip`",
		"a":     "inet ${ip}/24",
		"b":     "[$(cat /etc/ip)]:5432",
		"c":     "`hostname -s`",
		"d":     "`cat /etc/escape`",
		"e":     "`cat /../../etc/ip`",
		"loop":  "$loop",
		"flag":  "YES",
		"flag2": "no",
	}}
	for k, want := range map[string]string{"a": "inet 127.1.2.3/24", "b": "[127.1.2.3]:5432", "e": "127.1.2.3"} {
		if got, err := v.get(k); got != want || err != nil {
			t.Errorf("%s = %q, %v; want %q", k, got, err, want)
		}
	}
	for _, k := range []string{"c", "d", "loop"} {
		if got, err := v.get(k); err == nil {
			t.Errorf("%s = %q, want an error", k, got)
		}
	}
	if !v.yes("flag") || v.yes("flag2") || v.yes("unset") {
		t.Error("checkyesno")
	}
}

func FuzzRCEval(f *testing.F) {
	f.Add("inet `/bin/cat /etc/ip`/24", "[$(cat /etc/ip)]:5432")
	f.Add("${a}${b}$c", "`cat`")
	root := f.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/ip"), []byte("127.0.0.9\n"), 0o644)
	f.Fuzz(func(t *testing.T, a, b string) {
		v := &rcVars{file: "f", root: root, raw: map[string]string{"a": a, "b": b, "ifconfig_x": a, "ifconfig_y_alias0": b}}
		v.get("a")
		v.get("b")
		v.ifaceAddrs(nil)
	})
}

// An agent killed between starting a jail's processes and recording them
// leaves strays; the next start of that jail and Shutdown still find them.
func TestStraysAfterLostState(t *testing.T) {
	key := newKey(t)
	a, _ := twoHosts(t, key, key)
	s, _ := ReadState(a.root)
	old := s.Jails["pg_j"].Procs
	if err := os.Remove(stateFile(a.root)); err != nil {
		t.Fatal(err)
	}
	if err := a.drv.Activate(context.Background(), unit(t, "jail:pg_j")); err != nil {
		t.Fatalf("restart over strays: %v", err)
	}
	for _, p := range old {
		if alive(p) {
			t.Errorf("stray %s %s (pid %d) survived the restart", p.Service, p.Name, p.PID)
		}
	}
	s, _ = ReadState(a.root)
	cur := s.Jails["pg_j"].Procs
	if err := os.Remove(stateFile(a.root)); err != nil {
		t.Fatal(err)
	}
	if err := Shutdown(a.root); err != nil {
		t.Fatal(err)
	}
	for _, p := range cur {
		if alive(p) {
			t.Errorf("%s %s (pid %d) survived Shutdown without state", p.Service, p.Name, p.PID)
		}
	}
}

func TestHostService(t *testing.T) {
	needSpiped(t)
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	write(t, h.root, "/etc/spiped.key", string(newKey(t)))
	write(t, h.root, "/etc/rc.conf", readFile(t, h.root, "/etc/rc.conf")+`
ifconfig_em1="inet `+ipA+`/24"
spiped_enable="YES"
spiped_pipes="SSH"
spiped_pipe_SSH_mode="server"
spiped_pipe_SSH_source="[`+ipA+`]:8022"
spiped_pipe_SSH_target="[127.0.0.1]:22"
spiped_pipe_SSH_key="/etc/spiped.key"
spiped_pipe_SSH_flags="-D -u spiped:spiped -o 30"
`)
	if err := h.drv.Activate(context.Background(), unit(t, "service:spiped")); err != nil {
		t.Fatal(err)
	}
	s, _ := ReadState(h.root)
	if s.Host == nil || len(s.Host.Procs) != 1 || !alive(s.Host.Procs[0]) {
		t.Fatalf("host state = %+v", s.Host)
	}
	argv := strings.Join(s.Host.Procs[0].Argv, " ")
	if !strings.Contains(argv, "-d -s ["+ipA+"]:8022") || !strings.Contains(argv, "-o 30") || strings.Contains(argv, "-u") || strings.Contains(argv, "-D") {
		t.Errorf("spiped argv = %s", argv)
	}
	if !strings.HasSuffix(argv, hostPath(h.root, "/etc/spiped.key")+" -F -o 30") {
		t.Errorf("key not mapped into the sandbox: %s", argv)
	}
	if err := Shutdown(h.root); err != nil {
		t.Fatal(err)
	}
	if alive(s.Host.Procs[0]) {
		t.Error("host spiped alive after Shutdown")
	}
}

func TestStandInWithoutServiceMain(t *testing.T) {
	d, err := New(apply.DriverOptions{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ipA, _ := pair()
	spec := svcSpec{service: "postgresql", name: "postgresql", argv: []string{"/bin/sh", "-c", "echo 'testing: warning: no tests to run'; echo PASS"}, listen: []string{ipA + ":5432"}}
	var got []Proc
	_, err = d.start("pg_j", spec, func(p Proc) { got = append(got, p) }, func(Proc) {})
	if err == nil || !strings.Contains(err.Error(), "sim.ServiceMain()") {
		t.Fatalf("err = %v, want a hint about ServiceMain", err)
	}
	if len(got) != 1 || got[0].PID == 0 {
		t.Errorf("started callback saw %+v", got)
	}
}
