package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/agent/gittest"
	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/apply/applytest/kill9"
	"github.com/rigger-bsd/rigger/apply/sim"
	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/bundler/clicontract/clitest"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/policy/hostdesc"
	"github.com/rigger-bsd/rigger/verify"
)

var update = flag.Bool("update", false, "update testscript files in testdata/script")

// envMain makes the test binary behave as the agent (for tests that need
// a real process they can signal with SIGTERM).
const envMain = "RIGGER_TEST_AGENT_MAIN"

func TestMain(m *testing.M) {
	sim.ServiceMain()
	// Scripts run the agent against a fake host: the scriptable applytest
	// driver stands in for "sim", steered by RIGGER_TEST_* variables,
	// unless RIGGER_TEST_REAL_SIM=1 asks for the real sim driver.
	apply.RegisterDriver("sim", func(o apply.DriverOptions) (apply.Driver, error) {
		if os.Getenv("RIGGER_TEST_REAL_SIM") == "1" {
			return sim.New(o)
		}
		return fakeHost(), nil
	})
	if os.Getenv(envMain) == "1" {
		n, _ := strconv.Atoi(os.Getenv(envKillLine))
		os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, kill9.LineWriter(os.Stderr, n)))
	}
	testscript.Main(m, map[string]func(){
		"agent": func() { os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// fakeHost is the applytest driver with knobs from the environment:
// RIGGER_TEST_FAIL_UNIT=U fails the first activation of unit U (the
// restore then succeeds), RIGGER_TEST_SLOW=D makes every activation take D,
// RIGGER_TEST_PRECHECK=msg fails every pre-check, RIGGER_TEST_BROKEN_UNIT=U
// fails every activation of unit U (so the restore fails too: degraded).
func fakeHost() *applytest.Driver {
	d := applytest.New()
	failUnit := os.Getenv("RIGGER_TEST_FAIL_UNIT")
	brokenUnit := os.Getenv("RIGGER_TEST_BROKEN_UNIT")
	slow, _ := time.ParseDuration(os.Getenv("RIGGER_TEST_SLOW"))
	var once sync.Once
	d.OnActivate = func(u verify.Unit) error {
		time.Sleep(slow)
		var err error
		if u.String() == failUnit {
			once.Do(func() { err = fmt.Errorf("%s: failed to come up", u) })
		}
		if u.String() == brokenUnit {
			err = fmt.Errorf("%s: broken", u)
		}
		return err
	}
	if msg := os.Getenv("RIGGER_TEST_PRECHECK"); msg != "" {
		d.OnPrecheck = func(string, []verify.File) error {
			return &apply.PrecheckError{Path: "/etc/pf.conf", Err: errors.New(msg)}
		}
	}
	return d
}

// TestScript runs the CLI scripts in testdata/script. Each script gets a
// loopback git server with an empty bundles branch, a CI key pinned in
// $WORK/agent.yaml (state in $WORK/state, sandbox root $WORK/root) and
// the commands documented on scriptCmds.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: *update,
		Setup:         setupScript,
		Cmds:          withContract(scriptCmds),
	})
}

type scriptWorld struct {
	srv     *gittest.Server
	repo    string
	signer  *bundle.Signer
	tree    map[string]*bundle.Built // folder → bundle, as last published
	commits []string
}

