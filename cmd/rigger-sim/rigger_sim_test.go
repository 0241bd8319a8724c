package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/apply/sim"
	"github.com/rigger-bsd/rigger/bundler/topology"
)

func TestMain(m *testing.M) {
	sim.ServiceMain()
	os.Exit(m.Run())
}

// buildSim builds rigger-sim: up runs agents as `rigger-sim agent`.
func buildSim(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	out, err := exec.Command("go", "build", "-o", bin+"/", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(bin, "rigger-sim")
}

// TestUpExamples brings each example infra repo up on an emulated fleet:
// every host applies its first bundle (a reboot, done by rigger-sim) and
// passes its health checks, tunnels and WireGuard links included.
func TestUpExamples(t *testing.T) {
	applytest.NeedSpiped(t)
	bin := buildSim(t)
	for _, name := range []string{"uirig", "routed", "lagg"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			repo := filepath.Join("..", "..", "testdata", "infra", name)
			r, err := topology.Load(repo)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, bin, "up", "--repo", repo, "--work", t.TempDir())
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			if err != nil {
				t.Fatalf("rigger-sim up %s: %v\nstdout:\n%s\nstderr:\n%s", name, err, stdout.String(), stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if len(lines) != len(r.Hosts()) {
				t.Fatalf("%d lines for %d hosts:\n%s", len(lines), len(r.Hosts()), stdout.String())
			}
			for _, h := range r.Hosts() {
				if !strings.Contains(stdout.String(), h) {
					t.Errorf("no line for %s", h)
				}
			}
			for _, ln := range lines {
				if !strings.Contains(ln, "serial 1 ") || !strings.Contains(ln, " applied ") || !strings.Contains(ln, " healthy ") ||
					!strings.Contains(ln, "reboot-required: booted by rigger-sim") || strings.Contains(ln, "FAILED") {
					t.Errorf("line %q: want serial 1 applied, healthy, after a reboot", ln)
				}
			}
			if !strings.Contains(stderr.String(), "booting the sim host") {
				t.Errorf("rigger-sim did not say it booted the hosts:\n%s", stderr.String())
			}
		})
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), nil, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "rigger-sim up --repo DIR") {
		t.Errorf("no args: exit %d, %q", code, errb.String())
	}
	if code := Main(context.Background(), []string{"up"}, &out, &errb); code != exitUsage {
		t.Errorf("up without --repo: exit %d", code)
	}
	if code := Main(context.Background(), []string{"frobnicate"}, &out, &errb); code != exitUsage {
		t.Errorf("unknown command: exit %d", code)
	}
}

// TestWireGuardKeyMismatchRolledBack: a revision of routed where vpsbig
// expects a public key for vpssmall that vpssmall does not have. The
// WireGuard link cannot come up, the wireguard check fails, and the
// change is rolled back; up exits 4.
func TestWireGuardKeyMismatchRolledBack(t *testing.T) {
	applytest.NeedSpiped(t)
	bin := buildSim(t)
	repo := filepath.Join("..", "..", "testdata", "infra", "routed")
	bad := filepath.Join(t.TempDir(), "routed-badkey")
	if err := os.CopyFS(bad, os.DirFS(repo)); err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(bad, "topology.yaml")
	src, err := os.ReadFile(topo)
	if err != nil {
		t.Fatal(err)
	}
	const smallPub = `public_key: "sMaLLpUbLiCkEyBaSe64sMaLLpUbLiCkEyBaSe64sMa="`
	if !bytes.Contains(src, []byte(smallPub)) {
		t.Fatalf("%s: vpssmall's public key not found", topo)
	}
	src = bytes.Replace(src, []byte(smallPub), []byte(`public_key: "WrOnGpUbLiCkEyBaSe64WrOnGpUbLiCkEyBaSe64WrO="`), 1)
	if err := os.WriteFile(topo, src, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "up", "--repo", repo, "--then", bad, "--work", t.TempDir(), "--json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitRolledBack {
		t.Fatalf("rigger-sim up: %v, want exit %d\nstdout:\n%s\nstderr:\n%s", err, exitRolledBack, stdout.String(), stderr.String())
	}
	var results []HostResult
	dec := json.NewDecoder(&stdout)
	for dec.More() {
		var r HostResult
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	got := map[string]HostResult{}
	for _, r := range results {
		got[r.Revision+" "+r.Host] = r
	}
	for _, h := range []string{"vpsbig", "vpssmall"} {
		if r := got[repo+" "+h]; r.Outcome != "applied" || !r.Healthy || !r.Booted {
			t.Errorf("first revision on %s: %+v", h, r)
		}
	}
	r := got[bad+" vpsbig"]
	if r.Outcome != "rolled-back" || !strings.Contains(r.Reason, "wireguard-wg0") || r.Booted {
		t.Errorf("bad key on vpsbig: %+v, want a live change rolled back by the wireguard check", r)
	}
}
