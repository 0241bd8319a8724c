package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent/gittest"
	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/verify"
	"github.com/rigger-bsd/rigger/verify/statusref"
)

// fleet is two agents, serverA (first wave) and serverB (gated on
// serverA), on one loopback git server, sharing a fake clock.
type fleet struct {
	t       *testing.T
	srv     *gittest.Server
	repo    string
	signer  *bundle.Signer
	clock   time.Time
	agents  map[string]*Agent
	engines map[string]*fakeEngine
	keys    map[string]*verify.Signer
	pubs    map[string]string
	dirs    map[string]string
}

func newFleet(t *testing.T, extra func(host, dir string) string) *fleet {
	t.Helper()
	f := &fleet{t: t, clock: time.Now().UTC().Truncate(time.Second), agents: map[string]*Agent{}, engines: map[string]*fakeEngine{},
		keys: map[string]*verify.Signer{}, pubs: map[string]string{}, dirs: map[string]string{}}
	var err error
	if f.srv, err = gittest.Serve(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.srv.Close() })
	if f.repo, err = f.srv.Init("infra.git"); err != nil {
		t.Fatal(err)
	}
	if f.signer, err = bundle.GenerateSigner(bundle.Ed25519); err != nil {
		t.Fatal(err)
	}
	ciPub, _ := f.signer.PublicPEM()
	for _, host := range []string{"serverA", "serverB"} {
		dir := t.TempDir()
		f.dirs[host] = dir
		write := func(name string, data []byte, mode os.FileMode) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, mode); err != nil {
				t.Fatal(err)
			}
			return p
		}
		priv, pub, err := verify.GenerateHostKey()
		if err != nil {
			t.Fatal(err)
		}
		keyPath := write("host.key", priv, 0o600)
		f.pubs[host] = string(pub)
		if f.keys[host], err = verify.LoadHostKey(keyPath); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf(`host: %s
source: {url: %q, branch: bundles, timeout: 10s}
trust: {keys: [%q], threshold: 1}
interval: 1s
root: %q
state_dir: %q
driver: sim
status:
  push: true
  key: %q
  heartbeat: 30s
`, host, f.srv.URL("infra.git"), write("ci.pub", ciPub, 0o644), filepath.Join(dir, "root"), filepath.Join(dir, "state"), keyPath)
		if extra != nil {
			conf += extra(host, dir)
		}
		cfg, err := LoadConfig(write("agent.yaml", []byte(conf), 0o600), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		f.engines[host] = &fakeEngine{}
		a, err := Open(cfg, Options{Engine: f.engines[host], Now: func() time.Time { return f.clock }})
		if err != nil {
			t.Fatal(err)
		}
		f.agents[host] = a
	}
	return f
}

// publish builds serverA's bundle with serialA and serverB's with serialB
// gated on serverA's serialA, from one commit, and publishes both.
func (f *fleet) publish(serialA, serialB uint64, bake time.Duration) {
	f.t.Helper()
	commit := fmt.Sprintf("%040d", serialA*1000+serialB)
	build := func(host string, serial uint64, gate bool) *bundle.Built {
		r := &topology.HostRender{Host: host, Files: []topology.RenderedFile{
			{Path: "/etc/rc.conf", Unit: "none", Content: fmt.Appendf(nil, "hostname=%q # %d\n", host, serial)},
		}, ReportKey: f.pubs[host]}
		m := bundle.Meta{Serial: serial, Created: f.clock.Add(-time.Minute), Source: verify.Source{Repo: "infra", Commit: commit}}
		if gate {
			r.Gate, r.Bake, r.ReportKeys = []string{"serverA"}, bake, map[string]string{"serverA": f.pubs["serverA"]}
			m.GateSerials = map[string]uint64{"serverA": serialA}
		}
		b, err := bundle.Build(r, m)
		if err != nil {
			f.t.Fatal(err)
		}
		if err := b.Sign(f.signer); err != nil {
			f.t.Fatal(err)
		}
		return b
	}
	files := map[string][]byte{}
	for host, b := range map[string]*bundle.Built{"serverA": build("serverA", serialA, false), "serverB": build("serverB", serialB, true)} {
		files[host+"/manifest.json"] = b.Envelope
		files[host+"/files.tar.zst"] = b.Archive
	}
	if _, err := gittest.Commit(f.repo, "bundles", files); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fleet) poll(host string, want Outcome) (Status, error) {
	f.t.Helper()
	out, err := f.agents[host].Poll(context.Background())
	if out != want {
		f.t.Fatalf("%s: poll = %s (err %v), want %s", host, out, err, want)
	}
	return f.agents[host].Status(), err
}