func setupScript(env *testscript.Env) error {
	srv, err := gittest.Serve(filepath.Join(env.WorkDir, ".git-server"))
	if err != nil {
		return err
	}
	env.Defer(func() { srv.Close() })
	repo, err := srv.Init("infra.git")
	if err != nil {
		return err
	}
	signer, err := bundle.GenerateSigner(bundle.Ed25519)
	if err != nil {
		return err
	}
	pub, err := signer.PublicPEM()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(env.WorkDir, "ci.pub"), pub, 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(env.WorkDir, "root", "etc"), 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf(`host: serverA
source: {url: %q, branch: bundles, timeout: 5s}
trust: {keys: [%q], threshold: 1}
interval: 60s
root: %q
state_dir: %q
driver: sim
drift: report
`, srv.URL("infra.git"), filepath.Join(env.WorkDir, "ci.pub"), filepath.Join(env.WorkDir, "root"), filepath.Join(env.WorkDir, "state"))
	if err := os.WriteFile(filepath.Join(env.WorkDir, "agent.yaml"), []byte(conf), 0o600); err != nil {
		return err
	}
	env.Setenv("CONF", filepath.Join(env.WorkDir, "agent.yaml"))
	env.Setenv("GITURL", srv.URL("infra.git"))
	env.Setenv("KEYID", signer.KeyID())
	env.Values["world"] = &scriptWorld{srv: srv, repo: repo, signer: signer, tree: map[string]*bundle.Built{}}
	return nil
}

func world(ts *testscript.TestScript) *scriptWorld { return ts.Value("world").(*scriptWorld) }

