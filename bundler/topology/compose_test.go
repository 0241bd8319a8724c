package topology

import (
	"strings"
	"testing"
	"testing/fstest"
)

// composeTopology: a role with a jail, a host extending that jail (more
// interfaces, a service added and one dropped, a pipe replaced and one
// added, netif fields) and a pf table, and a host taking the role as is.
const composeTopology = `roles:
  app:
    nics: {lan: {}}
    bridges: [{name: br0, members: [lan, web_a]}]
    epairs: [[web_a, web_b]]
    jails:
      - name: web_j
        interfaces: [web_b]
        services: [sshd, nginx]
        rc: {nginx_flags: "-q"}
        pipes:
          - {name: IN, mode: decrypt, source: "web_b:7000", target: "web_b:80", clients: external}
          - {name: LOG, mode: decrypt, source: "web_b:7001", target: "web_b:514", clients: external}
      - name: tmp_j
        vnet: true
    pf:
      template: pf.tmpl
      tables: {admins: {entries: [192.0.2.1]}}
hosts:
  a:
    role: app
    epairs: [[db_a, db_b]]
    addrs: {lan: 10.0.0.1/24, web_b: 10.0.0.10/24, db_a: 10.1.0.1/30, db_b: 10.1.0.2/30}
    jails:
      - name: web_j
        interfaces: [db_b]
        services: [-sshd, node]
        rc: {node_env: prod}
        pipes:
          - {name: IN, mode: decrypt, source: "web_b:7000", target: "web_b:8080", clients: external}
          - {name: DB, mode: decrypt, source: "db_b:7002", target: "db_b:5432", clients: external}
        netif:
          db_a: {fib: 1, routes: [10.2.0.0/16]}
          db_b: {mtu: 1380, routes: ["10.3.0.0/16 10.1.0.1", "2001:db8::/32"]}
    pf:
      tables: {admins: {add: [192.0.2.2]}}
  b:
    role: app
    addrs: {lan: 10.0.0.2/24, web_b: 10.0.0.11/24}
`

