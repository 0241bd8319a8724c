package apply_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/verify"
)

// tf is one file of a test bundle.
type tf struct {
	path, unit string
	data       string
	mode       verify.Mode
}

func hexsum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// mkBundle builds an already-verified bundle from files.
func mkBundle(serial uint64, files []tf, health ...verify.Check) *verify.Bundle {
	b := &verify.Bundle{
		Manifest: verify.Manifest{Schema: verify.Schema, Host: "serverA", Serial: serial, Health: health},
		Files:    map[string][]byte{},
		Signers:  []string{"test-key"},
		Envelope: fmt.Appendf(nil, `{"payloadType":"test","serial":%d}`, serial),
	}
	for _, f := range files {
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		b.Manifest.Files = append(b.Manifest.Files, verify.File{
			Path: f.path, Mode: mode, Owner: "root", Group: "wheel",
			SHA256: hexsum([]byte(f.data)), Size: int64(len(f.data)), Unit: f.unit,
		})
		b.Files[f.path] = []byte(f.data)
	}
	return b
}

// filler returns n bytes of config-like text tagged with tag.
func filler(tag string, n int) string {
	var sb strings.Builder
	for i := 0; sb.Len() < n; i++ {
		fmt.Fprintf(&sb, "# %s line %d: some configuration text\n", tag, i)
	}
	return sb.String()[:n]
}

// uirig returns a serverA-sized file set (15 files, the sizes of the
// rendered uirig serverA bundle, about 17 KiB) tagged with v.
func uirig(v string) []tf {
	return []tf{
		{"/etc/rc.conf", "none", filler("rc.conf "+v, 1400), 0},
		{"/etc/pf.conf", "pf", filler("pf.conf "+v, 3600), 0o600},
		{"/etc/pf.blocklist", "pf-table:blocklist", filler("blocklist "+v, 300), 0o600},
		{"/etc/sysctl.conf", "sysctl", filler("sysctl "+v, 350), 0},
		{"/etc/jail.conf", "none", filler("jail.conf "+v, 300), 0},
		{"/etc/jail.conf.d/nginx_j.conf", "jail:nginx_j", filler("nginx_j.conf "+v, 700), 0},
		{"/etc/jail.conf.d/node_j.conf", "jail:node_j", filler("node_j.conf "+v, 700), 0},
		{"/etc/jail.conf.d/pg_j.conf", "jail:pg_j", filler("pg_j.conf "+v, 700), 0},
		{"/etc/cron.d/ratelimit", "cron", filler("cron "+v, 120), 0},
		{"/jails/nginx_j/etc/rc.conf", "jail:nginx_j", filler("nginx_j rc "+v, 450), 0},
		{"/jails/node_j/etc/rc.conf", "jail:node_j", filler("node_j rc "+v, 450), 0},
		{"/jails/pg_j/etc/rc.conf", "jail:pg_j", filler("pg_j rc "+v, 500), 0},
		{"/jails/nginx_j/usr/local/etc/nginx/nginx.conf", "jail-service:nginx_j:nginx", filler("nginx "+v, 2400), 0},
		{"/jails/pg_j/usr/local/etc/postgresql/pg_hba.conf", "jail-service:pg_j:postgresql", filler("pg_hba "+v, 900), 0o600},
		{"/usr/local/etc/ssh/sshd_config", "service:sshd", filler("sshd "+v, 3300), 0},
	}
}

// with returns files with the contents of path replaced.
func with(files []tf, path, data string) []tf {
	out := append([]tf(nil), files...)
	for i := range out {
		if out[i].path == path {
			out[i].data = data
			return out
		}
	}
	panic("no file " + path)
}

type env struct {
	root, state string
	drv         *applytest.Driver
	eng         *apply.Engine
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state"), drv: applytest.New()}
	if err := os.MkdirAll(e.root, 0o755); err != nil {
		t.Fatal(err)
	}
	e.reopen(t)
	return e
}

// reopen builds a new engine over the same dirs, as after a restart.
func (e *env) reopen(t testing.TB) {
	t.Helper()
	eng, err := apply.New(apply.Config{
		Root: e.root, StateDir: e.state, Driver: e.drv,
		HealthTimeout: 2 * time.Second,
		Logger:        discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.eng = eng
}

// entry is what the snapshot records for one path under the root.
type entry struct {
	Mode fs.FileMode
	Sum  string // contents, or the link target
}

// snapshot records every file, directory and link under dir by relative
// path, so two trees compare byte for byte.
func snapshot(t testing.TB, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		en := entry{Mode: fi.Mode()}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			en.Sum, _ = os.Readlink(p)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			en.Sum = hexsum(b)
		}
		out[rel] = en
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffSnap(a, b map[string]entry) string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "- "+k)
		} else if v != w {
			d = append(d, fmt.Sprintf("~ %s %v -> %v", k, v, w))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "+ "+k)
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

// assertFiles checks that every file of b is on disk with its contents and mode.
func assertFiles(t testing.TB, root string, b *verify.Bundle) {
	t.Helper()
	for _, f := range b.Manifest.Files {
		p := filepath.Join(root, filepath.FromSlash(f.Path))
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
			continue
		}
		got, _ := os.ReadFile(p)
		if string(got) != string(b.Files[f.Path]) {
			t.Errorf("%s: contents differ from serial %d", f.Path, b.Manifest.Serial)
		}
		if fi.Mode().Perm() != fs.FileMode(f.Mode)&fs.ModePerm {
			t.Errorf("%s: mode %v, want %04o", f.Path, fi.Mode().Perm(), uint32(f.Mode))
		}
	}
}

// assertClean checks that no transaction is left in the state dir.
func assertClean(t testing.TB, state string) {
	t.Helper()
	for _, n := range []string{"journal.json", "backup.tar"} {
		if _, err := os.Stat(filepath.Join(state, n)); err == nil {
			t.Errorf("state dir still has %s", n)
		}
	}
	// The staging tree stays for the next transaction (TestStagingFollowsTheManifest).
	if tmps, _ := filepath.Glob(filepath.Join(state, ".*.tmp-*")); len(tmps) > 0 {
		t.Errorf("temp files left in the state dir: %v", tmps)
	}
	tmps, _ := filepath.Glob(filepath.Join(state, "generations", "*.tmp"))
	if len(tmps) > 0 {
		t.Errorf("uncommitted generations left: %v", tmps)
	}
}

func currentSerial(t testing.TB, e *apply.Engine) uint64 {
	t.Helper()
	g, err := e.Current()
	if err != nil {
		t.Fatal(err)
	}
	if g == nil {
		return 0
	}
	return g.Serial
}

func eq(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

var discard = slog.New(slog.DiscardHandler)

// newEngine builds an engine over e's dirs with another health deadline.
func newEngine(t testing.TB, e *env, health time.Duration) *apply.Engine {
	t.Helper()
	eng, err := apply.New(apply.Config{Root: e.root, StateDir: e.state, Driver: e.drv, HealthTimeout: health, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