// scriptCmds are the scripts' own commands:
//
//	publish [-wave D] [-as DIR] [-gw ADDR] [-file PATH,UNIT,SRC] HOST SERIAL
//	                                          sign HOST's bundle (with the script's file SRC at PATH)
//	                                          and commit it (under DIR) with the other folders
//	forcepush N                               move the branch back to the N-th published commit
//	gitserver down|up|slow D                  stop, start or slow down the git server
//	gitcounts                                 print "info_refs=N upload_pack=M" and reset the counters
//	exitcode N PROG ARGS...                   run like exec and require exit status N (clitest)
//	waitfor FILE REGEXP                       wait up to 10 s until FILE matches
//	waitgit                                   wait up to 10 s until the git server has a request in (since gitcounts)
//	sigterm, sighup                           signal the agent holding $WORK/state/lock
//	simboot ROOT                              boot the sim host at ROOT (emulated /etc/rc)
var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	// simboot ROOT boots the sim host at ROOT (what /etc/rc does).
	"simboot": func(ts *testscript.TestScript, neg bool, args []string) {
		if len(args) != 1 {
			ts.Fatalf("usage: simboot ROOT")
		}
		if out, err := sim.Boot(ts.MkAbs(args[0])); err != nil {
			ts.Fatalf("boot: %v\n%s", err, out)
		}
	},
	"publish": func(ts *testscript.TestScript, neg bool, args []string) {
		w := world(ts)
		var wave time.Duration
		as, gw := "", ""
		var extra []topology.RenderedFile
		for len(args) > 2 && strings.HasPrefix(args[0], "-") {
			switch args[0] {
			case "-wave":
				d, err := time.ParseDuration(args[1])
				ts.Check(err)
				wave = d
			case "-as":
				as = args[1]
			case "-gw":
				gw = args[1]
			case "-file":
				// PATH,UNIT,SRC: the script's file SRC at PATH, activated as UNIT.
				f := strings.SplitN(args[1], ",", 3)
				if len(f) != 3 {
					ts.Fatalf("publish: -file PATH,UNIT,SRC")
				}
				extra = append(extra, topology.RenderedFile{Path: f[0], Unit: f[1], Content: []byte(ts.ReadFile(f[2]))})
			default:
				ts.Fatalf("publish: unknown flag %s", args[0])
			}
			args = args[2:]
		}
		if len(args) != 2 {
			ts.Fatalf("usage: publish [-wave D] [-as DIR] [-gw ADDR] HOST SERIAL")
		}
		host := args[0]
		serial, err := strconv.ParseUint(args[1], 10, 64)
		ts.Check(err)
		if as == "" {
			as = host
		}
		r := &topology.HostRender{Host: host, Wave: wave, Files: []topology.RenderedFile{
			{Path: "/etc/rc.conf", Unit: "none", Content: fmt.Appendf(nil, "hostname=%q\n# serial %d\n", host, serial)},
			{Path: "/etc/pf.conf", Unit: "pf", Content: fmt.Appendf(nil, "pass all # serial %d\n", serial)},
		}}
		for _, f := range extra {
			r.Files = slices.DeleteFunc(r.Files, func(o topology.RenderedFile) bool { return o.Path == f.Path })
			r.Files = append(r.Files, f)
		}
		if gw != "" {
			// A host description: the agent plans live steps from it.
			route, _ := hostdesc.ParseRoute("_default", "default "+gw)
			r.Desc = &hostdesc.Host{Hostname: host, Routes: []hostdesc.Route{route}}
		}
		b, err := bundle.Build(r, bundle.Meta{Serial: serial, Created: time.Now().Add(-time.Second),
			Source: verify.Source{Repo: "https://git.example.org/infra.git", Commit: strings.Repeat(strconv.FormatUint(serial, 16), 40)[:40]}})
		ts.Check(err)
		ts.Check(b.Sign(w.signer))
		w.tree[as] = b
		files := map[string][]byte{}
		for dir, b := range w.tree {
			files[dir+"/manifest.json"] = b.Envelope
			files[dir+"/files.tar.zst"] = b.Archive
		}
		c, err := gittest.Commit(w.repo, "bundles", files)
		ts.Check(err)
		w.commits = append(w.commits, c)
	},
	"forcepush": func(ts *testscript.TestScript, neg bool, args []string) {
		w := world(ts)
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 || n > len(w.commits) {
			ts.Fatalf("forcepush: want 1..%d", len(w.commits))
		}
		ts.Check(gittest.SetBranch(w.repo, "bundles", w.commits[n-1]))
	},
	"gitserver": func(ts *testscript.TestScript, neg bool, args []string) {
		w := world(ts)
		switch args[0] {
		case "down":
			ts.Check(w.srv.Stop())
		case "up":
			ts.Check(w.srv.Start())
		case "slow":
			d, err := time.ParseDuration(args[1])
			ts.Check(err)
			w.srv.SetDelay(d)
		default:
			ts.Fatalf("usage: gitserver down|up|slow D")
		}
	},
	"gitcounts": func(ts *testscript.TestScript, neg bool, args []string) {
		w := world(ts)
		c := w.srv.Counts()
		fmt.Fprintf(ts.Stdout(), "info_refs=%d upload_pack=%d\n", c.InfoRefs, c.UploadPack)
		w.srv.ResetCounts()
	},
	"waitfor": func(ts *testscript.TestScript, neg bool, args []string) {
		re := regexp.MustCompile(args[1])
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(ts.MkAbs(args[0]))
			if re.Match(b) {
				return
			}
			if time.Now().After(deadline) {
				ts.Fatalf("waitfor: %s never matched %q; last content:\n%s", args[0], args[1], b)
			}
			time.Sleep(20 * time.Millisecond)
		}
	},
	"waitgit": func(ts *testscript.TestScript, neg bool, args []string) {
		w := world(ts)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if c := w.srv.Counts(); c.InfoRefs+c.LsRefs+c.UploadPack > 0 {
				return
			}
			if time.Now().After(deadline) {
				ts.Fatalf("waitgit: no request reached the git server in 10 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
	},
	"sigterm": func(ts *testscript.TestScript, neg bool, args []string) { signalAgent(ts, syscall.SIGTERM) },
	"sighup":  func(ts *testscript.TestScript, neg bool, args []string) { signalAgent(ts, syscall.SIGHUP) },
}

// withContract adds the contract commands of clitest to cmds.
func withContract(cmds map[string]func(*testscript.TestScript, bool, []string)) map[string]func(*testscript.TestScript, bool, []string) {
	maps.Copy(cmds, clitest.Cmds)
	return cmds
}

func signalAgent(ts *testscript.TestScript, sig syscall.Signal) {
	pid := agent.Store{Dir: ts.MkAbs("state")}.LockPID()
	if pid <= 0 {
		ts.Fatalf("no agent pid in state/lock")
	}
	ts.Check(syscall.Kill(pid, sig))
}
