package verify

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/rigger-bsd/rigger/policy"
)

func newHostKey(t testing.TB) (*Signer, string) {
	t.Helper()
	priv, pub, err := GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	p, err := cryptoutils.UnmarshalPEMToPrivateKey(priv, cryptoutils.SkipPassword)
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewSigner(p)
	if err != nil {
		t.Fatal(err)
	}
	return k, string(pub)
}

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func healthyReport(host string, serial uint64, appliedAt, at time.Time) *Report {
	return &Report{
		Schema: ReportSchema, Host: host, Time: at, Outcome: "applied", Serial: serial, Commit: "c0ffee",
		Current: &ReportCurrent{Serial: serial, Commit: "c0ffee", AppliedAt: appliedAt},
		Healthy: true, Health: []ReportCheck{{Name: "jail nginx_j", Kind: "jail", OK: true}},
	}
}

func signReport(t testing.TB, r *Report, k *Signer) []byte {
	t.Helper()
	env, err := SignReport(r, k)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestReportRoundTrip(t *testing.T) {
	k, pub := newHostKey(t)
	env := signReport(t, healthyReport("serverA", 3, t0, t0.Add(time.Minute)), k)
	key, err := LoadPublicKey([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	r, err := VerifyReport(env, "serverA", key)
	if err != nil {
		t.Fatal(err)
	}
	if r.Host != "serverA" || r.Current.Serial != 3 || !r.Healthy || !r.Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("round trip changed the report: %+v", r)
	}
}

func TestReportRefused(t *testing.T) {
	ka, pubA := newHostKey(t)
	kb, _ := newHostKey(t)
	keyA, _ := LoadPublicKey([]byte(pubA))
	ecs, _ := testKeys(t)
	good := healthyReport("serverA", 3, t0, t0)
	payload, _ := json.Marshal(good)
	huge := healthyReport("serverA", 3, t0, t0)
	huge.Drift = make([]string, MaxReportChecks)
	for i := range huge.Drift {
		huge.Drift[i] = strings.Repeat("x", 300)
	}
	cases := map[string][]byte{
		// serverB signs a report that claims to be serverA's and pushes
		// it under serverA's ref.
		"signed by another host's key": signReport(t, good, kb),
		"signed by an unknown key":     envelope(t, ReportPayloadType, payload, ecs[0]),
		// serverB's own, valid report placed under serverA's ref.
		"another host's report": signReport(t, healthyReport("serverB", 3, t0, t0), ka),
		// A bundle-manifest signature by the right key is no report.
		"manifest payload type": envelope(t, PayloadType, payload, &testKey{signer: ka.s, pub: ka.pub}),
		"unsigned":              envelope(t, ReportPayloadType, payload),
		"too large":             []byte(`{"payloadType":"` + strings.Repeat("x", MaxReportSize) + `"}`),
		"not json":              []byte("garbage"),
		"unknown field": envelope(t, ReportPayloadType, []byte(`{"schema":1,"host":"serverA","time":"2026-12-02T12:00:00Z","outcome":"applied","healthy":false,"extra":1}`),
			&testKey{signer: ka.s, pub: ka.pub}),
	}
	if _, err := SignReport(huge, ka); err == nil {
		t.Error("SignReport accepted a report with too many drifted files")
	}
	for name, env := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := VerifyReport(env, "serverA", keyA)
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			if !errors.Is(err, ErrReport) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v is neither ErrReport nor ErrTooLarge", err)
			}
		})
	}
}