func pendingReason(st Status) string {
	if st.Pending == nil {
		return ""
	}
	return st.Pending.Reason
}

// TestGateFollowsUpstream is the story: serverB applies a commit
// only once serverA proved it healthy for the bake time, never when
// serverA rolled it back, and the revert then reaches both.
func TestGateFollowsUpstream(t *testing.T) {
	f := newFleet(t, nil)
	f.publish(1, 1, 0)
	// serverB first: serverA has not reported yet.
	st, _ := f.poll("serverB", OutcomeWaiting)
	if r := pendingReason(st); r != "gate closed: serverA: no report yet" {
		t.Fatalf("serverB pending: %q", r)
	}
	f.poll("serverA", OutcomeApplied)
	if st := f.agents["serverA"].Status(); st.Report == nil || st.Report.Error != "" || st.Report.PushedAt.IsZero() {
		t.Fatalf("serverA report not pushed: %+v", st.Report)
	}
	f.poll("serverB", OutcomeApplied)

	// A bad change: serverA rolls it back; serverB never applies it.
	f.engines["serverA"].fail = func(b *verify.Bundle) error {
		if b.Manifest.Serial == 2 {
			return &apply.RolledBackError{Serial: 2, Reason: errors.New("health check web: connection refused")}
		}
		return nil
	}
	f.publish(2, 2, 0)
	st, _ = f.poll("serverB", OutcomeWaiting)
	if r := pendingReason(st); !strings.Contains(r, "serverA: runs serial 1, waiting for serial 2") {
		t.Fatalf("serverB before serverA tried serial 2: %q", r)
	}
	f.poll("serverA", OutcomeRolledBack)
	st, err := f.poll("serverB", OutcomeHeld)
	want := "gate failed: serverA rolled back serial 2: health check web: connection refused"
	if r := pendingReason(st); r != want || err == nil || err.Error() != want {
		t.Fatalf("serverB: pending %q, err %v; want %q", r, err, want)
	}
	f.poll("serverB", OutcomeUnchanged) // waits for a newer commit
	if got := f.engines["serverB"].appliedSerials(); len(got) != 1 {
		t.Fatalf("serverB applied %v, want only serial 1", got)
	}
	// serverB's own report says so, for whoever gates on it.
	got, err := statusref.Remote{URL: f.srv.URL("infra.git")}.Read(context.Background(), []string{"serverB"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := verify.LoadPublicKey([]byte(f.pubs["serverB"]))
	rb, err := verify.VerifyReport(got["serverB"].Envelope, "serverB", key)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Outcome != "held" || rb.Reason != want || rb.FailedSerial(2) == nil || !rb.Healthy || rb.Current.Serial != 1 {
		t.Fatalf("serverB report: %+v", rb)
	}

	// The revert, with a bake time: serverB follows only after serverA
	// reported serial 3 healthy for a minute.
	f.engines["serverA"].fail = nil
	f.clock = f.clock.Add(time.Second)
	f.publish(3, 3, time.Minute)
	f.poll("serverA", OutcomeApplied)
	st, _ = f.poll("serverB", OutcomeWaiting)
	if r := pendingReason(st); !strings.Contains(r, "serverA: serial 3 healthy since") || !strings.Contains(r, "baking until") {
		t.Fatalf("serverB while baking: %q", r)
	}
	f.clock = f.clock.Add(59 * time.Second)
	f.poll("serverA", OutcomeUnchanged) // heartbeat: 59s after the apply, not baked
	f.poll("serverB", OutcomeWaiting)
	f.clock = f.clock.Add(29 * time.Second)
	f.poll("serverA", OutcomeUnchanged) // no heartbeat yet (every 30s)
	f.poll("serverB", OutcomeWaiting)
	f.clock = f.clock.Add(time.Second)
	f.poll("serverA", OutcomeUnchanged) // heartbeat at apply + 89s
	f.poll("serverB", OutcomeApplied)
	if got := f.engines["serverB"].appliedSerials(); fmt.Sprint(got) != "[1 3]" {
		t.Fatalf("serverB applied %v, want [1 3]", got)
	}
}

// TestGateIgnoresForgedReports: only serverA's own key opens serverB's
// gate; a report signed by serverB's key or an unknown key under
// serverA's ref, and an older report replayed, leave it closed and say why.
func TestGateIgnoresForgedReports(t *testing.T) {
	f := newFleet(t, nil)
	f.publish(1, 1, 0)
	remote := statusref.Remote{URL: f.srv.URL("infra.git")}
	healthy := func(at time.Time) *verify.Report {
		return &verify.Report{Schema: verify.ReportSchema, Host: "serverA", Time: at, Outcome: "applied", Serial: 1,
			Current: &verify.ReportCurrent{Serial: 1, AppliedAt: at.Add(-time.Hour)}, Healthy: true}
	}
	strangerPriv, _, _ := verify.GenerateHostKey()
	sp := filepath.Join(t.TempDir(), "stranger.key")
	os.WriteFile(sp, strangerPriv, 0o600)
	stranger, err := verify.LoadHostKey(sp)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*verify.Signer{"serverB's key": f.keys["serverB"], "an unknown key": stranger} {
		env, err := verify.SignReport(healthy(f.clock), k)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Push(context.Background(), "serverA", env, f.clock); err != nil {
			t.Fatal(err)
		}
		st, _ := f.poll("serverB", OutcomeWaiting)
		if r := pendingReason(st); !strings.Contains(r, "gate closed: serverA: report ignored") || !strings.Contains(r, "not signed by serverA's key") {
			t.Fatalf("report signed by %s: pending %q", name, r)
		}
	}
	// serverA's own good report opens it ...
	env, _ := verify.SignReport(healthy(f.clock), f.keys["serverA"])
	remote.Push(context.Background(), "serverA", env, f.clock)
	f.poll("serverB", OutcomeApplied)

	// ... and a replay of an older one after a newer was seen does not.
	f.publish(2, 2, 0)
	newer := healthy(f.clock.Add(time.Minute))
	newer.Current.Serial, newer.Serial = 2, 2
	env2, _ := verify.SignReport(newer, f.keys["serverA"])
	old := healthy(f.clock.Add(30 * time.Second))
	old.Current.Serial, old.Serial = 2, 2
	envOld, _ := verify.SignReport(old, f.keys["serverA"])
	f.agents["serverB"].rep.newest["serverA"] = newer.Time // seen before
	remote.Push(context.Background(), "serverA", envOld, f.clock)
	st, _ := f.poll("serverB", OutcomeWaiting)
	if r := pendingReason(st); !strings.Contains(r, "older than one seen before") {
		t.Fatalf("replayed report: %q", r)
	}
	remote.Push(context.Background(), "serverA", env2, f.clock)
	f.poll("serverB", OutcomeApplied)
}

// TestGateServerDown: with status refs on a server that is down, the gate
// stays closed and says why; bundles still come from the source.
func TestGateServerDown(t *testing.T) {
	statusSrv, err := gittest.Serve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { statusSrv.Close() })
	if _, err := statusSrv.Init("status.git"); err != nil {
		t.Fatal(err)
	}
	f := newFleet(t, func(host, dir string) string { return fmt.Sprintf("  url: %q\n", statusSrv.URL("status.git")) })
	f.publish(1, 1, 0)
	f.poll("serverA", OutcomeApplied)
	if err := statusSrv.Stop(); err != nil {
		t.Fatal(err)
	}
	st, _ := f.poll("serverB", OutcomeWaiting)
	if r := pendingReason(st); !strings.HasPrefix(r, "gate closed: serverA: no report: status list") {
		t.Fatalf("status server down: %q", r)
	}
	if err := statusSrv.Start(); err != nil {
		t.Fatal(err)
	}
	f.poll("serverB", OutcomeApplied)
}
