package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent/gittest"
	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/verify"
)

// fakeEngine stands in for the apply engine where a test scripts its
// answers (rolled back, degraded); it records what it was asked to do.
type fakeEngine struct {
	mu         sync.Mutex
	gens       []apply.Generation // newest first
	current    uint64
	applied    []uint64
	reinstalls int
	drift      []string
	// fail, when set, decides the error of Apply for a bundle.
	fail func(b *verify.Bundle) error
}

func (f *fakeEngine) Recover(context.Context) (*apply.Recovery, error) { return nil, nil }
func (f *fakeEngine) Resume(context.Context) (*apply.Result, error)    { return nil, nil }

func (f *fakeEngine) Plan(b *verify.Bundle) (*apply.Plan, error) {
	p := &apply.Plan{Serial: b.Manifest.Serial}
	for _, file := range b.Manifest.Files {
		p.Changes = append(p.Changes, apply.Change{Path: file.Path, Op: "modify", New: b.Files[file.Path]})
		u, _ := verify.ParseUnit(file.Unit)
		p.Units = append(p.Units, u)
	}
	return p, nil
}

func (f *fakeEngine) Apply(_ context.Context, b *verify.Bundle) (*apply.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, b.Manifest.Serial)
	if f.fail != nil {
		if err := f.fail(b); err != nil {
			return nil, err
		}
	}
	f.gens = append([]apply.Generation{{Serial: b.Manifest.Serial, Manifest: b.Manifest, Signers: b.Signers, AppliedAt: time.Now()}}, f.gens...)
	f.current = b.Manifest.Serial
	return &apply.Result{Serial: b.Manifest.Serial, Health: []apply.HealthResult{{Name: "pg_j", Kind: verify.CheckJail, OK: true, Latency: 12 * time.Millisecond, Attempts: 1}}}, nil
}

func (f *fakeEngine) Rollback(_ context.Context, serial uint64) (*apply.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, g := range f.gens {
		if (serial == 0 && g.Serial < f.current) || (serial != 0 && g.Serial == serial) {
			f.current = g.Serial
			return &apply.Result{Serial: g.Serial}, nil
		}
	}
	return nil, fmt.Errorf("no kept generation %d", serial)
}

func (f *fakeEngine) Reinstall(context.Context) (*apply.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reinstalls++
	f.drift = nil
	return &apply.Result{Serial: f.current}, nil
}

func (f *fakeEngine) Drift() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.drift...), nil
}

func (f *fakeEngine) Current() (*apply.Generation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, g := range f.gens {
		if g.Serial == f.current {
			return &g, nil
		}
	}
	return nil, nil
}

func (f *fakeEngine) Generations() ([]apply.Generation, error) { return f.gens, nil }

func (f *fakeEngine) appliedSerials() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.applied...)
}

// world is one test's fleet: a git server with the bundles branch, a CI
// signing key, and an agent for serverA.
type world struct {
	t      testing.TB
	srv    *gittest.Server
	repo   string
	signer *bundle.Signer
	dir    string // config, keys, state
	cfg    *Config
	engine *fakeEngine
	agent  *Agent
	clock  time.Time
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{t: t, engine: &fakeEngine{}, clock: time.Now()}
	var err error
	if w.srv, err = gittest.Serve(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.srv.Close() })
	if w.repo, err = w.srv.Init("infra.git"); err != nil {
		t.Fatal(err)
	}
	if w.signer, err = bundle.GenerateSigner(bundle.Ed25519); err != nil {
		t.Fatal(err)
	}
	w.dir = t.TempDir()
	pub, err := w.signer.PublicPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "ci.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`host: serverA
source: {url: %q, branch: bundles, timeout: 5s}
trust: {keys: [%q], threshold: 1}
interval: 1s
max_backoff: 8s
root: %q
state_dir: %q
driver: sim
drift: correct
`, w.srv.URL("infra.git"), filepath.Join(w.dir, "ci.pub"), filepath.Join(w.dir, "root"), filepath.Join(w.dir, "state"))
	path := filepath.Join(w.dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if w.cfg, err = LoadConfig(path, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.open()
	return w
}

// open (re)opens the agent on the same state, like a restart.
func (w *world) open() {
	w.t.Helper()
	a, err := Open(w.cfg, Options{Engine: w.engine, Now: func() time.Time { return w.clock }})
	if err != nil {
		w.t.Fatal(err)
	}
	w.agent = a
}

// bundleFor builds and signs host's bundle with serial.
func (w *world) bundleFor(host string, serial uint64, notBefore time.Time) *bundle.Built {
	w.t.Helper()
	r := &topology.HostRender{Host: host, Files: []topology.RenderedFile{
		{Path: "/etc/rc.conf", Unit: "none", Content: fmt.Appendf(nil, "# %s serial %d\nhostname=%q\n", host, serial, host)},
		{Path: "/etc/pf.conf", Unit: "pf", Content: fmt.Appendf(nil, "pass all # %d\n", serial)},
	}}
	b, err := bundle.Build(r, bundle.Meta{Serial: serial, Created: w.clock.Add(-time.Minute), NotBefore: notBefore,
		Source: verify.Source{Repo: "https://git.example.org/infra.git", Commit: fmt.Sprintf("%040d", serial)}})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := b.Sign(w.signer); err != nil {
		w.t.Fatal(err)
	}
	return b
}

// publish commits the given bundles (dir name → bundle) as the new tree.
func (w *world) publish(bundles map[string]*bundle.Built) string {
	w.t.Helper()
	files := map[string][]byte{}
	for dir, b := range bundles {
		files[dir+"/manifest.json"] = b.Envelope
		files[dir+"/files.tar.zst"] = b.Archive
	}
	c, err := gittest.Commit(w.repo, "bundles", files)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

func (w *world) poll(want Outcome) error {
	w.t.Helper()
	out, err := w.agent.Poll(context.Background())
	if out != want {
		w.t.Fatalf("poll = %s (err %v), want %s", out, err, want)
	}
	return err
}

func (w *world) readStatus() *Status {
	w.t.Helper()
	st, err := ReadStatus(w.agent.Store(), "serverA", w.clock)
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

var errHealth = errors.New("health: jail pg_j is not running")
