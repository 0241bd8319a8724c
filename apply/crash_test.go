package apply_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/apply/applytest/kill9"
	"github.com/rigger-bsd/rigger/verify"
)

// crashEnv tells a re-executed test binary to run one apply and stop at
// a step until it is killed: "DIR|MODE|STEP|I".
const crashEnv = "RIGGER_APPLY_CRASH"

// The crash tests go from serial 1 to serial 2, which adds a file over an
// unmanaged one, removes a file, modifies host and jail files, changes a
// mode only and creates a new jail's directories.
func crashGen1() *verify.Bundle {
	return mkBundle(1, append(uirig("v1"), tf{"/etc/old.conf", "none", "old\n", 0}))
}

func crashGen2() *verify.Bundle {
	files := with(uirig("v1"), "/etc/pf.conf", "pass all # v2\n")
	files = with(files, "/jails/pg_j/etc/rc.conf", "postgresql_enable=\"YES\" # v2\n")
	files = with(files, "/usr/local/etc/ssh/sshd_config", "PermitRootLogin no # v2\n")
	files[3].mode = 0o600 // sysctl.conf
	files = append(files,
		tf{"/etc/hosts", "none", "10.0.0.1 serverA # v2\n", 0},
		tf{"/jails/web_j/etc/rc.conf", "jail:web_j", "nginx_enable=\"YES\"\n", 0})
	return mkBundle(2, files)
}