func TestCheckGate(t *testing.T) {
	ka, pubA := newHostKey(t)
	kb, pubB := newHostKey(t)
	gate := &Gate{Hosts: []GateHost{{Host: "serverA", Key: pubA, Serial: 3}}, Bake: Duration(10 * time.Second)}
	in := func(env []byte) map[string]GateInput { return map[string]GateInput{"serverA": {Envelope: env}} }
	rolledBack := healthyReport("serverA", 2, t0, t0.Add(time.Minute))
	rolledBack.Outcome, rolledBack.Serial = "rolled-back", 3
	rolledBack.Failed = []ReportFailed{{Serial: 3, Outcome: "rolled-back", Reason: "health check web: connection refused", At: t0}}
	unhealthyR := healthyReport("serverA", 3, t0, t0.Add(time.Minute))
	unhealthyR.Healthy = false
	unhealthyR.Health[0].OK = false
	cases := []struct {
		name   string
		in     map[string]GateInput
		state  GateState
		reason string
	}{
		{"healthy and baked", in(signReport(t, healthyReport("serverA", 3, t0, t0.Add(10*time.Second)), ka)), GateOpen, "gate open"},
		{"later serial", in(signReport(t, healthyReport("serverA", 4, t0, t0.Add(time.Hour)), ka)), GateOpen, "gate open"},
		{"older serial", in(signReport(t, healthyReport("serverA", 2, t0, t0.Add(time.Hour)), ka)), GateClosed, "runs serial 2, waiting for serial 3"},
		{"still baking", in(signReport(t, healthyReport("serverA", 3, t0, t0.Add(9*time.Second)), ka)), GateClosed, "baking until 2026-12-02T12:00:10Z"},
		{"rolled back", in(signReport(t, rolledBack, ka)), GateFailed, "gate failed: serverA rolled back serial 3: health check web: connection refused"},
		{"unhealthy", in(signReport(t, unhealthyR, ka)), GateClosed, "not healthy (failing: jail nginx_j)"},
		{"other host's key", in(signReport(t, healthyReport("serverA", 3, t0, t0.Add(time.Hour)), kb)), GateClosed, "report ignored"},
		{"no report", map[string]GateInput{}, GateClosed, "serverA: no report yet"},
		{"server down", map[string]GateInput{"serverA": {Err: errors.New("connection refused")}}, GateClosed, "no report: connection refused"},
		{"replayed older report", map[string]GateInput{"serverA": {
			Envelope: signReport(t, healthyReport("serverA", 3, t0, t0.Add(time.Hour)), ka), Newest: t0.Add(2 * time.Hour)}},
			GateClosed, "older than one seen before"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := CheckGate(gate, c.in)
			if res.State != c.state || !strings.Contains(res.Reason(), c.reason) {
				t.Fatalf("got %s %q, want %s containing %q", res.State, res.Reason(), c.state, c.reason)
			}
		})
	}
	// Two gating hosts: one failed beats one closed; both open opens.
	two := &Gate{Hosts: []GateHost{{Host: "serverA", Key: pubA, Serial: 3}, {Host: "serverB", Key: pubB, Serial: 7}}}
	res := CheckGate(two, map[string]GateInput{"serverA": {Envelope: signReport(t, rolledBack, ka)}})
	if res.State != GateFailed || strings.Contains(res.Reason(), "serverB") {
		t.Fatalf("failed+closed: got %s %q", res.State, res.Reason())
	}
	res = CheckGate(two, map[string]GateInput{
		"serverA": {Envelope: signReport(t, healthyReport("serverA", 3, t0, t0), ka)},
		"serverB": {Envelope: signReport(t, healthyReport("serverB", 7, t0, t0), kb)},
	})
	if res.State != GateOpen {
		t.Fatalf("both healthy: got %s %q", res.State, res.Reason())
	}
}

func TestManifestGateChecked(t *testing.T) {
	_, pubA := newHostKey(t)
	f := newFixture(t)
	good := f.m
	good.Gate = &Gate{Hosts: []GateHost{{Host: "serverB", Key: pubA, Serial: 1}}, Bake: Duration(time.Minute)}
	good.ReportKey = pubA
	if err := CheckManifest(&good, policy.Paths{}); err != nil {
		t.Fatalf("good gate refused: %v", err)
	}
	for name, g := range map[string]*Gate{
		"self":     {Hosts: []GateHost{{Host: good.Host, Key: pubA, Serial: 1}}},
		"no key":   {Hosts: []GateHost{{Host: "serverB", Serial: 1}}},
		"bad key":  {Hosts: []GateHost{{Host: "serverB", Key: "-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n", Serial: 1}}},
		"twice":    {Hosts: []GateHost{{Host: "serverB", Key: pubA, Serial: 1}, {Host: "serverB", Key: pubA, Serial: 1}}},
		"serial 0": {Hosts: []GateHost{{Host: "serverB", Key: pubA}}},
		"no hosts": {},
		"neg bake": {Hosts: []GateHost{{Host: "serverB", Key: pubA, Serial: 1}}, Bake: -1},
		"bad name": {Hosts: []GateHost{{Host: "../x", Key: pubA, Serial: 1}}},
	} {
		m := good
		m.Gate = g
		if err := CheckManifest(&m, policy.Paths{}); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzVerifyReport: arbitrary bytes as a report envelope never panic, are
// refused with a RejectError, and an accepted report is serverA's, well
// formed, with the report payload type.
func FuzzVerifyReport(f *testing.F) {
	k, pub := newHostKey(f)
	key, err := LoadPublicKey([]byte(pub))
	if err != nil {
		f.Fatal(err)
	}
	good := signReport(f, healthyReport("serverA", 3, t0, t0), k)
	f.Add(good)
	f.Add(signReport(f, healthyReport("serverB", 3, t0, t0), k))
	f.Add([]byte(`{"payloadType":"application/vnd.rigger.status+json","payload":"e30=","signatures":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, env []byte) {
		r, err := VerifyReport(env, "serverA", key)
		if err != nil {
			var re *RejectError
			if !errors.As(err, &re) {
				t.Fatalf("non-reject error %T: %v", err, err)
			}
			return
		}
		if r.Host != "serverA" || CheckReport(r) != nil {
			t.Fatalf("accepted a bad report: %+v", r)
		}
		// Only a real signature by k gets here: the payload must be one k signed.
		e, payload, _ := ParseEnvelope(env)
		if e.PayloadType != ReportPayloadType || len(payload) == 0 {
			t.Fatalf("accepted envelope of type %q", e.PayloadType)
		}
	})
}