func TestRolesCompose(t *testing.T) {
	r, err := LoadFS(fstest.MapFS{
		TopologyFile: {Data: []byte(composeTopology)},
		"pf.tmpl":    {Data: []byte("table <admins> file \"{{ .Table \"admins\" }}\"\npass in from <admins>\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	file := func(host, p string) string {
		t.Helper()
		hr, err := r.Render(host)
		if err != nil {
			t.Fatal(err)
		}
		f := hr.File(p)
		if f == nil {
			t.Fatalf("%s: no %s", host, p)
		}
		return string(f.Content)
	}
	contains := func(what, got string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s lacks %q:\n%s", what, w, got)
			}
		}
	}
	lacks := func(what, got string, bad ...string) {
		t.Helper()
		for _, w := range bad {
			if strings.Contains(got, w) {
				t.Errorf("%s has %q:\n%s", what, w, got)
			}
		}
	}

	// Host a: the role's jail extended in place, not copied.
	jc := file("a", "/etc/jail.conf")
	if strings.Index(jc, "web_j.conf") > strings.Index(jc, "tmp_j.conf") {
		t.Errorf("a: merged jail lost its boot position:\n%s", jc)
	}
	contains("a web_j.conf", file("a", "/etc/jail.conf.d/web_j.conf"),
		"\tvnet.interface = web_b, db_b;\n",
		"\texec.prestart = \"/sbin/ifconfig db_a fib 1\";\n\texec.prestart += \"/sbin/ifconfig db_b mtu 1380\";\n",
		"\texec.poststart = \"/sbin/route -q -n add -inet -net 10.2.0.0/16 -interface db_a -fib 1\";\n",
		"\texec.poststop = \"/sbin/route -q -n delete -inet -net 10.2.0.0/16 -interface db_a -fib 1\";\n")
	rc := file("a", "/jails/web_j/etc/rc.conf")
	contains("a web_j rc.conf", rc,
		"nginx_enable=\"YES\"\nnode_enable=\"YES\"\n", "nginx_flags=\"-q\"\n", "node_env=\"prod\"\n",
		"spiped_pipes=\"IN LOG DB\"\n", "spiped_pipe_IN_target=\"[10.0.0.10]:8080\"\n",
		"static_routes=\"db_b_0\"\n", "route_db_b_0=\"-net 10.3.0.0/16 10.1.0.1\"\n",
		"ipv6_static_routes=\"db_b_1\"\n", "ipv6_route_db_b_1=\"-net 2001:db8::/32 -interface db_b\"\n")
	lacks("a web_j rc.conf", rc, "sshd_enable")
	contains("a admins table", file("a", "/etc/pf/admins.table"), "192.0.2.1\n192.0.2.2\n")

	// Host b: the role as written.
	rcb := file("b", "/jails/web_j/etc/rc.conf")
	contains("b web_j rc.conf", rcb, "sshd_enable=\"YES\"\n", "spiped_pipes=\"IN LOG\"\n", "spiped_pipe_IN_target=\"[10.0.0.11]:80\"\n")
	lacks("b web_j rc.conf", rcb, "node_", "static_routes")
	contains("b admins table", file("b", "/etc/pf/admins.table"), "192.0.2.1\n")
	lacks("b admins table", file("b", "/etc/pf/admins.table"), "192.0.2.2")
	lacks("b web_j.conf", file("b", "/etc/jail.conf.d/web_j.conf"), "exec.prestart", "db_b")

	// vnet: true without interfaces: a vnet jail with only lo0.
	tj := file("b", "/etc/jail.conf.d/tmp_j.conf")
	contains("tmp_j.conf", tj, "\tvnet;\n")
	lacks("tmp_j.conf", tj, "vnet.interface")
}

func TestComposeProblems(t *testing.T) {
	cases := []struct{ old, new, want string }{
		{"db_a: {fib: 1, routes: [10.2.0.0/16]}", "lan: {fib: 1}",
			"topology.yaml:33: host a: jail web_j: netif lan: not an interface of the jail or the host's end of one of its epairs"},
		{"mtu: 1380", "mtu: 20",
			"topology.yaml:34: host a: jail web_j: netif db_b: mtu 20: want 68-65535"},
		{`"10.3.0.0/16 10.1.0.1"`, `"10.3.0.0/16 2001:db8::1"`,
			"topology.yaml:34: host a: jail web_j: netif db_b: route \"10.3.0.0/16 2001:db8::1\": want \"NETWORK\" or \"NETWORK GATEWAY\" of one family"},
		{"      - name: tmp_j\n        vnet: true\n", "      - name: tmp_j\n        vnet: false\n        interfaces: [web_b]\n",
			"topology.yaml:15: hosts a, b: jail tmp_j: vnet: false, but interfaces need a vnet jail\n" +
				"topology.yaml:16: hosts a, b: interface web_b claimed by both jail web_j and jail tmp_j"},
	}
	for _, c := range cases {
		topo := strings.Replace(composeTopology, c.old, c.new, 1)
		if topo == composeTopology {
			t.Fatalf("edit %q: not in the topology", c.old)
		}
		_, err := LoadFS(fstest.MapFS{TopologyFile: {Data: []byte(topo)}, "pf.tmpl": {Data: []byte("pass\n")}})
		if err == nil || err.Error() != c.want {
			t.Errorf("edit %q: got\n%v\nwant\n%s", c.new, err, c.want)
		}
	}
}

// wgMergeTopology: spokes take wg0 from a role (listen port, endpoint, the
// hub as a peer with a keepalive and a route); s1 extends it (its key, an
// MTU, a preshared key and one more route for the same hub peer), s2 only
// adds its key. The hub lists both spokes.
const wgMergeTopology = `roles:
  spoke:
    nics: {lan: {}}
    wireguard:
      - name: wg0
        listen_port: 51820
        endpoint: lan
        peers:
          - {host: hub, keepalive: 25, routes: [10.50.0.0/24]}
hosts:
  hub:
    nics: {lan: {}}
    addrs: {lan: 10.0.0.1/24, wg0: 10.9.0.1/24}
    wireguard:
      - name: wg0
        listen_port: 51820
        endpoint: lan
        public_key: "hUbPuBlIcKeYbAsE64hUbPuBlIcKeYbAsE64hUbPuBl="
        peers: [{host: s1}, {host: s2}]
  s1:
    role: spoke
    addrs: {lan: 10.0.0.2/24, wg0: 10.9.0.2/24}
    wireguard:
      - name: wg0
        public_key: "s1PuBlIcKeYbAsE64s1PuBlIcKeYbAsE64s1PuBlIcK="
        mtu: 1380
        peers:
          - {host: hub, preshared_key: /usr/local/etc/wireguard/hub.psk, routes: [10.60.0.0/24]}
  s2:
    role: spoke
    addrs: {lan: 10.0.0.3/24, wg0: 10.9.0.3/24}
    wireguard:
      - {name: wg0, public_key: "s2PuBlIcKeYbAsE64s2PuBlIcKeYbAsE64s2PuBlIcK="}
`

// TestWireGuardMerge: a host's WireGuard interface named like its role's
// extends it (one interface, one peer per host), as jails do.
func TestWireGuardMerge(t *testing.T) {
	r, err := LoadFS(fstest.MapFS{TopologyFile: {Data: []byte(wgMergeTopology)}})
	if err != nil {
		t.Fatal(err)
	}
	conf := func(host string) string {
		t.Helper()
		hr, err := r.Render(host)
		if err != nil {
			t.Fatal(err)
		}
		f := hr.File("/usr/local/etc/wireguard/wg0.conf")
		if f == nil {
			t.Fatalf("%s: no wg0.conf", host)
		}
		return string(f.Content)
	}
	s1 := conf("s1")
	for _, w := range []string{
		"ListenPort = 51820\n", "MTU = 1380\n",
		"PostUp = wg set %i peer hUbPuBlIcKeYbAsE64hUbPuBlIcKeYbAsE64hUbPuBl= preshared-key /usr/local/etc/wireguard/hub.psk\n",
		"AllowedIPs = 10.9.0.1/32, 10.50.0.0/24, 10.60.0.0/24\nEndpoint = 10.0.0.1:51820\nPersistentKeepalive = 25\n",
	} {
		if !strings.Contains(s1, w) {
			t.Errorf("s1 wg0.conf lacks %q:\n%s", w, s1)
		}
	}
	s2 := conf("s2")
	if !strings.Contains(s2, "AllowedIPs = 10.9.0.1/32, 10.50.0.0/24\nEndpoint = 10.0.0.1:51820\nPersistentKeepalive = 25\n") || strings.Contains(s2, "preshared-key") || strings.Contains(s2, "MTU") {
		t.Errorf("s2 wg0.conf is not the role's with s2's key:\n%s", s2)
	}
	for host, c := range map[string]string{"s1": s1, "s2": s2} {
		if n := strings.Count(c, "[Interface]"); n != 1 {
			t.Errorf("%s: %d [Interface] sections", host, n)
		}
		if n := strings.Count(c, "[Peer]"); n != 1 {
			t.Errorf("%s: %d [Peer] sections, want the hub once:\n%s", host, n, c)
		}
	}
	// The role's interface is not changed by s1's extension.
	if hub := conf("hub"); !strings.Contains(hub, "# s2 wg0\nPublicKey = s2PuBlIcKeYbAsE64s2PuBlIcKeYbAsE64s2PuBlIcK=\nAllowedIPs = 10.9.0.3/32\nEndpoint = 10.0.0.3:51820\n") {
		t.Errorf("hub's peer s2:\n%s", hub)
	}
}

// TestRoleMapsStayTheRoles: a host adding keys to the role's maps (rc,
// sysctl, vars) adds them for itself; a host adding nothing renders the
// role's (merged specs share the role's maps when a host adds nothing).
func TestRoleMapsStayTheRoles(t *testing.T) {
	topo := strings.Replace(composeTopology, "    nics: {lan: {}}\n", "    nics: {lan: {}}\n    rc: {role_knob: \"1\"}\n    sysctl: {kern.role: \"1\"}\n    vars: {v: role}\n", 1)
	topo = strings.Replace(topo, "    epairs: [[db_a, db_b]]\n", "    epairs: [[db_a, db_b]]\n    rc: {host_knob: \"2\"}\n    sysctl: {kern.host: \"2\"}\n    vars: {v: host, w: a}\n", 1)
	r, err := LoadFS(fstest.MapFS{
		TopologyFile: {Data: []byte(topo)},
		"pf.tmpl":    {Data: []byte("# {{ .Var \"v\" }}{{ range $k, $v := .Vars }} {{ $k }}={{ $v }}{{ end }}\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string][]string{
		"a": {"role_knob=\"1\"\n", "host_knob=\"2\"\n", "kern.role=1\n", "kern.host=2\n", "# host v=host w=a\n"},
		"b": {"role_knob=\"1\"\n", "kern.role=1\n", "# role v=role\n"},
	} {
		hr, err := r.Render(host)
		if err != nil {
			t.Fatal(err)
		}
		all := string(hr.File("/etc/rc.conf").Content) + string(hr.File("/etc/sysctl.conf").Content) + string(hr.File("/etc/pf.conf").Content)
		for _, w := range want {
			if !strings.Contains(all, w) {
				t.Errorf("%s lacks %q:\n%s", host, w, all)
			}
		}
		if host == "b" && (strings.Contains(all, "host_knob") || strings.Contains(all, "kern.host") || strings.Contains(all, "w=a")) {
			t.Errorf("b renders a's additions:\n%s", all)
		}
	}
}
