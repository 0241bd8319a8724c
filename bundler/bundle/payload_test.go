package bundle

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/policy/hostdesc"
	"github.com/rigger-bsd/rigger/verify"
)

// TestPayloadSameBytesAsJSON: the signed payload is json.Marshal of the
// manifest, byte for byte: real renders, a gated one, and strings and
// modes encoding/json escapes or pads.
func TestPayloadSameBytesAsJSON(t *testing.T) {
	var mans []verify.Manifest
	uirig, err := topology.Load("../../testdata/infra/uirig")
	if err != nil {
		t.Fatal(err)
	}
	fleet := genFleet(t, 4)
	for _, repo := range []*topology.Repo{uirig, fleet} {
		for _, h := range repo.Hosts() {
			r, err := repo.Rendered(h)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Build(r, Meta{Serial: 3, Created: now, Source: verify.Source{Repo: "https://git.example.org/infra.git", Commit: "abc", Dirty: true}})
			if err != nil {
				t.Fatal(err)
			}
			mans = append(mans, b.Manifest)
		}
	}
	_, pub, err := verify.GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	r := render("serverB")
	r.Gate, r.Bake, r.ReportKeys = []string{"serverA"}, 5*time.Minute, map[string]string{"serverA": string(pub)}
	gated, err := Build(r, Meta{Serial: 7, Created: now, GateSerials: map[string]uint64{"serverA": 3}})
	if err != nil {
		t.Fatal(err)
	}
	mans = append(mans, gated.Manifest)
	odd := gated.Manifest
	odd.Source.Repo = `x","files":null,"y":"<&>`
	odd.Files = []verify.File{
		{Path: "/etc/a<b>&c", Mode: 0, Owner: "r\"o\\ot", Group: "wh\teel", SHA256: "caf\u00e9", Size: 0, Unit: "\u2028 \x7f \xff"},
		{Path: "/etc/b", Mode: 0o7777, Owner: "root", Group: "wheel", Size: 1 << 40, Unit: "none"},
		{Path: "/etc/c", Mode: 0o17777, Size: -1},
		{Path: "/etc/d", Mode: 0o7},
		{Path: "/etc/<", Owner: ">", Group: "&", Unit: "\"", SHA256: "\\"},
		{Path: "/etc/\x1f", Owner: "\u00e9", Group: "\x7f", Unit: "~ "},
	}
	mans = append(mans, odd)
	empty := odd
	empty.Files = []verify.File{}
	mans = append(mans, empty)
	none := odd
	none.Files = nil
	mans = append(mans, none)
	for i, m := range mans {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendPayload([]byte("kept"), &m)
		if err != nil {
			t.Fatal(err)
		}
		if string(got[:4]) != "kept" || !bytes.Equal(got[4:], want) {
			t.Errorf("manifest %d (%s): payload\n%s\nwant json.Marshal's\n%s", i, m.Host, got[4:], want)
		}
	}
}

