package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent/gittest"
	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/verify"
	"github.com/rigger-bsd/rigger/verify/statusref"
)

// testFleet is a git server with serverA, serverB and serverC published
// from commit "c1", serverB gated on serverA, and a host key each.
type testFleet struct {
	t      *testing.T
	srv    *gittest.Server
	url    string
	signer *bundle.Signer
	keys   map[string]*verify.Signer
	now    time.Time
}

func newTestFleet(t *testing.T) *testFleet {
	srv, err := gittest.Serve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dir, err := srv.Init("infra.git")
	if err != nil {
		t.Fatal(err)
	}
	f := &testFleet{t: t, srv: srv, url: srv.URL("infra.git"), keys: map[string]*verify.Signer{}, now: time.Now().UTC().Truncate(time.Second)}
	if f.signer, err = bundle.GenerateSigner(bundle.ECDSA); err != nil {
		t.Fatal(err)
	}
	pubs := map[string]string{}
	for _, h := range []string{"serverA", "serverB", "serverC"} {
		priv, pub, err := verify.GenerateHostKey()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "k")
		os.WriteFile(p, priv, 0o600)
		if f.keys[h], err = verify.LoadHostKey(p); err != nil {
			t.Fatal(err)
		}
		pubs[h] = string(pub)
	}
	files := map[string][]byte{}
	for i, h := range []string{"serverA", "serverB", "serverC"} {
		r := &topology.HostRender{Host: h, ReportKey: pubs[h], Files: []topology.RenderedFile{{Path: "/etc/rc.conf", Unit: "none", Content: []byte("x=1\n")}}}
		m := bundle.Meta{Serial: uint64(10 + i), Created: f.now.Add(-time.Hour), Source: verify.Source{Repo: "infra", Commit: "c1"}}
		if h == "serverB" {
			r.Gate, r.ReportKeys = []string{"serverA"}, map[string]string{"serverA": pubs["serverA"]}
			m.GateSerials = map[string]uint64{"serverA": 10}
		}
		b, err := bundle.Build(r, m)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Sign(f.signer); err != nil {
			t.Fatal(err)
		}
		files[h+"/manifest.json"], files[h+"/files.tar.zst"] = b.Envelope, b.Archive
	}
	if _, err := gittest.Commit(dir, "bundles", files); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *testFleet) report(host string, key *verify.Signer, mod func(r *verify.Report)) {
	f.t.Helper()
	serial := map[string]uint64{"serverA": 10, "serverB": 11, "serverC": 12}[host]
	r := &verify.Report{Schema: verify.ReportSchema, Host: host, Time: f.now.Add(-time.Minute), Outcome: "applied", Serial: serial, Commit: "c1",
		Current: &verify.ReportCurrent{Serial: serial, Commit: "c1", AppliedAt: f.now.Add(-time.Hour)}, Healthy: true,
		Health: []verify.ReportCheck{{Name: "pf", Kind: "pf", OK: true}}}
	if mod != nil {
		mod(r)
	}
	env, err := verify.SignReport(r, key)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := (statusref.Remote{URL: f.url}).Push(context.Background(), host, env, r.Time); err != nil {
		f.t.Fatal(err)
	}
}

func (f *testFleet) read(keys bool) *Fleet {
	f.t.Helper()
	o := Options{URL: f.url, Now: func() time.Time { return f.now }, Stale: 10 * time.Minute}
	if keys {
		o.Keys, o.Threshold = []verify.PublicKey{f.signer.Public()}, 1
	}
	fl, err := Read(context.Background(), o)
	if err != nil {
		f.t.Fatal(err)
	}
	return fl
}

func host(fl *Fleet, name string) *Host {
	for i := range fl.Hosts {
		if fl.Hosts[i].Host == name {
			return &fl.Hosts[i]
		}
	}
	return nil
}

func TestStatus(t *testing.T) {
	f := newTestFleet(t)
	f.report("serverA", f.keys["serverA"], nil)
	// serverB's report signed by serverC's key: ignored.
	f.report("serverB", f.keys["serverC"], nil)
	f.report("serverC", f.keys["serverC"], func(r *verify.Report) {
		r.Time = f.now.Add(-time.Hour)
		r.Healthy, r.Health[0].OK = false, false
	})
	fl := f.read(true)
	if fl.OK || !fl.Verified || len(fl.Hosts) != 3 {
		t.Fatalf("fleet: ok %v verified %v hosts %d", fl.OK, fl.Verified, len(fl.Hosts))
	}
	a, b, c := host(fl, "serverA"), host(fl, "serverB"), host(fl, "serverC")
	if !a.OK || a.Serial != 10 || a.Commit != "c1" || a.AgeSeconds != 60 || a.Published.Serial != 10 {
		t.Errorf("serverA: %+v", a)
	}
	if b.OK || len(b.Problems) != 1 || !strings.Contains(b.Problems[0], "report ignored") || b.Gate == nil || b.Gate.State != verify.GateOpen {
		t.Errorf("serverB: %+v gate %+v", b, b.Gate)
	}
	if c.OK || fmt.Sprint(c.Problems) != "[unhealthy stale (last report 1h0m0s ago)]" {
		t.Errorf("serverC problems: %q", c.Problems)
	}
	if done, _ := a.Done("c1"); !done {
		t.Error("serverA runs c1 healthily but is not done")
	}
	if done, _ := c.Done("c1"); done {
		t.Error("unhealthy serverC is done")
	}
}

func TestStatusGateFailedAndWait(t *testing.T) {
	f := newTestFleet(t)
	f.report("serverA", f.keys["serverA"], func(r *verify.Report) {
		r.Outcome, r.Reason = "rolled-back", "health check web failed"
		r.Current.Serial, r.Current.Commit = 9, "c0"
		r.Failed = []verify.ReportFailed{{Serial: 10, Outcome: "rolled-back", Reason: "health check web failed", At: f.now}}
	})
	fl := f.read(false)
	if fl.Verified {
		t.Error("verified without keys")
	}
	a, b := host(fl, "serverA"), host(fl, "serverB")
	if b.Gate == nil || b.Gate.State != verify.GateFailed || b.Gate.Reason != "gate failed: serverA rolled back serial 10: health check web failed" {
		t.Fatalf("serverB gate: %+v", b.Gate)
	}
	if _, failed := a.Done("c1"); failed != "serverA rolled-back serial 10: health check web failed" {
		t.Fatalf("serverA Done(c1) failed = %q", failed)
	}
	if fmt.Sprint(b.Problems) != "[no report]" {
		t.Fatalf("serverB problems %q", b.Problems)
	}
}
