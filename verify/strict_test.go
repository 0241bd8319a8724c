package verify

import (
	"bytes"
	"encoding/base64"
	stdjson "encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/policy/hostdesc"
)

// Signed bytes that one JSON parser could read differently from another
// are refused, each with an error naming the member: a signer (or a bug in
// one) must not get a manifest past review that reads one way there and
// another way on the host.
func TestStrictJSON(t *testing.T) {
	ec, _ := testKeys(t)
	k := ec[0]
	base := newFixture(t)
	base.m.HostDesc = &hostdesc.Host{Sysctls: map[string]string{"net.inet.ip.forwarding": "1"}}
	payload := base.payload(t)
	// The unmodified payload passes: each case below fails by its edit only.
	if _, err := Verify(envelope(t, PayloadType, payload, k), bytes.NewReader(base.archive), base.opts(k)); err != nil {
		t.Fatalf("valid bundle refused: %v", err)
	}
	edit := func(old, new string) []byte {
		t.Helper()
		if !bytes.Contains(payload, []byte(old)) {
			t.Fatalf("payload has no %s", old)
		}
		return bytes.Replace(payload, []byte(old), []byte(new), 1)
	}
	cases := []struct {
		name     string
		manifest []byte
		want     string // in the error
	}{
		{"member named twice (encoding/json took the last)",
			envelope(t, PayloadType, edit(`"serial":5`, `"serial":5,"serial":7`), k), `duplicate object member name "serial"`},
		{"nested member named twice",
			envelope(t, PayloadType, edit(`"unit":"pf"`, `"unit":"pf","unit":"none"`), k), `"unit"`},
		{"map key named twice",
			envelope(t, PayloadType, edit(`"net.inet.ip.forwarding":"1"`, `"net.inet.ip.forwarding":"1","net.inet.ip.forwarding":"0"`), k), `"net.inet.ip.forwarding"`},
		{"member name in another case (encoding/json matched it)",
			envelope(t, PayloadType, edit(`"serial":5`, `"SERIAL":5`), k), `"SERIAL"`},
		{"invalid UTF-8 (encoding/json replaced it)",
			envelope(t, PayloadType, edit(`"repo":"https://`, "\"repo\":\"\xffhttps://"), k), `/source/repo`},
		{"trailing data after the manifest",
			envelope(t, PayloadType, append(bytes.Clone(payload), ` {}`...), k), `after top-level value`},
		{"envelope member named twice",
			bytes.Replace(envelope(t, PayloadType, payload, k), []byte(`{"payloadType"`), []byte(`{"payloadType":"x","payloadType"`), 1), `"payloadType"`},
		{"trailing data after the envelope",
			append(envelope(t, PayloadType, payload, k), `{}`...), `after top-level value`},
		// One payload, other base64 texts (base64.StdEncoding took them).
		{"payload base64 with stray bits", restamp(t, envelope(t, PayloadType, padTo(payload, 1), k), func(b64 string) string {
			i := strings.IndexByte(b64, '=') - 1 // the last character's low 4 bits are padding
			return b64[:i] + string(stdAlphabet[strings.IndexByte(stdAlphabet, b64[i])+1]) + b64[i+1:]
		}), `illegal base64`},
		{"payload base64 with a line break", restamp(t, envelope(t, PayloadType, payload, k), func(b64 string) string {
			return b64[:64] + `\n` + b64[64:]
		}), `line break`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Verify(tc.manifest, bytes.NewReader(base.archive), base.opts(k))
			wantReject(t, b, err, ErrMalformed)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s", err, tc.want)
			}
		})
	}
}

const stdAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// padTo appends spaces (JSON whitespace) until len(b) % 3 == rem.
func padTo(b []byte, rem int) []byte {
	b = bytes.Clone(b)
	for len(b)%3 != rem {
		b = append(b, ' ')
	}
	return b
}

// restamp rewrites an envelope's payload text (the JSON string's content)
// and checks that encoding/json with base64.StdEncoding, as verify read
// envelopes before, still read the same payload from it.
func restamp(t *testing.T, env []byte, edit func(string) string) []byte {
	t.Helper()
	var e Envelope
	if err := stdjson.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	old := e.Payload
	out := bytes.Replace(env, []byte(`"`+old+`"`), []byte(`"`+edit(old)+`"`), 1)
	var e2 Envelope
	if err := oldDecode(out, &e2); err != nil {
		t.Fatal(err)
	}
	p1, err1 := base64.StdEncoding.DecodeString(old)
	p2, err2 := base64.StdEncoding.DecodeString(e2.Payload)
	if err1 != nil || err2 != nil || !bytes.Equal(p1, p2) || e2.Payload == old {
		t.Fatalf("the edited text is not another text of the same payload (%v, %v)", err1, err2)
	}
	return out
}