// TestPayloadFields: appendPayload writes these structs by hand; a field
// added, removed, renamed, retagged or retyped in one of them, or a
// marshaler given to a field's type, must be taught to appendPayload
// (and to this list and to genManifest).
func TestPayloadFields(t *testing.T) {
	want := map[reflect.Type][]string{
		reflect.TypeFor[verify.Manifest](): {
			"Schema schema int", "Host host string", "Serial serial uint64", "Source source verify.Source",
			"Created created time.Time json", "Expires expires time.Time json", "NotBefore not_before time.Time json",
			"Archive archive verify.Archive", "Files files []verify.File", "Health health,omitempty []verify.Check",
			"Secrets secrets,omitempty []string", "NetifRestart netif_restart,omitempty []string",
			"ReportKey report_key,omitempty string", "Gate gate,omitempty *verify.Gate",
			"HostDesc host_desc,omitempty *hostdesc.Host",
		},
		reflect.TypeFor[verify.Source]():  {"Repo repo string", "Commit commit string", "Dirty dirty,omitempty bool"},
		reflect.TypeFor[verify.Archive](): {"SHA256 sha256 string", "Size size int64"},
		reflect.TypeFor[verify.File](): {
			"Path path string", "Mode mode verify.Mode text", "Owner owner string", "Group group string",
			"SHA256 sha256 string", "Size size int64", "Unit unit string",
		},
		reflect.TypeFor[verify.Check](): {
			"Kind kind verify.CheckKind", "Name name string", "Jail jail,omitempty string", "Addr addr,omitempty string",
			"Probe probe,omitempty string", "Send send,omitempty string", "Expect expect,omitempty string",
			"URL url,omitempty string", "Status status,omitempty int", "Iface iface,omitempty string",
			"Command command,omitempty []string", "Timeout timeout,omitempty verify.Duration text",
		},
		reflect.TypeFor[verify.Gate]():     {"Hosts hosts []verify.GateHost", "Bake bake,omitempty verify.Duration text"},
		reflect.TypeFor[verify.GateHost](): {"Host host string", "Key key string", "Serial serial uint64"},
		reflect.TypeFor[hostdesc.Host](): {
			"Hostname hostname,omitempty string", "Interfaces interfaces,omitempty []hostdesc.Interface",
			"Routes routes,omitempty []hostdesc.Route", "Forwarding forwarding,omitempty bool",
			"Sysctls sysctls,omitempty map[string]string", "Services services,omitempty []hostdesc.Service",
			"Jails jails,omitempty []hostdesc.Jail", "Loader loader,omitempty map[string]string",
			"Management management,omitempty string",
		},
		reflect.TypeFor[hostdesc.Interface](): {
			"Name name string", "Kind kind hostdesc.Kind", "Clone clone,omitempty string", "Peer peer,omitempty string",
			"Jail jail,omitempty string", "Addrs addrs,omitempty []string", "MTU mtu,omitempty int",
			"FIB fib,omitempty int", "Members members,omitempty []string", "Proto proto,omitempty string",
			"Ports ports,omitempty []string", "Tag tag,omitempty int", "Parent parent,omitempty string",
			"Options options,omitempty []string",
		},
		reflect.TypeFor[hostdesc.Route](): {
			"Name name string", "FIB fib,omitempty int", "Dest dest string", "Gateway gateway,omitempty string",
			"Args args []string",
		},
		reflect.TypeFor[hostdesc.Service](): {"Name name string", "Flags flags,omitempty string"},
		reflect.TypeFor[hostdesc.Jail]():    {"Name name string", "Interfaces interfaces,omitempty []string"},
	}
	// Every struct reachable from the manifest is in the list.
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(ty reflect.Type) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Array || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || ty == reflect.TypeFor[time.Time]() || seen[ty] {
			return
		}
		seen[ty] = true
		var got []string
		for i := range ty.NumField() {
			f := ty.Field(i)
			got = append(got, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", f.Name, f.Tag.Get("json"), f.Type, marshalerOf(f.Type))))
			walk(f.Type)
		}
		if m := marshalerOf(ty); m != "" {
			got = append(got, "own "+m+" marshaler")
		}
		if w, ok := want[ty]; !ok {
			t.Errorf("%s is now in the manifest; appendPayload does not write it: teach it %q", ty, got)
		} else if !slices.Equal(got, w) {
			t.Errorf("%s is now %q; appendPayload writes %q: teach it the change", ty, got, w)
		}
	}
	walk(reflect.TypeFor[verify.Manifest]())
	for ty := range want {
		if !seen[ty] {
			t.Errorf("%s is no longer in the manifest", ty)
		}
	}
}

