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
