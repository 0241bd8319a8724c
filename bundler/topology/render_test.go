package topology

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden renders under testdata/render")

// examples are the contract example repos, relative to this package.
var examples = []string{"uirig", "routed", "lagg", "geli"}

const infraDir = "../../testdata/infra"
const goldenDir = "../../testdata/render"

func loadExample(t testing.TB, name string) *Repo {
	t.Helper()
	r, err := Load(filepath.Join(infraDir, name))
	if err != nil {
		t.Fatalf("Load(%s):\n%v", name, err)
	}
	return r
}

// summary is the golden form of everything in a HostRender but the file
// contents: metadata, health checks, secrets, wave.
func summary(hr *HostRender) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "host %s\nwave %s\n", hr.Host, hr.Wave)
	for _, f := range hr.Files {
		fmt.Fprintf(&b, "file %04o %s:%s %s %s\n", uint32(f.Mode), f.Owner, f.Group, f.Unit, f.Path)
	}
	for _, s := range hr.Secrets {
		fmt.Fprintf(&b, "secret %s\n", s)
	}
	for _, n := range hr.NetifRestart {
		fmt.Fprintf(&b, "netif-restart %s\n", n)
	}
	fmt.Fprintf(&b, "tunnel-ports %v\n", hr.TunnelPorts)
	for _, c := range hr.Health {
		j, _ := json.Marshal(c)
		fmt.Fprintf(&b, "health %s\n", j)
	}
	return b.Bytes()
}

// TestGolden compares every host of every example with its golden render
// (testdata/render/<example>/<host>/<target path>, plus RENDER.txt).
// Run with -update to rewrite them.
func TestGolden(t *testing.T) {
	for _, ex := range examples {
		r := loadExample(t, ex)
		for _, h := range r.Hosts() {
			t.Run(ex+"/"+h, func(t *testing.T) {
				hr, err := r.Render(h)
				if err != nil {
					t.Fatal(err)
				}
				dir := filepath.Join(goldenDir, ex, h)
				want := map[string][]byte{"RENDER.txt": summary(hr)}
				for _, f := range hr.Files {
					want[strings.TrimPrefix(f.Path, "/")] = f.Content
				}
				if *update {
					if err := os.RemoveAll(dir); err != nil {
						t.Fatal(err)
					}
					for p, c := range want {
						dst := filepath.Join(dir, filepath.FromSlash(p))
						if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
							t.Fatal(err)
						}
						if err := os.WriteFile(dst, c, 0o644); err != nil {
							t.Fatal(err)
						}
					}
				}
				got := map[string]bool{}
				err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					rel, _ := filepath.Rel(dir, p)
					got[filepath.ToSlash(rel)] = true
					return nil
				})
				if err != nil {
					t.Fatalf("golden dir: %v (run with -update)", err)
				}
				for p, c := range want {
					g, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
					if err != nil {
						t.Errorf("%s: missing golden file (run with -update)", p)
						continue
					}
					if !bytes.Equal(g, c) {
						t.Errorf("%s differs from golden (run with -update to accept):\n--- got\n%s\n--- golden\n%s", p, c, g)
					}
					delete(got, p)
				}
				for p := range got {
					t.Errorf("%s: golden file no longer rendered", p)
				}
			})
		}
	}
}

// TestDeterministic: two loads of the same repo render byte-identical files.
func TestDeterministic(t *testing.T) {
	for _, ex := range examples {
		a, b := loadExample(t, ex), loadExample(t, ex)
		for _, h := range a.Hosts() {
			ha, _ := a.Render(h)
			hb, _ := b.Render(h)
			if !bytes.Equal(summary(ha), summary(hb)) || len(ha.Files) != len(hb.Files) {
				t.Fatalf("%s/%s: metadata differs between loads", ex, h)
			}
			for i := range ha.Files {
				if !bytes.Equal(ha.Files[i].Content, hb.Files[i].Content) {
					t.Errorf("%s/%s: %s differs between loads", ex, h, ha.Files[i].Path)
				}
			}
		}
	}
}

func isRCFile(p string) bool {
	return strings.HasSuffix(p, "/rc.conf") || strings.Contains(p, "/rc.conf.d/") || strings.Contains(p, "/rc.d/")
}

