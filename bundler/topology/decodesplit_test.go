package topology

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// positionDump lists every position pos holds for f's items and map keys,
// by their path in f, so two decodes' positions can be compared.
func positionDump(f *File, pos *positions) string {
	var b strings.Builder
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				return
			}
			if n := pos.nodes[v.Interface()]; n != nil {
				fmt.Fprintf(&b, "%s @%d\n", path, n.Line)
			}
			walk(path, v.Elem())
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(path+"."+v.Type().Field(i).Name, v.Field(i))
				}
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
			}
		case reflect.Map:
			if v.IsNil() {
				return
			}
			var keys []string
			for _, k := range v.MapKeys() {
				keys = append(keys, k.String())
			}
			slices.Sort(keys)
			for _, k := range keys {
				fmt.Fprintf(&b, "%s[%q] key @%d\n", path, k, pos.keys[mapKey{v.Pointer(), k}])
				walk(fmt.Sprintf("%s[%q]", path, k), v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())))
			}
		}
	}
	walk("", reflect.ValueOf(f))
	return b.String()
}

// splitSameAsWhole decodes data in pieces of per hosts and whole: when
// the split decode takes the file, the whole decode must accept it too
// and give the same values and positions. It reports whether the split
// took it.
func splitSameAsWhole(t testing.TB, data []byte, per int) bool {
	t.Helper()
	sf, spos, ok := decodeSplit(TopologyFile, data, per)
	if !ok {
		return false
	}
	wf, wpos, err := decodeWhole(TopologyFile, data)
	if err != nil {
		t.Fatalf("split decode (per %d) accepts what the whole decode rejects: %v\n%s", per, err, data)
	}
	if !reflect.DeepEqual(sf, wf) {
		t.Fatalf("split decode (per %d) differs from the whole decode\n%s", per, data)
	}
	if s, w := positionDump(sf, spos), positionDump(wf, wpos); s != w {
		t.Fatalf("split decode (per %d) positions differ from the whole decode's:\n%s\n--- whole:\n%s", per, s, w)
	}
	return true
}

// TestDecodeSplitSameAsWhole: the hosts decoded in pieces (on every core)
// are the whole file's, positions included, for the generated fleet and
// for layouts a cut could misread; files the split cannot take are left
// to the whole decode.
func TestDecodeSplitSameAsWhole(t *testing.T) {
	fleet := string(generated(300)[TopologyFile].Data)
	roles, hosts, _ := strings.Cut(fleet, "hosts:\n")
	host := func(i int) string { return fmt.Sprintf("  h%04d:\n", i) }
	cases := []struct {
		name  string
		data  string
		split bool // the split decode takes it
	}{
		{"generated", fleet, true},
		{"hosts before roles", "hosts:\n" + hosts + roles, true},
		{"comments and blank lines", strings.ReplaceAll(fleet, host(70), "# a comment\n\n  # another\n"+host(70)+"    # inside\n"), true},
		{"indented by four", roles + "hosts:\n" + indented(hosts), true},
		{"block scalar", strings.Replace(fleet, host(70), host(70)+"    vars:\n      motd: |\n        h9999: not a host\n        h9998:\n", 1), true},
		{"alias", strings.Replace(strings.Replace(fleet, "    gateway: 10.255.0.1", "    gateway: &gw 10.255.0.1", 1), host(70), host(70)+"    hostname: *gw\n", 1), false},
		{"local alias", strings.Replace(fleet, host(70), host(70)+"    hostname: &n x\n    domain: *n\n", 1), false},
		{"duplicate host across pieces", fleet + host(1) + "    role: node\n", false},
		{"unknown key", strings.Replace(fleet, host(200), host(200)+"    nope: 1\n", 1), false},
		{"flow across a cut", strings.Replace(fleet, host(64), "    rc: {a: b,\n"+host(64)+"    c: d}\n", 1), false},
		{"quote across a cut", strings.Replace(fleet, host(64), "    hostname: \"x\n"+host(64)+"    y\"\n", 1), false},
		{"jail keys, inline ones too", strings.Replace(fleet, host(100), host(100)+"    jails: [{name: web_j, devfs_ruleset: 5, params: {allow.raw_sockets: \"true\"}, netif: {web_b: {mtu: 1400}}}]\n", 1), true},
		{"quoted key", strings.Replace(fleet, host(100), host(100)+"    \"hostname\": x\n", 1), true},
		{"unknown key in a jail", strings.Replace(fleet, host(100), host(100)+"    jails: [{name: x_j, nope: 1}]\n", 1), false},
		{"unknown key in a netif", strings.Replace(fleet, host(100), host(100)+"    jails: [{name: web_j, netif: {web_b: {mtu: 1400, nope: 1}}}]\n", 1), false},
		{"unknown key in a nic", strings.Replace(fleet, host(100), host(100)+"    nics: {xnic: {driver: igb0, nope: 1}}\n", 1), false},
		{"unknown key in a role", strings.Replace(fleet, "    gateway_enable: true\n", "    gateway_enable: true\n    nope: 1\n", 1), false},
		{"key twice in a host", strings.Replace(fleet, host(100), host(100)+"    hostname: a\n    hostname: b\n", 1), false},
		{"merge key", strings.Replace(fleet, host(100), host(100)+"    <<: {hostname: x}\n", 1), false},
		{"type error", strings.Replace(fleet, host(100), host(100)+"    hostname: [x]\n", 1), false},
		{"flow hosts", strings.Replace(fleet, "hosts:\n", "hosts: {}\nhosts2:\n", 1), false},
		{"second document", fleet + "---\ndomain: x\n", false},
		{"tabs", strings.Replace(fleet, host(100), host(100)+"\tx: 1\n", 1), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, per := range []int{1, 3, 64} {
				if got := splitSameAsWhole(t, []byte(c.data), per); got != c.split {
					t.Fatalf("per %d: split decode took the file: %v, want %v", per, got, c.split)
				}
			}
		})
	}
	for _, ex := range examples {
		data, err := os.ReadFile(filepath.Join(infraDir, ex, TopologyFile))
		if err != nil {
			t.Fatal(err)
		}
		splitSameAsWhole(t, data, 1)
	}
}

// TestDecodeSplitErrorsAsWhole: a broken fleet decoded by decodeFile
// gives the whole decode's problems (the split leaves errors to it).
func TestDecodeSplitErrorsAsWhole(t *testing.T) {
	fleet := string(generated(300)[TopologyFile].Data)
	data := []byte(strings.Replace(strings.Replace(fleet, "  h0200:\n", "  h0200:\n    nope: 1\n", 1), "  h0010:\n", "  h0010:\n    hostname: [1]\n", 1))
	_, _, err := decodeFile(TopologyFile, data)
	_, _, want := decodeWhole(TopologyFile, data)
	if err == nil || want == nil || err.Error() != want.Error() {
		t.Fatalf("decodeFile: %v\nwant: %v", err, want)
	}
	for _, frag := range []string{"unknown key nope in a host or role", "cannot unmarshal !!seq"} {
		if !strings.Contains(err.Error(), frag) {
			t.Fatalf("%q not in %v", frag, err)
		}
	}
}

// indented is text with every line indented by two more spaces.
func indented(text string) string {
	lines := strings.SplitAfter(text, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "")
}
