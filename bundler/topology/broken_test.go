package topology

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// baseTopology is a small valid repo; each broken case edits it.
const baseTopology = `domain: test.lan
roles:
  r:
    bridges:
      - name: br0
        members: [e0_a]
    epairs:
      - [e0_a, e0_b]
      - [e1_a, e1_b]
    addrs:
      br0: 10.1.0.1/24
      e0_b: 10.1.0.10/24
      e1_a: 10.2.0.1/30
      e1_b: 10.2.0.2/30
    jails:
      - name: db_j
        interfaces: [e0_b]
        gateway: br0
        pipes:
          - {name: IN, mode: decrypt, source: "e0_b:6000", target: "e0_b:5432"}
          - {name: OUT, mode: encrypt, source: "e0_b:6001", target: "peer/e0_b:6000", probe: pg-ssl}
      - name: app_j
        interfaces: [e1_b]
    pf:
      template: pf.tmpl
      tables:
        peers: {entries: [peer/e0_b]}
    files:
      - {target: /etc/motd, source: motd, unit: none}
hosts:
  a:
    role: r
    peer: b
  b:
    role: r
    peer: a
    wave: 5m
`

const basePF = "table <peers> file \"{{ .Table \"peers\" }}\"\npass in from <peers> to {{ .Addr \"e0_b\" }}\n"

func baseFS() fstest.MapFS {
	return fstest.MapFS{
		"topology.yaml": {Data: []byte(baseTopology)},
		"pf.tmpl":       {Data: []byte(basePF)},
		"motd":          {Data: []byte("hello\n")},
	}
}

// TestAgentRoots: a host whose agent is configured with more roots says so
// (agent_roots); only that host may then write there (loader files need
// /boot/loader.conf.d), and its render carries the policy the bundle
// builder checks.
func TestAgentRoots(t *testing.T) {
	fsys := baseFS()
	topo := strings.Replace(baseTopology, "    peer: b\n", "    peer: b\n    agent_roots: [/boot/loader.conf.d]\n    loader: {if_wg_load: \"YES\"}\n", 1)
	fsys["topology.yaml"] = &fstest.MapFile{Data: []byte(topo)}
	r, err := LoadFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := r.Render("a")
	var found bool
	for _, f := range hr.Files {
		if f.Path == "/boot/loader.conf.d/rigger.conf" {
			found = true
			if f.Unit != "reboot-required" || !strings.Contains(string(f.Content), `if_wg_load="YES"`) {
				t.Errorf("loader file: unit %s, content %q", f.Unit, f.Content)
			}
		}
	}
	if !found {
		t.Error("no loader file rendered")
	}
	for _, f := range hr.Files {
		if err := hr.Paths.Check(f.Path); err != nil {
			t.Errorf("a: rendered file outside its own policy: %v", err)
		}
	}
	if err := hr.Paths.Check("/boot/loader.conf.d/x.conf"); err != nil {
		t.Errorf("a's policy: %v", err)
	}
	hb, _ := r.Render("b")
	if err := hb.Paths.Check("/boot/loader.conf.d/x.conf"); err == nil {
		t.Error("b's agent accepts /boot/loader.conf.d without agent_roots")
	}
}

func TestBaseTopologyLoads(t *testing.T) {
	r, err := LoadFS(baseFS())
	if err != nil {
		t.Fatal(err)
	}
	hr, err := r.Render("a")
	if err != nil {
		t.Fatal(err)
	}
	if len(hr.Files) == 0 || hr.Wave != 0 {
		t.Fatalf("render a: %d files, wave %v", len(hr.Files), hr.Wave)
	}
}