// TestShellSyntax runs every rendered rc-style file through sh -n (dash on
// Linux, the closest to FreeBSD's ash-derived /bin/sh).
func TestShellSyntax(t *testing.T) {
	sh := "dash"
	if _, err := exec.LookPath(sh); err != nil {
		sh = "sh"
	}
	dir := t.TempDir()
	n := 0
	for _, ex := range examples {
		r := loadExample(t, ex)
		for _, h := range r.Hosts() {
			hr, _ := r.Render(h)
			for _, f := range hr.Files {
				if !isRCFile(f.Path) {
					continue
				}
				n++
				p := filepath.Join(dir, fmt.Sprintf("%d.sh", n))
				if err := os.WriteFile(p, f.Content, 0o600); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command(sh, "-n", p).CombinedOutput(); err != nil {
					t.Errorf("%s %s: %s -n: %v\n%s", ex, f.Path, sh, err, out)
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d rc files checked", n)
	}
}

// TestUIRigMustShow pins the facts issue 2 asks the uirig render to show.
func TestUIRigMustShow(t *testing.T) {
	r := loadExample(t, "uirig")
	if got := strings.Join(r.Hosts(), " "); got != "serverA serverB" {
		t.Fatalf("hosts = %q", got)
	}
	a, _ := r.Render("serverA")
	b, _ := r.Render("serverB")
	file := func(hr *HostRender, p string) string {
		f := hr.File(p)
		if f == nil {
			t.Fatalf("%s: no %s", hr.Host, p)
		}
		if string(hr.Contents()[p]) != string(f.Content) {
			t.Fatalf("%s: Contents and File disagree on %s", hr.Host, p)
		}
		return string(f.Content)
	}
	contains := func(hr *HostRender, p string, wants ...string) {
		t.Helper()
		c := file(hr, p)
		for _, w := range wants {
			if !strings.Contains(c, w) {
				t.Errorf("%s %s: missing %q", hr.Host, p, w)
			}
		}
	}
	for _, hr := range []*HostRender{a, b} {
		contains(hr, "/etc/rc.conf",
			`cloned_interfaces="bridge0 bridge1 epair0 epair1 epair2 epair3 epair4 epair5 epair6"`,
			`ifconfig_bridge0_name="xbridge"`, `ifconfig_epair0a_name="ngx_a"`, `ifconfig_epair6b_name="ipg_b"`,
			`ifconfig_ibridge="addm inic addm inode_a addm ipg_a up"`,
			`ifconfig_xbridge="inet 10.0.2.1/24 addm ngx_a addm node_a addm pg_a up"`,
			`vlanhwtag"`, `jail_enable="YES"`, `pf_enable="YES"`, `gateway_enable="YES"`)
		contains(hr, "/etc/jail.conf.d/pg_j.conf", `sysvshm = "new";`, `vnet.interface = pg_b, node_pg_b, ipg_b;`)
		contains(hr, "/etc/jail.conf.d/node_j.conf", `vnet.interface = node_b, ngx_node_b, inode_b, node_pg_a;`)
		contains(hr, "/etc/jail.conf.d/nginx_j.conf", `vnet.interface = ngx_b, ngx_node_a;`)
		contains(hr, "/etc/jail.conf", `.include "/etc/jail.conf.d/pg_j.conf";`+"\n"+`.include "/etc/jail.conf.d/node_j.conf";`+"\n"+`.include "/etc/jail.conf.d/nginx_j.conf";`)
		contains(hr, "/etc/pf.conf", "scrub in all fragment reassemble no-df", "nat on xnic from $xbridge_net -> (xnic:0)",
			"antispoof quick for xnic", "(max-src-conn-rate 100/10, overload <ratelimit> flush global)",
			`nginx_j     = "10.0.2.20"`, "port { 5433 5434 }")
		contains(hr, "/jails/pg_j/etc/rc.conf", `spiped_pipes="N2P PGS PGC"`, `postgresql_enable="YES"`)
		contains(hr, "/jails/nginx_j/etc/rc.conf", `nginx_enable="YES"`)
		contains(hr, "/etc/cron.d/reallow-ratelimited-ips", "pfctl -t ratelimit -T expire 180")
		contains(hr, "/jails/nginx_j/usr/local/etc/nginx/nginx.conf", "server 10.0.3.30:3000;")
	}
	// Targets point at the peer, derived, never typed twice.
	contains(a, "/jails/pg_j/etc/rc.conf", `spiped_pipe_PGC_mode="encrypt"`, `spiped_pipe_PGC_source="[10.0.56.40]:5435"`, `spiped_pipe_PGC_target="[10.0.56.41]:5434"`)
	contains(b, "/jails/pg_j/etc/rc.conf", `spiped_pipe_PGC_target="[10.0.56.40]:5434"`, `spiped_pipe_N2P_source="[10.0.56.41]:5433"`)
	contains(a, "/jails/node_j/etc/rc.conf", `spiped_pipe_N2P_source="[10.0.56.30]:5432"`, `spiped_pipe_N2P_target="[10.0.56.41]:5433"`)
	contains(b, "/jails/node_j/etc/rc.conf", `spiped_pipe_N2P_target="[10.0.56.40]:5433"`)
	contains(a, "/etc/pf/pgpeer.table", "10.0.56.41")
	if a.Wave != 0 || b.Wave.Minutes() != 10 {
		t.Errorf("waves = %v, %v; want 0 and 10m", a.Wave, b.Wave)
	}
	var found bool
	for _, c := range a.Health {
		if c.Name == "pgc-to-serverB" {
			found = true
			if c.Kind != "tunnel" || c.Jail != "pg_j" || c.Addr != "10.0.56.40:5435" || c.Probe != "pg-ssl" {
				t.Errorf("pgc-to-serverB = %+v", c)
			}
		}
	}
	if !found {
		t.Errorf("serverA has no pgc-to-serverB check: %+v", a.Health)
	}
	if got := fmt.Sprint(a.Secrets); got != "[/jails/node_j/etc/spiped.key /jails/pg_j/etc/spiped.key]" {
		t.Errorf("secrets = %s", got)
	}
	if got := fmt.Sprint(a.TunnelPorts); got != "[5433 5434]" {
		t.Errorf("tunnel ports = %s", got)
	}
}
