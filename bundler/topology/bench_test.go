package topology

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// generated builds a fleet of n hosts (n even), each with three jails, a
// bridge, four epairs and spiped tunnels to its peer (hosts pair up).
func generated(n int) fstest.MapFS {
	var b strings.Builder
	b.WriteString(`domain: fleet.lan
roles:
  node:
    gateway: 10.255.0.1
    gateway_enable: true
    nics: {xnic: {driver: igb0}, inic: {driver: igb1}}
    bridges:
      - {name: xbridge, members: [web_a, app_a, db_a]}
      - {name: ibridge, members: [inic, idb_a]}
    epairs: [[web_a, web_b], [app_a, app_b], [db_a, db_b], [idb_a, idb_b]]
    addrs:
      xbridge: 10.0.2.1/24
      web_b: 10.0.2.20/24
      app_b: 10.0.2.30/24
      db_b: 10.0.2.40/24
    jail_defaults: {devfs_ruleset: 4}
    jails:
      - name: db_j
        sysvshm: new
        interfaces: [db_b, idb_b]
        gateway: xbridge
        services: [postgresql]
        pipes:
          - {name: PGS, mode: decrypt, source: "idb_b:5434", target: "idb_b:5432"}
          - {name: PGC, mode: encrypt, source: "idb_b:5435", target: "peer/idb_b:5434", probe: pg-ssl}
      - {name: app_j, interfaces: [app_b], gateway: xbridge, services: [node]}
      - {name: web_j, interfaces: [web_b], gateway: xbridge, services: [nginx]}
    pf:
      template: pf.tmpl
      tables: {peer: {entries: [peer/idb_b]}, self: {entries: [idb_b]}}
    files:
      - {target: /jails/web_j/usr/local/etc/nginx/nginx.conf, template: nginx.tmpl, unit: "jail-service:web_j:nginx"}
hosts:
`)
	for i := 0; i < n; i++ {
		peer := i ^ 1
		fmt.Fprintf(&b, "  h%04d:\n    role: node\n    peer: h%04d\n    wave: %dm\n    addrs:\n      xnic: 10.255.%d.%d/16\n      inic: 10.%d.%d.10/16\n      idb_b: 10.%d.%d.40/16\n",
			i, peer, i%3*5, i/250, i%250+2, 100+i/250, i%250, 100+i/250, i%250)
	}
	return fstest.MapFS{
		TopologyFile: {Data: []byte(b.String())},
		"pf.tmpl": {Data: []byte(`web_j = "{{ (.Jail "web_j").Addr }}"
xbridge_net = "{{ .Net "xbridge" }}"
table <peer> file "{{ .Table "peer" }}"
table <self> file "{{ .Table "self" }}"
nat on xnic from $xbridge_net -> (xnic:0)
rdr on xnic proto tcp from any to port { 80 443 } -> $web_j
block all
pass in quick on xnic proto tcp to port { 80 443 } keep state (max-src-conn-rate 100/10, overload <ratelimit> flush global)
pass in quick on inic proto tcp from <peer> to <self> port { {{ ports .TunnelPorts }} }
`)},
		"nginx.tmpl": {Data: []byte("server { listen {{ .Addr \"web_b\" }}:80; location / { proxy_pass http://{{ (.Jail \"app_j\").Addr }}:3000; } }\n")},
	}
}

func TestGeneratedFleet(t *testing.T) {
	r, err := LoadFS(generated(20))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Hosts()) != 20 {
		t.Fatalf("%d hosts", len(r.Hosts()))
	}
	hr, err := r.Render("h0003")
	if err != nil {
		t.Fatal(err)
	}
	if len(hr.Files) != 12 || hr.Wave.Minutes() != 0 {
		t.Fatalf("h0003: %d files, wave %v", len(hr.Files), hr.Wave)
	}
}

// BenchmarkRenderFleet loads (decode, validate, render) a generated
// 1,000-host topology with three jails per host and reads every host's
// render. Reported as hosts/s.
func BenchmarkRenderFleet(b *testing.B) {
	const n = 1000
	fsys := generated(n)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := LoadFS(fsys)
		if err != nil {
			b.Fatal(err)
		}
		for _, h := range r.Hosts() {
			if _, err := r.Render(h); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "hosts/s")
}