// marshalerOf says which marshaler encoding/json would call for ty's
// values or elements: "json" (MarshalJSON), "text" (MarshalText) or "".
func marshalerOf(ty reflect.Type) string {
	for ty.Kind() == reflect.Slice || ty.Kind() == reflect.Array || ty.Kind() == reflect.Map {
		if ty.Kind() == reflect.Map && marshalerOf(ty.Key()) != "" {
			return "key " + marshalerOf(ty.Key())
		}
		ty = ty.Elem()
	}
	if ty.Kind() != reflect.Pointer {
		ty = reflect.PointerTo(ty) // methods of either receiver
	}
	switch {
	case ty.Implements(reflect.TypeFor[json.Marshaler]()):
		return "json"
	case ty.Implements(reflect.TypeFor[encoding.TextMarshaler]()):
		return "text"
	}
	return ""
}

// TestPayloadRandomManifests: manifests with random values in every field
// (strings with escapes, non-ASCII and invalid UTF-8, nil and empty
// slices and maps, times in any zone, some that encoding/json refuses)
// give json.Marshal's bytes, or an error where it gives one.
func TestPayloadRandomManifests(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 6))
	data := make([]byte, 2048)
	for range 3000 {
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		checkPayload(t, data)
	}
}

// FuzzPayload: appendPayload is json.Marshal for any manifest genManifest
// makes of the fuzzer's bytes.
func FuzzPayload(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 300))
	f.Add(bytes.Repeat([]byte{0x80, 0x41, 0xc3}, 200))
	f.Fuzz(func(t *testing.T, data []byte) { checkPayload(t, data) })
}

// checkPayload compares appendPayload with json.Marshal on the manifest
// genManifest makes of data.
func checkPayload(t *testing.T, data []byte) {
	t.Helper()
	m := genManifest(&genBytes{b: data})
	want, wantErr := json.Marshal(&m)
	got, err := appendPayload([]byte("kept"), &m)
	switch {
	case wantErr != nil && err == nil:
		t.Fatalf("json.Marshal fails (%v), appendPayload gives\n%s", wantErr, got)
	case wantErr == nil && err != nil:
		t.Fatalf("appendPayload: %v; json.Marshal gives\n%s", err, want)
	case err == nil && (string(got[:4]) != "kept" || !bytes.Equal(got[4:], want)):
		t.Fatalf("payload\n%q\nwant json.Marshal's\n%q", got, want)
	}
}

// genBytes hands out the bytes a manifest is made of; zeros after the end.
type genBytes struct{ b []byte }

func (g *genBytes) byte() byte {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return c
}

// n is a number in [0, k).
func (g *genBytes) n(k int) int { return int(g.byte()) % k }

func (g *genBytes) uint64() uint64 {
	var u uint64
	for range 8 {
		u = u<<8 | uint64(g.byte())
	}
	return u
}

// int is small mostly, at times any int.
func (g *genBytes) int() int {
	switch g.n(4) {
	case 0:
		return 0
	case 1:
		return int(g.uint64())
	}
	return int(int8(g.byte()))
}