// crashPrepare makes a host on serial 1 with an unmanaged /etc/hosts.
func crashPrepare(t *testing.T, dir string) *env {
	e := &env{root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state"), drv: applytest.New()}
	os.MkdirAll(filepath.Join(e.root, "etc"), 0o755)
	os.WriteFile(filepath.Join(e.root, "etc/hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
	e.reopen(t)
	if _, err := e.eng.Apply(ctx, crashGen1()); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCrashChild is the process that gets killed; see TestKill9EveryStep.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		t.Skip("helper process of TestKill9EveryStep, runs only when re-executed by it")
	}
	parts := strings.Split(spec, "|")
	dir, mode, step := parts[0], parts[1], parts[2]
	at, _ := strconv.Atoi(parts[3])
	e := &env{root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state"), drv: applytest.New()}
	e.reopen(t)
	apply.SetHook(e.eng, func(s string, i int) error {
		if s == step && i == at {
			kill9.Pause(crashPoint(s, i))
		}
		return nil
	})
	var err error
	switch mode {
	case "apply":
		_, err = e.eng.Apply(ctx, crashGen2())
	case "fail-activate":
		e.drv.OnActivate = applytest.FailUnit("jail:pg_j", errors.New("jail did not start"))
		_, err = e.eng.Apply(ctx, crashGen2())
	case "recover":
		_, err = e.eng.Recover(ctx)
	}
	os.WriteFile(filepath.Join(dir, "done"), fmt.Appendf(nil, "%v", err), 0o644)
}

// runToCrash re-executes the test binary, waits until it reaches the step
// and kills it with SIGKILL.
func runToCrash(t *testing.T, dir, mode, step string, i int) {
	t.Helper()
	kill9.At(t, kill9.Self("^TestCrashChild$", fmt.Sprintf("%s=%s|%s|%s|%d", crashEnv, dir, mode, step, i)), crashPoint(step, i))
}

// crashPoint names the i-th time the engine reaches hook step.
func crashPoint(step string, i int) string { return fmt.Sprintf("%s:%d", step, i) }

// TestKill9EveryStep kills a real process at every step of an install,
// of a rollback and of a recovery, restarts, recovers, and checks that the
// host is byte for byte on exactly one generation: serial 1 before the
// commit point, serial 2 after it.
func TestKill9EveryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary about 40 times; skipped with -short")
	}
	// The two acceptable end states, from an uninterrupted reference run.
	ref := crashPrepare(t, t.TempDir())
	want1 := snapshot(t, ref.root)
	if _, err := ref.eng.Apply(ctx, crashGen2()); err != nil {
		t.Fatal(err)
	}
	want2 := snapshot(t, ref.root)
	if diffSnap(want1, want2) == "" {
		t.Fatal("serials 1 and 2 look the same on disk")
	}

	type point struct {
		mode, step string
		i          int
		committed  bool
	}
	var points []point
	add := func(mode, step string, n int, committed bool) {
		for i := range n {
			points = append(points, point{mode, step, i, committed})
		}
	}
	add("apply", apply.HookStaged, 1, false)
	add("apply", apply.HookPrechecked, 1, false)
	// Six targets exist before; generation 1 keeps the bytes of five, so
	// backup.tar has one entry: the unmanaged /etc/hosts.
	points = append(points, point{"apply", apply.HookBackup, 1, false})
	add("apply", apply.HookJournaled, 1, false)
	add("apply", apply.HookInstallTemp, 1, false) // every temp file written, none renamed
	add("apply", apply.HookInstall, 7, false)     // before rename (or removal) i
	add("apply", apply.HookInstalled, 1, false)
	add("apply", apply.HookGenStored, 1, false)
	add("apply", apply.HookActivate, 5, false)
	add("apply", apply.HookHealth, 1, false)
	add("apply", apply.HookCommitting, 1, false)
	add("apply", apply.HookCommitted, 1, true)
	add("fail-activate", apply.HookRestore, 7, false)
	add("fail-activate", apply.HookReactivate, 1, false)

	for _, p := range points {
		t.Run(fmt.Sprintf("%s/%s:%d", p.mode, p.step, p.i), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			e := crashPrepare(t, dir)
			runToCrash(t, dir, p.mode, p.step, p.i)
			e.drv = applytest.New()
			e.reopen(t)
			r, err := e.eng.Recover(ctx)
			if err != nil {
				t.Fatalf("recover: %v", err)
			}
			want, serial := want1, uint64(1)
			if p.committed {
				want, serial = want2, 2
			}
			if d := diffSnap(want, snapshot(t, e.root)); d != "" {
				t.Fatalf("host is not on serial %d:\n%s", serial, d)
			}
			if s := currentSerial(t, e.eng); s != serial {
				t.Errorf("current %d, want %d", s, serial)
			}
			if gens, _ := e.eng.Generations(); len(gens) != int(serial) {
				t.Errorf("generations %v", serials(gens))
			}
			assertClean(t, e.state)
			journalled := p.step != apply.HookStaged && p.step != apply.HookPrechecked && p.step != apply.HookBackup
			switch {
			case !journalled && r != nil:
				t.Errorf("recovery %+v before the journal existed", r)
			case journalled && (r == nil || r.Serial != 2 || r.RolledBack == p.committed):
				t.Errorf("recovery %+v", r)
			}
			// The reason names the step the transaction had reached
			// (journal.step: activate; the journal itself: the others).
			if journalled && !p.committed {
				want := "interrupted during install"
				switch {
				case p.mode == "fail-activate":
					want = "interrupted during rollback"
				case p.step == apply.HookActivate || p.step == apply.HookHealth || p.step == apply.HookCommitting:
					want = "interrupted during activate"
				}
				if r != nil && r.Reason != want {
					t.Errorf("recovery reason %q, want %q", r.Reason, want)
				}
			}
			// A rollback re-activates every unit of the transaction (a
			// boot may have started services on mixed files), but for
			// web_j, new in serial 2: it is stopped instead.
			acts := e.drv.Activations()
			if journalled && !p.committed {
				if !eq(acts, []string{"sysctl", "pf", "jail:pg_j", "service:sshd"}) {
					t.Errorf("re-activated %v, want the 4 units of serial 1 in order", acts)
				}
				if !slices.Contains(e.drv.Calls(), "deactivate jail:web_j") {
					t.Errorf("calls %v: want web_j stopped", e.drv.Calls())
				}
			}
			if (!journalled || p.committed) && len(acts) != 0 {
				t.Errorf("activated %v, want nothing", acts)
			}
			// And the engine goes on: serial 2 applies cleanly now.
			if !p.committed {
				if _, err := e.eng.Apply(ctx, crashGen2()); err != nil {
					t.Fatal(err)
				}
				if d := diffSnap(want2, snapshot(t, e.root)); d != "" {
					t.Errorf("re-apply differs:\n%s", d)
				}
			}
		})
	}

	// A crash during the recovery itself: recovering again finishes it.
	t.Run("recover-killed-mid-restore", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		e := crashPrepare(t, dir)
		runToCrash(t, dir, "apply", apply.HookActivate, 2)
		runToCrash(t, dir, "recover", apply.HookRestore, 3)
		e.drv = applytest.New()
		e.reopen(t)
		r, err := e.eng.Recover(ctx)
		if err != nil || r == nil || !r.RolledBack {
			t.Fatalf("recover %+v %v", r, err)
		}
		if d := diffSnap(want1, snapshot(t, e.root)); d != "" {
			t.Fatalf("host is not on serial 1:\n%s", d)
		}
		assertClean(t, e.state)
	})
}
