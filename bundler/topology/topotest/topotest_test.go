package topotest

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/bundler/topology"
)

var spipedRE = regexp.MustCompile(`spiped_pipe_(\w+)_(source|target)="\[([^\]]+)\]:(\d+)"`)
var ifconfigRE = regexp.MustCompile(`ifconfig_\w+="inet ([0-9.]+)/`)

// TestLoopbackUIRig: the loopback copy of uirig loads, every address a
// pipe binds or dials is on 127/8, and no two pipes anywhere in the fleet
// bind the same address and port.
func TestLoopbackUIRig(t *testing.T) {
	dst := t.TempDir()
	m, err := Loopback("../../../testdata/infra/uirig", dst)
	if err != nil {
		t.Fatal(err)
	}
	if m["10.0.56.40"] == "" || m["10.0.56.40"] == m["10.0.56.41"] {
		t.Fatalf("mapping: %v", m)
	}
	// Same /24, same new /24, last octet kept.
	a, b := netip.MustParseAddr(m["10.0.56.40"]), netip.MustParseAddr(m["10.0.56.41"])
	if a.As4()[1] != b.As4()[1] || a.As4()[2] != b.As4()[2] || a.As4()[3] != 40 {
		t.Errorf("10.0.56.40 → %s, 10.0.56.41 → %s: /24 not kept", a, b)
	}
	r, err := topology.Load(dst)
	if err != nil {
		t.Fatalf("Load(loopback copy):\n%v", err)
	}
	bound := map[string]string{}
	jailAddrs := map[string]string{}
	pipes := 0
	for _, h := range r.Hosts() {
		hr, err := r.Render(h)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range hr.Files {
			if !strings.HasSuffix(f.Path, "/rc.conf") {
				continue
			}
			for _, sm := range spipedRE.FindAllStringSubmatch(string(f.Content), -1) {
				ad := netip.MustParseAddr(sm[3])
				if !ad.IsLoopback() {
					t.Errorf("%s %s: pipe %s %s %s not on loopback", h, f.Path, sm[1], sm[2], ad)
				}
				if sm[2] == "source" {
					pipes++
					key := sm[3] + ":" + sm[4]
					if other, dup := bound[key]; dup {
						t.Errorf("%s %s pipe %s binds %s, already bound by %s", h, f.Path, sm[1], key, other)
					}
					bound[key] = h + " " + f.Path + " " + sm[1]
				}
			}
			if strings.HasPrefix(f.Path, "/jails/") {
				for _, im := range ifconfigRE.FindAllStringSubmatch(string(f.Content), -1) {
					if !netip.MustParseAddr(im[1]).IsLoopback() {
						t.Errorf("%s %s: jail address %s not on loopback", h, f.Path, im[1])
					}
					if other, dup := jailAddrs[im[1]]; dup {
						t.Errorf("%s %s: jail address %s also in %s", h, f.Path, im[1], other)
					}
					jailAddrs[im[1]] = h + " " + f.Path
				}
			}
		}
		for _, c := range hr.Health {
			if c.Addr != "" && !strings.HasPrefix(c.Addr, "127.") {
				t.Errorf("%s: check %s addr %s not on loopback", h, c.Name, c.Addr)
			}
		}
	}
	// Role-shared jail addresses differ per host: each host's jails can
	// bind their own on one machine.
	if m["serverA/10.0.2.20"] == "" || m["serverA/10.0.2.20"] == m["serverB/10.0.2.20"] {
		t.Errorf("ngx_b: serverA %q, serverB %q; want distinct per-host copies", m["serverA/10.0.2.20"], m["serverB/10.0.2.20"])
	}
	if len(jailAddrs) < 16 {
		t.Errorf("only %d jail addresses seen", len(jailAddrs))
	}
	if pipes != 8 {
		t.Errorf("%d pipes, want 8 (4 per host)", pipes)
	}
}

// TestLoopbackExamples: every example still loads after the rewrite.
func TestLoopbackExamples(t *testing.T) {
	for _, ex := range []string{"routed", "lagg"} {
		dst := t.TempDir()
		if _, err := Loopback(filepath.Join("../../../testdata/infra", ex), dst); err != nil {
			t.Fatal(err)
		}
		if _, err := topology.Load(dst); err != nil {
			t.Errorf("%s: Load(loopback copy):\n%v", ex, err)
		}
	}
}

func TestLoopbackRewrite(t *testing.T) {
	dir, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), "x 10.0.2.1/24 10.0.2.9 10.0.0.0/8 0.0.0.0/0 127.0.0.1 1.2.3.4.5 10.0.3.1\n")
	m, err := LoopbackAt(dir, dst, 7)
	if err != nil {
		t.Fatal(err)
	}
	got := readFile(t, filepath.Join(dst, "a.txt"))
	want := "x 127.7.16.1/24 127.7.16.9 10.0.0.0/8 0.0.0.0/0 127.0.0.1 1.2.3.4.5 127.7.17.1\n"
	if got != want {
		t.Errorf("rewrite:\n got %q\nwant %q", got, want)
	}
	if m["10.0.2.9"] != "127.7.16.9" || len(m) != 3 {
		t.Errorf("map = %v", m)
	}
}

func TestWriteSecrets(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := WriteSecrets(a, []string{"/jails/pg_j/etc/spiped.key", "/usr/local/etc/wireguard/wg0.key"}); err != nil {
		t.Fatal(err)
	}
	if err := WriteSecrets(b, []string{"/jails/pg_j/etc/spiped.key"}); err != nil {
		t.Fatal(err)
	}
	ka := readFile(t, filepath.Join(a, "jails/pg_j/etc/spiped.key"))
	kb := readFile(t, filepath.Join(b, "jails/pg_j/etc/spiped.key"))
	kw := readFile(t, filepath.Join(a, "usr/local/etc/wireguard/wg0.key"))
	if len(ka) != 32 || ka != kb || ka == kw {
		t.Errorf("keys: same path on two hosts must match (%x, %x), different names must differ (%x)", ka, kb, kw)
	}
	if err := WriteSecrets(a, []string{"relative"}); err == nil {
		t.Error("relative secret path accepted")
	}
}

// TestReserveBlock: blocks handed out are distinct and stay held (a bind
// on their reservation address fails), which is what makes every other
// Loopback caller on the machine pass them over.
func TestReserveBlock(t *testing.T) {
	seen := map[byte]bool{}
	for range 20 {
		b, err := reserveBlock()
		if err != nil {
			t.Fatal(err)
		}
		if seen[b] || b == 0 || b > 250 {
			t.Fatalf("block %d handed out twice or out of range (have %v)", b, seen)
		}
		seen[b] = true
		// The block is held: binding its reservation address fails.
		if l, err := net.Listen("tcp4", fmt.Sprintf("127.%d.0.2:%d", b, reservePort)); err == nil {
			l.Close()
			t.Fatalf("block %d is not held", b)
		}
	}
}
