package topology

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

// fleetTopology is a valid three-host repo: two edge hosts behind one
// service name, each with an app jail whose spiped pipe reaches the
// database host, and a WireGuard star around db. Each broken case in
// TestBrokenFleets edits it.
const fleetTopology = `domain: test.lan
roles:
  edge:
    serves: [www.test.lan]
    gateway: 10.0.0.1
    nics: {lan: {}}
    epairs: [[app_a, app_b]]
    bridges: [{name: br0, members: [lan, app_a]}]
hosts:
  e1:
    role: edge
    wave: 0s
    addrs: {br0: 10.0.0.11/24, app_b: 10.0.0.21/24, wg0: 10.9.0.11/32}
    jails:
      - name: app_j
        interfaces: [app_b]
        gateway: 10.0.0.1
        pipes:
          - {name: PG, mode: encrypt, source: "app_b:5432", target: "db/db_b:6001", probe: pg-ssl}
    wireguard:
      - name: wg0
        public_key: "ERERERERERERERERERERERERERERERERERERERERERE="
        peers: [{host: db}]
  e2:
    role: edge
    wave: 10m
    addrs: {br0: 10.0.0.12/24, app_b: 10.0.0.22/24, wg0: 10.9.0.12/32}
    jails:
      - name: app_j
        interfaces: [app_b]
        gateway: 10.0.0.1
        pipes:
          - {name: PG, mode: encrypt, source: "app_b:5432", target: "db/db_b:6002", probe: pg-ssl}
    wireguard:
      - name: wg0
        public_key: "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI="
        peers: [{host: db}]
  db:
    wave: 5m
    gateway: 10.0.0.1
    nics: {lan: {}}
    epairs: [[db_a, db_b]]
    bridges: [{name: br0, members: [lan, db_a]}]
    addrs: {br0: 10.0.0.13/24, db_b: 10.0.0.23/24, wg0: 10.9.0.1/24}
    jails:
      - name: db_j
        interfaces: [db_b]
        pipes:
          - {name: E1, mode: decrypt, source: "db_b:6001", target: "db_b:5432"}
          - {name: E2, mode: decrypt, source: "db_b:6002", target: "db_b:5432"}
    wireguard:
      - name: wg0
        listen_port: 51820
        endpoint: br0
        public_key: "MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM="
        peers: [{host: e1}, {host: e2}]
`

func fleetFS(topo string) fstest.MapFS {
	return fstest.MapFS{TopologyFile: {Data: []byte(topo)}}
}

func TestFleetTopologyLoads(t *testing.T) {
	r, err := LoadFS(fleetFS(fleetTopology))
	if err != nil {
		t.Fatal(err)
	}
	if w := r.Warnings(); len(w) != 0 {
		t.Fatalf("warnings: %v", w)
	}
	hr, err := r.Render("e1")
	if err != nil {
		t.Fatal(err)
	}
	wg := hr.File("/usr/local/etc/wireguard/wg0.conf")
	if wg == nil || !strings.Contains(string(wg.Content), "Endpoint = 10.0.0.13:51820") {
		t.Fatalf("e1 wg0.conf does not dial db: %+v", wg)
	}
}