// TestBrokenRepos: each broken repo fails Load with exactly these problems.
func TestBrokenRepos(t *testing.T) {
	type edit struct{ old, new string }
	cases := []struct {
		name  string
		edits []edit
		files map[string]string // replaced or added repo files
		want  string
	}{
		{name: "unknown key", edits: []edit{{"    peer: b\n", "    peer: b\n    colour: red\n"}},
			want: "topology.yaml:34: unknown key colour in a host or role"},
		{name: "wrong type", edits: []edit{{"wave: 5m", "wave: [5m]"}},
			want: "topology.yaml:37: wave: cannot unmarshal !!seq into string"},
		{name: "duplicate host", edits: []edit{{"  b:\n    role: r\n", "  a:\n    role: r\n"}},
			want: `topology.yaml:34: mapping key "a" already defined at line 31`},
		{name: "duplicate jail", edits: []edit{{"- name: app_j", "- name: db_j"}},
			want: "topology.yaml:22: hosts a, b: jail db_j defined twice (also line 16)"},
		{name: "interface in two jails", edits: []edit{{"interfaces: [e1_b]", "interfaces: [e1_b, e0_b]"}},
			want: "topology.yaml:23: hosts a, b: interface e0_b claimed by both jail db_j and jail app_j"},
		{name: "interface in bridge and jail", edits: []edit{{"members: [e0_a]", "members: [e0_a, e0_b]"}},
			want: "topology.yaml:17: hosts a, b: interface e0_b claimed by both bridge br0 and jail db_j"},
		{name: "epair end never used", edits: []edit{{"      e1_a: 10.2.0.1/30\n", ""}},
			want: "topology.yaml:9: hosts a, b: epair end e1_a is never used (no bridge, jail or address)"},
		{name: "vnet interface never created", edits: []edit{{"interfaces: [e1_b]", "interfaces: [e1_b, e9_b]"}},
			want: "topology.yaml:23: hosts a, b: jail app_j: vnet interface e9_b is never created by the host"},
		{name: "duplicate address", edits: []edit{{"e1_b: 10.2.0.2/30", "e1_b: 10.1.0.1/30"}},
			want: "topology.yaml:14: hosts a, b: addrs: e1_b: address 10.1.0.1 already used by br0"},
		{name: "pipe without listener", edits: []edit{{`"peer/e0_b:6000"`, `"peer/e0_b:6009"`}},
			want: "topology.yaml:21: host a: jail db_j: pipe OUT: no decrypt pipe listens on 10.1.0.10:6009 on host b\n" +
				"topology.yaml:21: host b: jail db_j: pipe OUT: no decrypt pipe listens on 10.1.0.10:6009 on host a"},
		{name: "unknown peer host", edits: []edit{{"    peer: b\n", "    peer: c\n"}},
			want: "topology.yaml:21: host a: jail db_j: pipe OUT: target: endpoint \"peer/e0_b\": unknown host c\n" +
				"topology.yaml:27: host a: pf table peers: entry \"peer/e0_b\": unknown host c\n" +
				"topology.yaml:33: host a: unknown peer host \"c\""},
		{name: "unknown jail in unit", edits: []edit{{"unit: none}", "unit: \"jail:web_j\"}"}},
			want: "topology.yaml:29: hosts a, b: file /etc/motd: unit \"jail:web_j\": unknown jail web_j"},
		{name: "unknown bridge member", edits: []edit{{"members: [e0_a]", "members: [e0_a, nope]"}},
			want: "topology.yaml:6: hosts a, b: bridge br0: unknown interface nope"},
		{name: "template parse error", files: map[string]string{"pf.tmpl": "pass\n{{ .Addr }\n"},
			want: `pf.tmpl:2: unexpected "}" in operand`},
		{name: "template exec error", files: map[string]string{"pf.tmpl": "pass\npass in to {{ .Addr \"nope\" }}\n"},
			want: "pf.tmpl:2: host a: executing \"pf.tmpl\" at <.Addr>: error calling Addr: \"nope\": host a has no interface nope\n" +
				"pf.tmpl:2: host b: executing \"pf.tmpl\" at <.Addr>: error calling Addr: \"nope\": host b has no interface nope"},
		{name: "target outside roots", edits: []edit{{"target: /etc/motd", "target: /usr/bin/motd"}},
			want: "topology.yaml:29: hosts a, b: target path \"/usr/bin/motd\": outside the allowed roots /etc, /usr/local/etc, /jails/*/etc, /jails/*/usr/local/etc"},
		{name: "bad unit", edits: []edit{{"unit: none}", "unit: restart}"}},
			want: "topology.yaml:29: hosts a, b: file /etc/motd: unit \"restart\": unknown kind \"restart\""},
		{name: "bad pipe mode", edits: []edit{{"mode: decrypt", "mode: both"}},
			want: "topology.yaml:20: hosts a, b: jail db_j: pipe IN: mode \"both\": want encrypt or decrypt\n" +
				"topology.yaml:21: host a: jail db_j: pipe OUT: no decrypt pipe listens on 10.1.0.10:6000 on host b\n" +
				"topology.yaml:21: host b: jail db_j: pipe OUT: no decrypt pipe listens on 10.1.0.10:6000 on host a"},
		{name: "encrypt pipe without probe", edits: []edit{{", probe: pg-ssl}", "}"}},
			want: "topology.yaml:21: hosts a, b: jail db_j: pipe OUT: encrypt pipe needs a probe (pg-ssl, send-expect, banner or none)"},
		{name: "bad address", edits: []edit{{"e0_b: 10.1.0.10/24", "e0_b: 10.1.0.300/24"}},
			want: "topology.yaml:12: hosts a, b: addrs: e0_b: address \"10.1.0.300/24\": want ADDR/PREFIXLEN"},
		{name: "unknown role", edits: []edit{{"  b:\n    role: r\n", "  b:\n    role: x\n"}},
			want: "topology.yaml:21: host a: jail db_j: pipe OUT: target: endpoint \"peer/e0_b\": host b has no interface e0_b\n" +
				"topology.yaml:27: host a: pf table peers: entry \"peer/e0_b\": host b has no interface e0_b\n" +
				"topology.yaml:35: host b: unknown role \"x\""},
		{name: "missing source file", edits: []edit{{"source: motd", "source: motd.txt"}},
			want: "topology.yaml:29: hosts a, b: file /etc/motd: source \"motd.txt\": open motd.txt: file does not exist"},
		{name: "target rendered twice", edits: []edit{{"target: /etc/motd", "target: /etc/pf.conf"}},
			want: "topology.yaml:29: hosts a, b: target /etc/pf.conf rendered twice"},
		{name: "pipe source not the jail's", edits: []edit{{`source: "e0_b:6000"`, `source: "e1_b:6000"`}},
			want: "topology.yaml:20: hosts a, b: jail db_j: pipe IN: source: 10.2.0.2 is not an address of jail db_j\n" +
				"topology.yaml:21: host a: jail db_j: pipe OUT: no decrypt pipe listens on 10.1.0.10:6000 on host b\n" +
				"topology.yaml:21: host b: jail db_j: pipe OUT: no decrypt pipe listens on 10.1.0.10:6000 on host a"},
		{name: "unknown gateway interface", edits: []edit{{"gateway: br0", "gateway: br9"}},
			want: "topology.yaml:18: host a: jail db_j: gateway: \"br9\": host a has no interface br9\n" +
				"topology.yaml:18: host b: jail db_j: gateway: \"br9\": host b has no interface br9"},
		{name: "policy roots", edits: []edit{{"domain: test.lan\n", "domain: test.lan\npolicy: {roots: [/etc, /boot]}\n"}},
			want: "topology.yaml:2: policy: policy.roots is gone: the roots a host accepts are its agent's; declare the extra roots a host's agent is configured with as agent_roots on the host or its role"},
		{name: "bad agent root", edits: []edit{{"    peer: b\n", "    peer: b\n    agent_roots: [boot, /, \"/jails/*/usr/local/etc/rc.d\"]\n"}},
			want: "topology.yaml:34: host a: agent_roots: root \"/\": want a clean absolute directory below /, no wildcards\n" +
				"topology.yaml:34: host a: agent_roots: root \"/jails/*/usr/local/etc/rc.d\": want a clean absolute directory below /, no wildcards\n" +
				"topology.yaml:34: host a: agent_roots: root \"boot\": want a clean absolute directory below /, no wildcards"},
		{name: "loader on a host whose agent lacks the root", edits: []edit{{"    peer: a\n", "    peer: a\n    loader: {zfs_load: \"YES\"}\n"}, {"    peer: b\n", "    peer: b\n    agent_roots: [/boot/loader.conf.d]\n"}},
			want: "topology.yaml:38: host b: target path \"/boot/loader.conf.d/rigger.conf\": outside the allowed roots /etc, /usr/local/etc, /jails/*/etc, /jails/*/usr/local/etc"},
		{name: "loader outside roots", edits: []edit{{"    peer: b\n", "    peer: b\n    loader: {if_wg_load: \"YES\"}\n"}},
			want: "topology.yaml:34: host a: target path \"/boot/loader.conf.d/rigger.conf\": outside the allowed roots /etc, /usr/local/etc, /jails/*/etc, /jails/*/usr/local/etc"},
		{name: "http check without url", edits: []edit{{"    peer: b\n", "    peer: b\n    checks: [{name: web, kind: http, url: /x}]\n"}},
			want: "topology.yaml:34: host a: check web: http check needs a url (or addr and a path)"},
		{name: "unknown table in unit", edits: []edit{{"unit: none}", "unit: \"pf-table:nope\"}"}},
			want: "topology.yaml:29: hosts a, b: file /etc/motd: unit \"pf-table:nope\": unknown pf table nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := baseFS()
			topo := baseTopology
			for _, e := range c.edits {
				if !strings.Contains(topo, e.old) {
					t.Fatalf("edit %q: not in the base topology", e.old)
				}
				topo = strings.Replace(topo, e.old, e.new, 1)
			}
			fsys["topology.yaml"] = &fstest.MapFile{Data: []byte(topo)}
			for name, data := range c.files {
				fsys[name] = &fstest.MapFile{Data: []byte(data)}
			}
			_, err := LoadFS(fsys)
			if err == nil {
				t.Fatal("Load succeeded; want problems")
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error %T is not Problems: %v", err, err)
			}
			if got := err.Error(); got != c.want {
				t.Errorf("problems:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}

// TestRoleEmptyPipeEveryHost: an empty pipe in a role's jail is reported
// for every host using the role, the same way load after load (hosts
// merge on every core; the role's jail, which they share, is never
// filtered in place, which named one host picked by map order).
func TestRoleEmptyPipeEveryHost(t *testing.T) {
	fsys := baseFS()
	top := strings.Replace(baseTopology, "probe: pg-ssl}\n", "probe: pg-ssl}\n          - null\n", 1)
	fsys["topology.yaml"] = &fstest.MapFile{Data: []byte(top)}
	const want = "topology.yaml:19: hosts a, b: jail db_j: empty pipe"
	for range 20 {
		_, err := LoadFS(fsys)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want a problem %q", err, want)
		}
	}
}

// TestAgentRootsPerHost: the targets accepted for one host's roots are
// remembered for the hosts with the same roots only: a host with other
// roots, or none, is still refused the same target (z renders after the
// hosts accepting it, as hosts are taken in name order).
func TestAgentRootsPerHost(t *testing.T) {
	fsys := baseFS()
	www := "    files: [{target: /usr/local/www/index.html, source: motd}]\n"
	topo := strings.Replace(baseTopology, "    peer: b\n", "    peer: b\n    agent_roots: [/usr/local/www]\n"+www, 1)
	topo = strings.Replace(topo, "    peer: a\n", "    peer: a\n    agent_roots: [/usr/local/www]\n"+www, 1)
	for _, h := range []string{"c", "d", "z"} {
		topo += "  " + h + ":\n    role: r\n    peer: a\n" + www
	}
	topo += "    agent_roots: [/usr/local/srv]\n" // z
	fsys["topology.yaml"] = &fstest.MapFile{Data: []byte(topo)}
	for range 5 { // hosts render concurrently
		_, err := LoadFS(fsys)
		var ps Problems
		if !errors.As(err, &ps) {
			t.Fatalf("want problems, got %v", err)
		}
		var refused []string
		for _, p := range ps {
			if strings.Contains(p.Msg, `"/usr/local/www/index.html": outside the allowed roots`) {
				refused = append(refused, p.Where)
			}
		}
		slices.Sort(refused)
		if want := []string{"host c", "host d", "host z"}; !slices.Equal(refused, want) {
			t.Fatalf("refused on %v, want %v:\n%v", refused, want, err)
		}
	}
}
