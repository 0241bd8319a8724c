package topology

import (
	"strings"
	"testing"
	"testing/fstest"
)

const testStatusKey = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=
-----END PUBLIC KEY-----
`

// gateFS is baseFS with host a gating host b.
func gateFS(hostsYAML string) fstest.MapFS {
	fsys := baseFS()
	top := strings.Replace(baseTopology, `hosts:
  a:
    role: r
    peer: b
  b:
    role: r
    peer: a
    wave: 5m
`, hostsYAML, 1)
	fsys["topology.yaml"] = &fstest.MapFile{Data: []byte(top)}
	fsys["keys/a.pub"] = &fstest.MapFile{Data: []byte(testStatusKey)}
	fsys["keys/bad.pub"] = &fstest.MapFile{Data: []byte("not a key\n")}
	return fsys
}

func TestGateRendered(t *testing.T) {
	r, err := LoadFS(gateFS(`hosts:
  a:
    role: r
    peer: b
    status_key: keys/a.pub
  b:
    role: r
    peer: a
    wave: 5m
    gate: a
    bake: 10m
`))
	if err != nil {
		t.Fatal(err)
	}
	hr, err := r.Render("b")
	if err != nil {
		t.Fatal(err)
	}
	if len(hr.Gate) != 1 || hr.Gate[0] != "a" || hr.Bake.String() != "10m0s" || hr.ReportKeys["a"] != testStatusKey {
		t.Fatalf("gate of b: %v bake %s keys %v", hr.Gate, hr.Bake, hr.ReportKeys)
	}
	ha, _ := r.Render("a")
	if ha.ReportKey != testStatusKey || len(ha.Gate) != 0 {
		t.Fatalf("a: report key %q gate %v", ha.ReportKey, ha.Gate)
	}
}

func TestGateRefused(t *testing.T) {
	cases := map[string]struct{ hosts, want string }{
		"same wave": {`hosts:
  a: {role: r, peer: b, status_key: keys/a.pub, wave: 5m}
  b: {role: r, peer: a, wave: 5m, gate: [a]}
`, "topology.yaml:32: host b: gate a: wave 5m0s is not earlier than this host's wave 5m0s"},
		"later wave": {`hosts:
  a: {role: r, peer: b, gate: [b]}
  b: {role: r, peer: a, wave: 5m, status_key: keys/a.pub}
`, "host a: gate b: wave 5m0s is not earlier than this host's wave 0s"},
		"no key": {`hosts:
  a: {role: r, peer: b}
  b: {role: r, peer: a, wave: 5m, gate: [a]}
`, "host b: gate a: host a has no status_key"},
		"unknown host": {`hosts:
  a: {role: r, peer: b}
  b: {role: r, peer: a, wave: 5m, gate: [c]}
`, "gate c: no such host"},
		"itself": {`hosts:
  a: {role: r, peer: b}
  b: {role: r, peer: a, wave: 5m, gate: [b], status_key: keys/a.pub}
`, "gate b: a host cannot gate itself"},
		"bad key": {`hosts:
  a: {role: r, peer: b, status_key: keys/bad.pub}
  b: {role: r, peer: a, wave: 5m}
`, "host a: status_key: public key"},
		"bake without gate": {`hosts:
  a: {role: r, peer: b}
  b: {role: r, peer: a, wave: 5m, bake: 1m}
`, "bake needs a gate"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadFS(gateFS(c.hosts))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}