// TestBrokenFleets: each multi-host repo is broken across hosts (every host
// is fine on its own) and fails Load with exactly these problems; the
// warning-only cases load and report exactly these warnings.
func TestBrokenFleets(t *testing.T) {
	type edit struct{ old, new string }
	cases := []struct {
		name  string
		edits []edit
		want  string
	}{
		{name: "host address on two hosts",
			edits: []edit{{"br0: 10.0.0.12/24", "br0: 10.0.0.11/24"}},
			want:  "topology.yaml:27: hosts e1, e2: address 10.0.0.11 (network 10.0.0.0/24) is held by e1/br0 and e2/br0: an address must be unique within its network across hosts"},
		{name: "jail address on two hosts",
			edits: []edit{{"app_b: 10.0.0.22/24", "app_b: 10.0.0.13/24"}},
			want:  "topology.yaml:27: hosts db, e2: address 10.0.0.13 (network 10.0.0.0/24) is held by db/br0 and e2/app_b: an address must be unique within its network across hosts"},
		{name: "tunnel address on two hosts",
			edits: []edit{{"wg0: 10.9.0.12/32", "wg0: 10.9.0.11/32"}},
			want: "topology.yaml:27: hosts e1, e2: address 10.9.0.11 (network 10.9.0.11/32) is held by e1/wg0 and e2/wg0: an address must be unique within its network across hosts\n" +
				"topology.yaml:56: host db: wireguard wg0: peer e2: allowed IPs 10.9.0.11/32 overlap 10.9.0.11/32 of peer e1: WireGuard routes an address to one peer only"},
		{name: "listener without client",
			edits: []edit{{"          - {name: E2,", "          - {name: E3, mode: decrypt, source: \"db_b:6003\", target: \"db_b:5432\"}\n          - {name: E2,"}},
			want:  "topology.yaml:50: host db: jail db_j: pipe E3: no client: no encrypt pipe in the topology targets 10.0.0.23:6003 (clients: external if its clients are outside the topology)"},
		{name: "two hosts share one listener",
			edits: []edit{{`"db/db_b:6002"`, `"db/db_b:6001"`}},
			want: "topology.yaml:49: host db: jail db_j: pipe E1: clients on 2 hosts share this listener: e1 (jail app_j pipe PG), e2 (jail app_j pipe PG) (give each its own decrypt pipe, or clients: many)\n" +
				"topology.yaml:50: host db: jail db_j: pipe E2: no client: no encrypt pipe in the topology targets 10.0.0.23:6002 (clients: external if its clients are outside the topology)"},
		{name: "bad clients value",
			edits: []edit{{`target: "db_b:5432"}`, `target: "db_b:5432", clients: all}`}},
			want:  "topology.yaml:49: host db: jail db_j: pipe E1: clients \"all\": want one, many or external"},
		{name: "peering on one side only",
			edits: []edit{{"peers: [{host: e1}, {host: e2}]", "peers: [{host: e1}]"}},
			want:  "topology.yaml:37: host e2: wireguard wg0: peer db: peering declared on one side only: db/wg0 has no peer e2 (interface wg0)"},
		{name: "no endpoint on either side",
			edits: []edit{{"        endpoint: br0\n", ""}},
			want: "topology.yaml:55: host db: wireguard wg0: peer e1: neither db/wg0 nor e1/wg0 has an endpoint and listen_port: the pair can never handshake\n" +
				"topology.yaml:55: host db: wireguard wg0: peer e2: neither db/wg0 nor e2/wg0 has an endpoint and listen_port: the pair can never handshake"},
		{name: "peer key does not match",
			edits: []edit{{"peers: [{host: db}]", "peers: [{host: db, public_key: \"REREREREREREREREREREREREREREREREREREREREREQ=\"}]"}},
			want:  "topology.yaml:23: host e1: wireguard wg0: peer db: public_key REREREREREREREREREREREREREREREREREREREREREQ= does not match db/wg0's public_key MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM="},
		{name: "one key on two interfaces",
			edits: []edit{{"IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=", "ERERERERERERERERERERERERERERERERERERERERERE="}},
			want:  "topology.yaml:36: host e2: wireguard wg0: public_key is also e1/wg0's: each interface needs its own key pair"},
		{name: "not a key",
			edits: []edit{{"IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=", "sMaLLpUbLiCkEy"}},
			want:  "topology.yaml:36: host e2: wireguard wg0: public_key \"sMaLLpUbLiCkEy\": want a base64 WireGuard key (32 bytes)"},
		{name: "allowed IPs overlap",
			edits: []edit{{"peers: [{host: e1}, {host: e2}]", "peers: [{host: e1, routes: [10.9.0.0/24]}, {host: e2}]"}},
			want:  "topology.yaml:56: host db: wireguard wg0: peer e2: allowed IPs 10.9.0.12/32 overlap 10.9.0.0/24 of peer e1: WireGuard routes an address to one peer only"},
		{name: "same wave behind one name",
			edits: []edit{{"wave: 10m", "wave: 0s"}},
			want:  "topology.yaml:4: hosts e1, e2: all serve www.test.lan in the same wave (0s): a rollout would take them down at once (give each its own wave)"},
		{name: "no waves behind one name",
			edits: []edit{{"    wave: 0s\n", ""}, {"    wave: 10m\n", ""}},
			want:  "topology.yaml:4: hosts e1, e2: all serve www.test.lan in the same wave (0s): a rollout would take them down at once (give each its own wave)"},
		{name: "gateway nobody holds (warning)",
			edits: []edit{{"    wave: 5m\n    gateway: 10.0.0.1\n", "    wave: 5m\n    gateway: 10.0.1.1\n"}},
			want:  "topology.yaml:40: host db: gateway: warning: gateway 10.0.1.1 is not an address or in a network of any host in the topology"},
		{name: "jail gateway nobody holds (warning)",
			edits: []edit{{"        gateway: 10.0.0.1\n        pipes:\n          - {name: PG, mode: encrypt, source: \"app_b:5432\", target: \"db/db_b:6002\"", "        gateway: 10.7.0.254\n        pipes:\n          - {name: PG, mode: encrypt, source: \"app_b:5432\", target: \"db/db_b:6002\""}},
			want:  "topology.yaml:31: host e2: jail app_j: gateway: warning: gateway 10.7.0.254 is not an address or in a network of any host in the topology"},
		{name: "route gateway nobody holds (warning)",
			edits: []edit{{"    wave: 5m\n", "    wave: 5m\n    routes: {vpn: \"-net 172.16.0.0/12 192.0.2.7\", lan2: \"-net 10.1.0.0/16 10.0.0.1\"}\n"}},
			want:  "topology.yaml:40: host db: routes: vpn: warning: gateway 192.0.2.7 is not an address or in a network of any host in the topology"},
		{name: "role gateway nobody holds (warning, both hosts)",
			edits: []edit{{"    gateway: 10.0.0.1\n    nics: {lan: {}}\n    epairs: [[app_a", "    gateway: 172.16.0.1\n    nics: {lan: {}}\n    epairs: [[app_a"}},
			want:  "topology.yaml:5: hosts e1, e2: gateway: warning: gateway 172.16.0.1 is not an address or in a network of any host in the topology"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			topo := fleetTopology
			for _, e := range c.edits {
				if !strings.Contains(topo, e.old) {
					t.Fatalf("edit %q: not in the fleet topology", e.old)
				}
				topo = strings.Replace(topo, e.old, e.new, 1)
			}
			r, err := LoadFS(fleetFS(topo))
			var got string
			if err != nil {
				var ps Problems
				if !errors.As(err, &ps) {
					t.Fatalf("error %T is not Problems: %v", err, err)
				}
				got = err.Error()
			} else {
				got = r.Warnings().Error()
			}
			if got != c.want {
				t.Errorf("problems:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}

// TestFleetEscapes: what the topology says on purpose is not a problem:
// a listener shared by clients: many, one served by clients: external.
func TestFleetEscapes(t *testing.T) {
	topo := strings.Replace(fleetTopology, `"db/db_b:6002"`, `"db/db_b:6001"`, 1)
	topo = strings.Replace(topo, `{name: E1, mode: decrypt, source: "db_b:6001", target: "db_b:5432"}`, `{name: E1, mode: decrypt, source: "db_b:6001", target: "db_b:5432", clients: many}`, 1)
	topo = strings.Replace(topo, `{name: E2, mode: decrypt, source: "db_b:6002", target: "db_b:5432"}`, `{name: E2, mode: decrypt, source: "db_b:6002", target: "db_b:5432", clients: external}`, 1)
	if _, err := LoadFS(fleetFS(topo)); err != nil {
		t.Fatal(err)
	}
}