// A status report is read under the same rules.
func TestStrictJSONReport(t *testing.T) {
	ecs, _ := testKeys(t)
	payload := []byte(`{"schema":1,"host":"serverA","time":"2026-12-02T12:00:00Z","outcome":"rejected","healthy":false,"healthy":true}`)
	_, err := VerifyReport(envelope(t, ReportPayloadType, payload, ecs[0]), "serverA", ecs[0].pub)
	if !errors.Is(err, ErrReport) || !strings.Contains(err.Error(), `"healthy"`) {
		t.Fatalf("report with a member named twice: %v, want ErrReport naming the member", err)
	}
	ok := []byte(`{"schema":1,"host":"serverA","time":"2026-12-02T12:00:00Z","outcome":"rejected","healthy":false}`)
	if _, err := VerifyReport(envelope(t, ReportPayloadType, ok, ecs[0]), "serverA", ecs[0].pub); err != nil {
		t.Fatalf("valid report refused: %v", err)
	}
}

// oldDecode is how verify decoded JSON before it used encoding/json/v2's
// upstream: the differential test below holds the new decoder to never
// accept more than it did, nor read anything differently.
func oldDecode(b []byte, v any) error {
	dec := stdjson.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// FuzzStrictDecodeNarrowsOld: whatever manifest or envelope decodeStrict
// accepts, encoding/json with DisallowUnknownFields accepted too, into
// the same value.
func FuzzStrictDecodeNarrowsOld(f *testing.F) {
	fx := newFixture(f)
	fx.m.HostDesc = &hostdesc.Host{Hostname: "a", Interfaces: []hostdesc.Interface{{Name: "em0", Kind: hostdesc.Physical, Addrs: []string{"10.0.0.1/24"}}},
		Sysctls: map[string]string{"a.b": "1"}, Routes: []hostdesc.Route{{Name: "d", Dest: "default", Args: []string{"10.0.0.254"}}}}
	fx.m.Gate = &Gate{Hosts: []GateHost{{Host: "b", Key: "k", Serial: 1}}, Bake: Duration(time.Minute)}
	f.Add(fx.payload(f))
	ec, _ := testKeys(f)
	f.Add(fx.sign(f, ec[0]))
	f.Add([]byte(`{"schema":1,"serial":5,"serial":6}`))
	f.Add([]byte(`{"host":"a\ud800"}`))
	f.Add([]byte(`{"created":"2026-11-21T12:00:00.5+01:00","expires":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		narrowsOld[Manifest](t, b)
		narrowsOld[Envelope](t, b)
		narrowsOld[Report](t, b)
		envelopeNarrowsOld(t, b)
	})
}

func narrowsOld[T any](t *testing.T, b []byte) {
	var nv, ov T
	if decodeStrict(b, &nv) != nil {
		return
	}
	if err := oldDecode(b, &ov); err != nil {
		t.Fatalf("%T accepted now, refused before: %v", nv, err)
	}
	if !reflect.DeepEqual(nv, ov) {
		t.Fatalf("%T read differently:\nnew %+v\nold %+v", nv, nv, ov)
	}
}

// envelopeNarrowsOld: ParseEnvelope accepts only what encoding/json and
// base64.StdEncoding accepted, with the same payload, and gives back the
// very payload text of the input.
func envelopeNarrowsOld(t *testing.T, b []byte) {
	env, payload, err := ParseEnvelope(b)
	if err != nil {
		return
	}
	var old Envelope
	if err := oldDecode(b, &old); err != nil {
		t.Fatalf("envelope accepted now, refused before: %v", err)
	}
	p, err := base64.StdEncoding.DecodeString(old.Payload)
	if err != nil || !bytes.Equal(p, payload) || env.Payload != old.Payload || env.PayloadType != old.PayloadType ||
		!reflect.DeepEqual(env.Signatures, old.Signatures) {
		t.Fatalf("envelope read differently: %+v, before %+v (%v)", env, old, err)
	}
}
