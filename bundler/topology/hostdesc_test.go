package topology

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/policy/hostdesc"
	"github.com/rigger-bsd/rigger/policy/rcconf"
)

// TestHostDescMatchesRCConf holds the manifest's host description equal
// to what the rendered /etc/rc.conf sets at boot, for every host of every
// example: the live plan reaches exactly the boot-time state.
func TestHostDescMatchesRCConf(t *testing.T) {
	for _, ex := range examples {
		r := loadExample(t, ex)
		for _, name := range r.Hosts() {
			hr, err := r.Render(name)
			if err != nil {
				t.Fatal(err)
			}
			vars, err := rcconf.Parse("/etc/rc.conf", hr.File("/etc/rc.conf").Content)
			if err != nil {
				t.Fatalf("%s/%s: %v", ex, name, err)
			}
			fromRC, err := hostdesc.FromRC(vars)
			if err != nil {
				t.Fatalf("%s/%s: FromRC: %v", ex, name, err)
			}
			want := rcView(hr.Desc)
			if !reflect.DeepEqual(fromRC, want) {
				g, _ := json.MarshalIndent(fromRC, "", " ")
				w, _ := json.MarshalIndent(want, "", " ")
				t.Errorf("%s/%s: rc.conf describes\n%s\nmanifest describes\n%s", ex, name, g, w)
			}
			if len(hr.Desc.Interfaces) == 0 {
				t.Errorf("%s/%s: no interfaces described", ex, name)
			}
		}
	}
}

// rcView is the part of a description rc.conf itself carries: jails'
// interfaces come from jail.conf, sysctls and tunables from their files.
func rcView(d *hostdesc.Host) *hostdesc.Host {
	b, _ := json.Marshal(d)
	var c hostdesc.Host
	json.Unmarshal(b, &c)
	c.Jails, c.Sysctls, c.Loader, c.Management = nil, nil, nil, ""
	for i := range c.Interfaces {
		c.Interfaces[i].Jail = ""
	}
	return &c
}

// TestHostDescUirig pins what the uirig description says of serverA: the
// facts the live plan acts on.
func TestHostDescUirig(t *testing.T) {
	hr, err := loadExample(t, "uirig").Render("serverA")
	if err != nil {
		t.Fatal(err)
	}
	d := hr.Desc
	xb := d.Iface("xbridge")
	if xb == nil || xb.Kind != hostdesc.Bridge || xb.Clone != "bridge0" ||
		!reflect.DeepEqual(xb.Members, []string{"ngx_a", "node_a", "pg_a"}) || !reflect.DeepEqual(xb.Addrs, []string{"10.0.2.1/24"}) {
		t.Errorf("xbridge: %+v", xb)
	}
	pgb := d.Iface("pg_b")
	if pgb == nil || pgb.Jail != "pg_j" || pgb.Peer != "pg_a" || pgb.Clone != "epair2b" || len(pgb.Addrs) != 0 {
		t.Errorf("pg_b: %+v", pgb)
	}
	if x := d.Iface("xnic"); x == nil || x.Clone != "igb0" || x.Kind != hostdesc.Physical {
		t.Errorf("xnic: %+v", x)
	}
	if x := d.Iface("inic"); x == nil || !reflect.DeepEqual(x.Options, []string{"vlanhwtag"}) {
		t.Errorf("inic: %+v", x)
	}
	if len(d.Routes) != 1 || d.Routes[0].Dest != "default" || d.Routes[0].Gateway != "203.0.113.1" {
		t.Errorf("routes: %+v", d.Routes)
	}
	var svcs []string
	for _, s := range d.Services {
		svcs = append(svcs, s.Name)
	}
	if strings.Join(svcs, " ") != "ntpd pflog sshd" || !d.Forwarding {
		t.Errorf("services %v forwarding %v", svcs, d.Forwarding)
	}
	if len(d.Jails) != 3 || d.Jails[0].Name != "pg_j" || strings.Join(d.Jails[0].Interfaces, " ") != "pg_b node_pg_b ipg_b" {
		t.Errorf("jails: %+v", d.Jails)
	}
}

// TestHostDescRoutesFIB: a static route with -fib lands in that FIB, and
// a route the routing script could not read is a problem at its line.
func TestHostDescRoutesFIB(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "topology.yaml"), []byte(`hosts:
  h1:
    nics: {em0: {}}
    addrs: {em0: 192.0.2.2/24}
    management: forbid
    routes:
      lan: "-net 10.1.0.0/16 192.0.2.1 -fib 1"
`), 0o644)
	r, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := r.Render("h1")
	if len(hr.Desc.Routes) != 1 || hr.Desc.Routes[0].FIB != 1 || hr.Desc.Routes[0].Dest != "10.1.0.0/16" || hr.Desc.Management != "forbid" {
		t.Fatalf("desc: %+v", hr.Desc)
	}
	os.WriteFile(filepath.Join(dir, "topology.yaml"), []byte(`hosts:
  h1:
    nics: {em0: {}}
    management: sometimes
    routes:
      lan: "-net 10.1.0.0/16 192.0.2.1 -fib"
`), 0o644)
	_, err = Load(dir)
	if err == nil || !strings.Contains(err.Error(), "-fib without a number") || !strings.Contains(err.Error(), "want confirm or forbid") {
		t.Fatalf("Load: %v", err)
	}
}