// oddStrings are strings encoding/json escapes, or copies that look
// escapable.
var oddStrings = []string{
	"", "a", "<", ">", "&", `"`, `\`, "\u2028", "\u2029", "\u2027", "\x7f", "\x00", "\x1f", "\x20",
	"\b\f\n\r\t\v", "é", "1µs", "\xff", "\xe2\x80", "\xe2\x80\xa8x", "\xed\xa0\x80", "\xc0\xaf",
	"\U0001F600", "\ufffd", "\xef\xbf\xbd", "\xf4\x90\x80\x80", "</script>", "a&b<c>d",
	"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n",
}

// string is empty, one of oddStrings, raw bytes (any UTF-8 or not) or a
// concatenation of those.
func (g *genBytes) string() string {
	switch c := g.byte(); {
	case c < 32:
		return ""
	case c < 128:
		return oddStrings[int(c)%len(oddStrings)]
	case c < 224:
		b := make([]byte, int(c-128)%40)
		for i := range b {
			b[i] = g.byte()
		}
		return string(b)
	default:
		return g.string() + g.string()
	}
}

// strings is nil, empty or a few strings.
func (g *genBytes) strings() []string {
	switch n := g.n(6); n {
	case 0:
		return nil
	default:
		s := make([]string, n-1)
		for i := range s {
			s[i] = g.string()
		}
		return s
	}
}

func (g *genBytes) stringMap() map[string]string {
	switch n := g.n(8); n {
	case 0:
		return nil
	default:
		m := make(map[string]string)
		for range n - 1 {
			m[g.string()] = g.string()
		}
		return m
	}
}

// time is any instant around now or across the years encoding/json can
// write (and, rarely, beyond: it refuses those), in UTC, the local zone
// or a fixed offset (rarely one of a day or more, refused too).
func (g *genBytes) time() time.Time {
	const first, last = -62135596800, 253402300799 // 0001-01-01, 9999-12-31T23:59:59
	var t time.Time
	switch c := g.n(16); {
	case c < 6:
		t = now.Add(time.Duration(int32(g.uint64())) * time.Second)
	case c < 9:
		t = now.Add(time.Duration(g.uint64() % uint64(time.Hour)))
	case c < 14:
		t = time.Unix(first+int64(g.uint64()%(last-first+1)), int64(g.uint64()%1e9))
	case c == 14:
		t = time.Unix(int64(g.uint64()>>1)-1<<62, int64(g.uint64()%1e9))
	} // else the zero time
	switch c := g.n(16); {
	case c < 6:
		return t.UTC()
	case c < 8:
		return t.Local()
	case c < 15:
		return t.In(time.FixedZone("x", int(g.uint64()%(2*86400-1))-86399))
	}
	return t.In(time.FixedZone("", int(int32(g.uint64()))%(48*3600)))
}

func (g *genBytes) duration() verify.Duration {
	switch g.n(3) {
	case 0:
		return 0
	case 1:
		return verify.Duration(g.uint64())
	}
	return verify.Duration(g.n(200)) * verify.Duration(time.Duration(1)<<(3*g.n(14)))
}

// genManifest makes a manifest with every field drawn from g.
func genManifest(g *genBytes) verify.Manifest {
	m := verify.Manifest{
		Schema:    g.int(),
		Host:      g.string(),
		Serial:    g.uint64() >> (8 * g.n(8)),
		Source:    verify.Source{Repo: g.string(), Commit: g.string(), Dirty: g.n(2) == 1},
		Created:   g.time(),
		Expires:   g.time(),
		NotBefore: g.time(),
		Archive:   verify.Archive{SHA256: g.string(), Size: int64(g.int())},
		ReportKey: g.string(),
	}
	if n := g.n(6); n > 0 {
		m.Files = make([]verify.File, n-1)
		for i := range m.Files {
			m.Files[i] = verify.File{
				Path: g.string(), Mode: verify.Mode(g.uint64() >> (8 * g.n(8))), Owner: g.string(), Group: g.string(),
				SHA256: g.string(), Size: int64(g.int()), Unit: g.string(),
			}
		}
	}
	if n := g.n(5); n > 0 {
		m.Health = make([]verify.Check, n-1)
		for i := range m.Health {
			m.Health[i] = verify.Check{
				Kind: verify.CheckKind(g.string()), Name: g.string(), Jail: g.string(), Addr: g.string(),
				Probe: g.string(), Send: g.string(), Expect: g.string(), URL: g.string(), Status: g.int(),
				Iface: g.string(), Command: g.strings(), Timeout: g.duration(),
			}
		}
	}
	m.Secrets = g.strings()
	m.NetifRestart = g.strings()
	if n := g.n(4); n > 0 {
		m.Gate = &verify.Gate{Bake: g.duration()}
		if n > 1 {
			m.Gate.Hosts = make([]verify.GateHost, n-2)
			for i := range m.Gate.Hosts {
				m.Gate.Hosts[i] = verify.GateHost{Host: g.string(), Key: g.string(), Serial: g.uint64()}
			}
		}
	}
	if g.n(4) > 0 {
		m.HostDesc = genHostDesc(g)
	}
	return m
}

func genHostDesc(g *genBytes) *hostdesc.Host {
	h := &hostdesc.Host{
		Hostname: g.string(), Forwarding: g.n(2) == 1, Sysctls: g.stringMap(), Loader: g.stringMap(),
		Management: g.string(),
	}
	if n := g.n(5); n > 0 {
		h.Interfaces = make([]hostdesc.Interface, n-1)
		for i := range h.Interfaces {
			h.Interfaces[i] = hostdesc.Interface{
				Name: g.string(), Kind: hostdesc.Kind(g.string()), Clone: g.string(), Peer: g.string(),
				Jail: g.string(), Addrs: g.strings(), MTU: g.int(), FIB: g.int(), Members: g.strings(),
				Proto: g.string(), Ports: g.strings(), Tag: g.int(), Parent: g.string(), Options: g.strings(),
			}
		}
	}
	if n := g.n(5); n > 0 {
		h.Routes = make([]hostdesc.Route, n-1)
		for i := range h.Routes {
			h.Routes[i] = hostdesc.Route{Name: g.string(), FIB: g.int(), Dest: g.string(), Gateway: g.string(), Args: g.strings()}
		}
	}
	if n := g.n(5); n > 0 {
		h.Services = make([]hostdesc.Service, n-1)
		for i := range h.Services {
			h.Services[i] = hostdesc.Service{Name: g.string(), Flags: g.string()}
		}
	}
	if n := g.n(5); n > 0 {
		h.Jails = make([]hostdesc.Jail, n-1)
		for i := range h.Jails {
			h.Jails[i] = hostdesc.Jail{Name: g.string(), Interfaces: g.strings()}
		}
	}
	return h
}

// TestPayloadTimeRefused: a time encoding/json refuses fails the payload,
// naming the host and the field.
func TestPayloadTimeRefused(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		now.In(time.FixedZone("", 24*3600)),
	} {
		m := verify.Manifest{Host: "serverA", Created: now, Expires: tm, NotBefore: now}
		if _, err := json.Marshal(&m); err == nil {
			t.Fatalf("json.Marshal takes %v", tm)
		}
		_, err := appendPayload(nil, &m)
		if err == nil || !strings.Contains(err.Error(), "serverA") || !strings.Contains(err.Error(), "expires") {
			t.Errorf("time %v: error %v, want one naming serverA and expires", tm, err)
		}
	}
}

// TestPAEReader: what is signed is verify.PAE of the payload.
func TestPAEReader(t *testing.T) {
	for _, payload := range [][]byte{nil, []byte("{}"), bytes.Repeat([]byte("x"), 12345)} {
		want := verify.PAE(verify.PayloadType, payload)
		read, err := io.ReadAll(struct{ io.Reader }{paeReader(verify.PayloadType, payload)}) // by Read
		if err != nil {
			t.Fatal(err)
		}
		var written bytes.Buffer
		if _, err := io.Copy(&written, paeReader(verify.PayloadType, payload)); err != nil { // by WriteTo
			t.Fatal(err)
		}
		for _, got := range [][]byte{read, written.Bytes()} {
			if !bytes.Equal(got, want) {
				t.Errorf("PAE of %d bytes: %q, want %q", len(payload), got[:min(len(got), 60)], want[:min(len(want), 60)])
			}
		}
	}
}

// BenchmarkPayload writes the signed payload of one host of the generated
// fleet (40 files, its health checks and host description).
func BenchmarkPayload(b *testing.B) {
	repo := genFleet(b, 2)
	r, err := repo.Rendered(repo.Hosts()[1])
	if err != nil {
		b.Fatal(err)
	}
	bb, err := Build(r, Meta{Serial: 1, Created: now})
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = appendPayload(buf[:0], &bb.Manifest); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}
