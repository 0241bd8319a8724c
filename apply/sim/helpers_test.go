package sim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/verify"
)

func TestMain(m *testing.M) {
	ServiceMain() // the stand-in services re-execute this binary
	os.Exit(m.Run())
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

// run runs one emulated command on h.
func (h *simHost) run(t *testing.T, argv ...string) (stdout, stderr string, code int) {
	t.Helper()
	r, err := h.drv.Host().Run(context.Background(), argv...)
	if err != nil {
		t.Fatalf("%q: %v", argv, err)
	}
	return string(r.Stdout), string(r.Stderr), r.ExitCode
}

// boot boots h and fails the test on an error.
func (h *simHost) boot(t *testing.T) string {
	t.Helper()
	out, err := h.drv.Host().Boot()
	if err != nil {
		t.Fatalf("boot %s: %v\n%s", h.root, err, out)
	}
	return out
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
