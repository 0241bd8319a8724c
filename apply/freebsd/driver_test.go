package freebsd

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/freebsd/layout"
	"github.com/rigger-bsd/rigger/verify"
)

// step is one expected command and the recorded reply.
type step struct {
	argv  []string // "*" matches any single argument
	reply func(t *testing.T, argv []string) Result
}

// fakeOS replays recorded outputs and fails the test on any command it
// was not told to expect, in order (tailscale's fakeOS pattern).
type fakeOS struct {
	t     *testing.T
	mu    sync.Mutex
	steps []step
	calls []string
}

func (f *fakeOS) Run(_ context.Context, argv ...string) (Result, error) {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, strings.Join(argv, " "))
	if len(f.steps) == 0 {
		f.t.Fatalf("unexpected command %q", argv)
	}
	s := f.steps[0]
	f.steps = f.steps[1:]
	if !match(s.argv, argv) {
		f.t.Fatalf("command %q, want %q", argv, s.argv)
	}
	if s.reply == nil {
		return Result{}, nil
	}
	return s.reply(f.t, argv), nil
}

func (f *fakeOS) done() {
	f.t.Helper()
	if len(f.steps) > 0 {
		f.t.Fatalf("expected commands not run: %v (ran %q)", f.steps[0].argv, f.calls)
	}
}

func match(pat, argv []string) bool {
	if len(pat) != len(argv) {
		return false
	}
	for i := range pat {
		if pat[i] != "*" && pat[i] != argv[i] {
			return false
		}
	}
	return true
}

func recorded(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// out replies with a recorded stdout/stderr and exit code. In pfctl and sh
// outputs, the recorded /etc/pf.conf or /etc/rc.conf stands for the last
// argument (the file the tool was given).
func out(stdout, stderr string, code int) func(*testing.T, []string) Result {
	return func(t *testing.T, argv []string) Result {
		r := Result{ExitCode: code}
		if stdout != "" {
			r.Stdout = recorded(t, stdout)
		}
		if stderr != "" {
			e := string(recorded(t, stderr))
			last := argv[len(argv)-1]
			e = strings.ReplaceAll(e, "/etc/pf.conf:", last+":")
			e = strings.ReplaceAll(e, "/etc/rc.conf:", last+":")
			r.Stderr = []byte(e)
		}
		return r
	}
}

func newDriver(t *testing.T, root string, steps ...step) (*Driver, *fakeOS) {
	f := &fakeOS{t: t, steps: steps}
	t.Cleanup(f.done)
	return New(apply.DriverOptions{Root: root}, f), f
}

func write(t *testing.T, root, p, content string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const pfConf = `ext = "xnic"
table <martians> persist file "/etc/ips_martians"
table <blocklist> persist file "/etc/ips_blocklist"
table <ratelimit> persist
include "/etc/pf.d/tunnels.conf"
block in all
`

// stageTree lays out a staged bundle and returns its manifest files.
func stageTree(t *testing.T) (string, []verify.File) {
	stage := filepath.Join(t.TempDir(), "stage")
	files := map[string]string{
		"/etc/pf.conf":            pfConf,
		"/etc/ips_martians":       "10.0.0.0/8\n",
		"/etc/pf.d/tunnels.conf":  "table <peers> file \"/etc/ips_peers\"\npass in proto tcp to port 5433\n",
		"/etc/ips_peers":          "192.0.2.7\n",
		"/etc/jail.conf":          "path = \"/jails/$name\";\npg_j { vnet; vnet.interface = pg_b; }\n",
		"/etc/rc.conf":            "pf_enable=\"YES\"\n",
		"/jails/pg_j/etc/rc.conf": "spiped_enable=\"YES\"\n",
		"/usr/local/etc/rigger/x": "not checked\n",
	}
	var mf []verify.File
	for p, c := range files {
		write(t, stage, p, c)
		unit := "none"
		if p == "/etc/ips_martians" {
			unit = "pf-table:martians"
		}
		mf = append(mf, verify.File{Path: p, Unit: unit})
	}
	return stage, mf
}

func TestPrecheckUsesStagedTableFiles(t *testing.T) {
	stage, files := stageTree(t)
	var pfSrc, incSrc string
	// pf first; the others in manifest order, so in any order here.
	run := &anyOrder{t: t, rest: map[string]Result{
		"kldload -n pf": {},
		"jail -f " + filepath.Join(stage, "etc/jail.conf") + " -e ,": {},
	}, firstStep: step{argv: []string{"pfctl", "-n", "-f", "*"}, reply: func(t *testing.T, argv []string) Result {
		b, err := os.ReadFile(argv[3])
		if err != nil {
			t.Fatal(err)
		}
		pfSrc = string(b)
		inc := strings.Split(strings.Split(pfSrc, `include "`)[1], `"`)[0]
		b, err = os.ReadFile(inc)
		if err != nil {
			t.Fatalf("rewritten include %s: %v", inc, err)
		}
		incSrc = string(b)
		return Result{}
	}}}
	d := New(apply.DriverOptions{Root: "/"}, run)
	if err := d.Precheck(context.Background(), stage, files); err != nil {
		t.Fatal(err)
	}
	if want := `file "` + filepath.Join(stage, "etc/ips_martians") + `"`; !strings.Contains(pfSrc, want) {
		t.Errorf("pf.conf given to pfctl lacks %s:\n%s", want, pfSrc)
	}
	if !strings.Contains(pfSrc, `file "/etc/ips_blocklist"`) {
		t.Errorf("unstaged table file should keep its host path:\n%s", pfSrc)
	}
	if want := `file "` + filepath.Join(stage, "etc/ips_peers") + `"`; !strings.Contains(incSrc, want) {
		t.Errorf("included file lacks %s:\n%s", want, incSrc)
	}
	if strings.Count(pfSrc, "\n") != strings.Count(pfConf, "\n") {
		t.Error("rewrite changed pf.conf's line count")
	}
	if len(run.rest) > 0 {
		t.Errorf("checks not run: %v", run.rest)
	}
	if left, _ := os.ReadDir(filepath.Dir(stage)); len(left) != 1 {
		t.Errorf("files beside the stage: %v", left)
	}
}

// TestPrecheckRewritesStageOnce: the staged pf.conf, its include and
// jail.conf are rewritten in place, and a second pre-check of the same
// stage gives the tools the same files (a path rewritten to the stage is
// not mapped under the root again).
func TestPrecheckRewritesStageOnce(t *testing.T) {
	stage, files := stageTree(t)
	write(t, stage, "/etc/jail.conf", ".include \"/etc/jail.conf.d/*.conf\";\n")
	write(t, stage, "/etc/jail.conf.d/pg_j.conf", "pg_j { vnet; }\n")
	files = append(files, verify.File{Path: "/etc/jail.conf.d/pg_j.conf", Unit: "jail:pg_j"})
	root := t.TempDir()
	// rounds[i]: the file each tool was given in pre-check i, by path
	// (the tools run together: in no set order).
	var mu sync.Mutex
	var rounds []map[string]string
	d := New(apply.DriverOptions{Root: root}, runFunc(func(argv []string) Result {
		if argv[0] == "pfctl" || argv[0] == "jail" {
			name := argv[2+map[string]int{"pfctl": 1, "jail": 0}[argv[0]]]
			b, err := os.ReadFile(name)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			rounds[len(rounds)-1][argv[0]+" "+name] = string(b)
			mu.Unlock()
		}
		return Result{}
	}))
	for range 2 {
		rounds = append(rounds, map[string]string{})
		if err := d.Precheck(context.Background(), stage, files); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	for _, k := range slices.Sorted(maps.Keys(rounds[0])) {
		seen = append(seen, rounds[0][k])
	}
	inc, err := os.ReadFile(filepath.Join(stage, "etc/pf.d/tunnels.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`file "` + filepath.Join(stage, "etc/ips_martians") + `"`,
		`file "` + filepath.Join(root, "etc/ips_blocklist") + `"`, // not in the bundle: the host's
		`include "` + filepath.Join(stage, "etc/pf.d/tunnels.conf") + `"`,
		`.include "` + filepath.Join(stage, "etc/jail.conf.d") + `/*.conf"`,
	} {
		if !strings.Contains(strings.Join(seen, ""), want) {
			t.Errorf("files given to the tools lack %s:\n%s", want, strings.Join(seen, "\n"))
		}
	}
	if want := `file "` + filepath.Join(stage, "etc/ips_peers") + `"`; !strings.Contains(string(inc), want) {
		t.Errorf("staged include lacks %s:\n%s", want, inc)
	}
	if len(rounds[0]) != 3 || !maps.Equal(rounds[0], rounds[1]) {
		t.Errorf("second pre-check saw other files:\n%v\n----\n%v", rounds[0], rounds[1])
	}
}

// anyOrder expects firstStep once (after rest's "kldload -n pf", which
// must come before it), then each of rest exactly once.
type anyOrder struct {
	t         *testing.T
	mu        sync.Mutex // the pre-check runs its sh -n checks together
	firstStep step
	began     bool
	rest      map[string]Result
}

func (a *anyOrder) Run(_ context.Context, argv ...string) (Result, error) {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.began && match(a.firstStep.argv, argv) {
		a.began = true
		if _, ok := a.rest["kldload -n pf"]; ok {
			a.t.Fatalf("%q before kldload -n pf", argv)
		}
		return a.firstStep.reply(a.t, argv), nil
	}
	k := strings.Join(argv, " ")
	r, ok := a.rest[k]
	if !ok {
		a.t.Fatalf("unexpected command %q (left: %v)", k, a.rest)
	}
	delete(a.rest, k)
	return r, nil
}

func TestPrecheckErrorsNameHostPaths(t *testing.T) {
	stage, files := stageTree(t)
	write(t, stage, "/etc/ips_martians", "10.0.0.300\n")
	// Not plain assignments, so sh -n runs (and answers as recorded).
	write(t, stage, "/etc/rc.conf", "pf_enable=\"YES\"\n\nx=\"${y}\"\n")
	write(t, stage, "/jails/pg_j/etc/rc.conf", "spiped_enable=\"YES\"\n\nx=\"${y}\"\n")
	replies := map[string]func(*testing.T, []string) Result{
		"kldload": out("", "", 0),
		"pfctl":   out("", "pfctl_nf_errors.stderr", 1),
		"jail":    out("", "jail_e_syntax.stderr", 1),
		"sh":      out("", "sh_n_unterminated.stderr", 2),
	}
	d := New(apply.DriverOptions{Root: "/"}, runFunc(func(argv []string) Result {
		if argv[0] == "jail" {
			r := replies["jail"](t, argv)
			r.Stderr = []byte(strings.ReplaceAll(string(r.Stderr), "/etc/jail.conf", argv[2]))
			return r
		}
		return replies[argv[0]](t, argv)
	}))
	err := d.Precheck(context.Background(), stage, files)
	if err == nil {
		t.Fatal("Precheck passed broken files")
	}
	msg := err.Error()
	for _, want := range []string{
		"/etc/pf.conf:3: syntax error",
		"/etc/pf.conf:9: macro 'pg_port' not defined",
		"/etc/ips_martians:1:",
		"/etc/jail.conf:7: }: syntax error",
		"/etc/rc.conf:3: Syntax error: Unterminated quoted string",
		"/jails/pg_j/etc/rc.conf:3: Syntax error",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, stage) || strings.Contains(msg, ".pfcheck-") {
		t.Errorf("error leaks staging paths:\n%s", msg)
	}
	var fe *layout.FileError
	if !errors.As(err, &fe) {
		t.Errorf("error is not a FileError: %T", err)
	}
	var pe *apply.PrecheckError
	if !errors.As(err, &pe) || pe.Path != "/etc/pf.conf" {
		t.Errorf("error is not a PrecheckError naming /etc/pf.conf: %#v", pe)
	}
}

func TestPrecheckCannotLoadTableFile(t *testing.T) {
	stage, files := stageTree(t)
	d := New(apply.DriverOptions{Root: "/"}, runFunc(func(argv []string) Result {
		if argv[0] != "pfctl" {
			return Result{}
		}
		// pfctl names the table file as written in the (rewritten) pf.conf.
		e := strings.ReplaceAll(string(recorded(t, "pfctl_nf_cannot_load.stderr")), `"/etc/ips_martians"`, `"`+filepath.Join(stage, "etc/ips_martians")+`"`)
		e = strings.ReplaceAll(e, "/etc/pf.conf:", argv[3]+":")
		return Result{ExitCode: 1, Stderr: []byte(e)}
	}))
	err := d.Precheck(context.Background(), stage, files)
	if err == nil || !strings.Contains(err.Error(), `/etc/pf.conf:4: cannot load "/etc/ips_martians": Invalid argument`) {
		t.Fatalf("err = %v", err)
	}
}

func TestPrecheckNeedsPF(t *testing.T) {
	stage, files := stageTree(t)
	d := New(apply.DriverOptions{Root: "/"}, runFunc(func(argv []string) Result {
		if argv[0] != "pfctl" {
			return Result{}
		}
		return Result{ExitCode: 1, Stderr: recorded(t, "pfctl_netlink_noent.stderr")}
	}))
	err := d.Precheck(context.Background(), stage, files)
	if err == nil || !strings.Contains(err.Error(), "/etc/pf.conf: Failed to open netlink: No such file or directory") {
		t.Fatalf("err = %v", err)
	}
}

type runFunc func(argv []string) Result

// TestPrecheckShChecksTogether: the sh -n checks of the rc files run at
// the same time (each is a process; one per jail adds up). Every sh -n
// waits until all of them have started: run one after the other, the
// first would wait in vain.
func TestPrecheckShChecksTogether(t *testing.T) {
	stage, files := stageTree(t)
	var want int
	for _, f := range files {
		if layout.IsRCFile(f.Path) && !layout.IsJailConf(f.Path) {
			// Not plain assignments: sh -n runs.
			write(t, stage, f.Path, "x=\"$y\"\n")
			want++
		}
	}
	if want < 2 {
		t.Fatalf("stage tree has %d rc files; the test needs two or more", want)
	}
	var mu sync.Mutex
	started := 0
	all := make(chan struct{})
	d := New(apply.DriverOptions{Root: "/"}, runFunc(func(argv []string) Result {
		if argv[0] != "sh" {
			return Result{}
		}
		mu.Lock()
		if started++; started == want {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			return Result{}
		case <-time.After(time.Minute):
			return Result{ExitCode: 2, Stderr: []byte(argv[2] + ": 1: the other sh -n checks never started\n")}
		}
	}))
	if err := d.Precheck(context.Background(), stage, files); err != nil {
		t.Fatal(err)
	}
}

func (f runFunc) Run(_ context.Context, argv ...string) (Result, error) { return f(argv), nil }

func TestActivatePF(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "etc/pf.conf")
	d, f := newDriver(t, root,
		step{argv: []string{"kldload", "-n", "pf"}},
		step{argv: []string{"pfctl", "-n", "-f", conf}},
		step{argv: []string{"pfctl", "-f", conf}},
		step{argv: []string{"pfctl", "-s", "info"}, reply: out("pfctl_s_info_disabled.txt", "", 0)},
		step{argv: []string{"pfctl", "-e"}, reply: out("", "pfctl_e.stderr", 0)},
	)
	if err := d.Activate(context.Background(), verify.Unit{Kind: verify.UnitPF}); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.calls {
		if strings.Contains(c, "service pf") || strings.Contains(c, "-F") {
			t.Errorf("must never flush or restart pf: %q", c)
		}
	}
}

func TestActivatePFRefusesBrokenRules(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "etc/pf.conf")
	d, _ := newDriver(t, root,
		step{argv: []string{"kldload", "-n", "pf"}},
		step{argv: []string{"pfctl", "-n", "-f", conf}, reply: out("", "pfctl_nf_errors.stderr", 1)},
	)
	err := d.Activate(context.Background(), verify.Unit{Kind: verify.UnitPF})
	if err == nil || !strings.Contains(err.Error(), conf+":3: syntax error") {
		t.Fatalf("err = %v", err)
	}
}

func TestActivatePFLoadFails(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "etc/pf.conf")
	d, _ := newDriver(t, root,
		step{argv: []string{"kldload", "-n", "pf"}},
		step{argv: []string{"pfctl", "-n", "-f", conf}},
		step{argv: []string{"pfctl", "-f", conf}, reply: out("", "pfctl_f_syntax.stderr", 1)},
	)
	err := d.Activate(context.Background(), verify.Unit{Kind: verify.UnitPF})
	var ce *CommandError
	if !errors.As(err, &ce) || ce.ExitCode != 1 || !strings.Contains(ce.Output, "pf rules not loaded") {
		t.Fatalf("err = %v", err)
	}
}

func TestActivateTable(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/etc/pf.conf", pfConf)
	write(t, root, "/etc/pf.d/tunnels.conf", "table <peers> file \"/etc/ips_peers\" file \"/etc/ips_peers2\"\n")
	write(t, root, "/etc/ips_peers", "192.0.2.7\n")
	write(t, root, "/etc/ips_peers2", "192.0.2.8\n")
	tables := step{argv: []string{"pfctl", "-s", "Tables"}, reply: func(*testing.T, []string) Result {
		return Result{Stdout: []byte("blocklist\nmartians\npeers\nratelimit\n")}
	}}
	d, _ := newDriver(t, root,
		tables,
		step{argv: []string{"pfctl", "-t", "martians", "-T", "replace", "-f", filepath.Join(root, "etc/ips_martians")}, reply: out("", "pfctl_T_replace.stderr", 0)},
		tables,
		step{argv: []string{"pfctl", "-t", "peers", "-T", "replace", "-f", "*"}, reply: func(t *testing.T, argv []string) Result {
			b, err := os.ReadFile(argv[6])
			if err != nil || string(b) != "192.0.2.7\n\n192.0.2.8\n\n" {
				t.Errorf("concatenated table file = %q, %v", b, err)
			}
			return Result{}
		}},
		tables,
		step{argv: []string{"pfctl", "-t", "blocklist", "-T", "replace", "-f", filepath.Join(root, "etc/ips_blocklist")}, reply: out("", "pfctl_T_notable.stderr", 255)},
	)
	ctx := context.Background()
	if err := d.Activate(ctx, verify.Unit{Kind: verify.UnitPFTable, Name: "martians"}); err != nil {
		t.Fatal(err)
	}
	if err := d.Activate(ctx, verify.Unit{Kind: verify.UnitPFTable, Name: "peers"}); err != nil {
		t.Fatal(err)
	}
	err := d.Activate(ctx, verify.Unit{Kind: verify.UnitPFTable, Name: "blocklist"})
	if err == nil || !strings.Contains(err.Error(), "Table does not exist") {
		t.Fatalf("blocklist: err = %v", err)
	}
	for _, tc := range []struct{ table, want string }{
		{"ratelimit", "declared without a file"},
		{"nosuch", "not declared in /etc/pf.conf"},
	} {
		err := d.Activate(ctx, verify.Unit{Kind: verify.UnitPFTable, Name: tc.table})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.table, err, tc.want)
		}
	}
}

// TestActivateTableUnsafeReplace: `pfctl -T replace -f F` replaces the
// whole table (sbin/pfctl/pfctl_table.c): it would drop a declaration's
// inline addresses, a const table refuses it, and a table missing from the
// loaded ruleset would be created persistent. Those get a full reload of
// the rules instead (which rereads every table file), never -T replace.
func TestActivateTableUnsafeReplace(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, table, decl string
		listTables        bool
	}{
		{"inline addresses", "martians", `table <martians> { 10.0.0.0/8 } file "/etc/ips_martians"`, false},
		{"const", "martians", `table <martians> const file "/etc/ips_martians"`, false},
		// pfctl_s_tables.txt lists blocklist, martians and ratelimit.
		{"not in the loaded ruleset", "payments", `table <payments> file "/etc/ips_payments"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, root, "/etc/pf.conf", tc.decl+"\nblock in from <"+tc.table+">\n")
			conf := filepath.Join(root, "etc/pf.conf")
			var steps []step
			if tc.listTables {
				steps = append(steps, step{argv: []string{"pfctl", "-s", "Tables"}, reply: out("pfctl_s_tables.txt", "", 0)})
			}
			steps = append(steps,
				step{argv: []string{"kldload", "-n", "pf"}},
				step{argv: []string{"pfctl", "-n", "-f", conf}},
				step{argv: []string{"pfctl", "-f", conf}},
			)
			d, f := newDriver(t, root, steps...)
			if err := d.Activate(ctx, verify.Unit{Kind: verify.UnitPFTable, Name: tc.table}); err != nil {
				t.Fatal(err)
			}
			for _, c := range f.calls {
				if strings.Contains(c, "-T replace") || strings.Contains(c, "pfctl -e") {
					t.Errorf("ran %q", c)
				}
			}
		})
	}
}

// TestDeactivateJail: a jail whose files a rollback removes is stopped
// through its still-present config, and jls must no longer list it.
func TestDeactivateJail(t *testing.T) {
	ctx := context.Background()
	jls := []string{"jls", "--libxo", "json", "-v", "-j", "pg_j"}
	stop := []string{"service", "jail", "stop", "pg_j"}
	pgj := verify.Unit{Kind: verify.UnitJail, Jail: "pg_j"}
	t.Run("stopped", func(t *testing.T) {
		d, _ := newDriver(t, "/",
			step{argv: stop, reply: out("service_jail_stop_ok.txt", "", 0)},
			step{argv: jls, reply: out("", "jls_notfound.stderr", 1)},
		)
		if err := d.Deactivate(ctx, pgj); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("still running", func(t *testing.T) {
		d, _ := newDriver(t, "/",
			step{argv: stop, reply: out("service_jail_stop_ok.txt", "", 0)},
			step{argv: jls, reply: out("jls_v_pg_j.json", "", 0)},
		)
		if err := d.Deactivate(ctx, pgj); err == nil || !strings.Contains(err.Error(), "still running") {
			t.Fatalf("err = %v, want still running", err)
		}
	})
	t.Run("other kinds run nothing", func(t *testing.T) {
		d, _ := newDriver(t, "/") // any command fails the test
		for _, u := range []verify.Unit{{Kind: verify.UnitPF}, {Kind: verify.UnitService, Name: "sshd"}} {
			if err := d.Deactivate(ctx, u); err != nil {
				t.Errorf("%s: %v", u, err)
			}
		}
	})
}

func TestActivateJail(t *testing.T) {
	ctx := context.Background()
	jls := []string{"jls", "--libxo", "json", "-v", "-j", "pg_j"}
	restart := []string{"service", "jail", "restart", "pg_j"}
	t.Run("started", func(t *testing.T) {
		d, _ := newDriver(t, "/",
			step{argv: restart, reply: out("service_jail_restart_ok.txt", "", 0)},
			step{argv: jls, reply: out("jls_v_pg_j.json", "", 0)},
		)
		if err := d.Activate(ctx, verify.Unit{Kind: verify.UnitJail, Jail: "pg_j"}); err != nil {
			t.Fatal(err)
		}
	})
	for _, tc := range []struct{ rec, want string }{
		{"service_jail_restart_nopath.txt", "jail: pg_j: path /jails/pg_j: No such file or directory"},
		{"service_jail_restart_vnet.txt", "ifconfig: interface pg_b does not exist; jail: pg_j: /sbin/ifconfig pg_b vnet pg_j: failed"},
	} {
		t.Run(tc.rec, func(t *testing.T) {
			// rc.d/jail exits 0 on failure: only jls tells.
			d, _ := newDriver(t, "/",
				step{argv: restart, reply: out(tc.rec, "", 0)},
				step{argv: jls, reply: out("", "jls_notfound.stderr", 1)},
			)
			err := d.Activate(ctx, verify.Unit{Kind: verify.UnitJail, Jail: "pg_j"})
			var je *JailStartError
			if !errors.As(err, &je) || je.Jail != "pg_j" || je.Reason != tc.want {
				t.Fatalf("err = %#v (%v), want reason %q", je, err, tc.want)
			}
		})
	}
	t.Run("silent failure", func(t *testing.T) {
		d, _ := newDriver(t, "/",
			step{argv: restart, reply: out("service_jail_restart_ok.txt", "", 0)},
			step{argv: jls, reply: out("", "jls_dying.stderr", 1)},
		)
		err := d.Activate(ctx, verify.Unit{Kind: verify.UnitJail, Jail: "pg_j"})
		var je *JailStartError
		if !errors.As(err, &je) || !strings.Contains(je.Reason, "not running") {
			t.Fatalf("a dying jail passed: %v", err)
		}
	})
}

func TestJailRunning(t *testing.T) {
	jls := []string{"jls", "--libxo", "json", "-v", "-j", "pg_j"}
	for _, tc := range []struct {
		reply   func(*testing.T, []string) Result
		want    bool
		wantErr bool
	}{
		{out("jls_v_pg_j.json", "", 0), true, false},
		{out("", "jls_dying.stderr", 1), false, false},
		{out("", "jls_notfound.stderr", 1), false, false},
		{func(*testing.T, []string) Result {
			return Result{ExitCode: 1, Stderr: []byte("jls: sysctl: Operation not permitted\n")}
		}, false, true},
	} {
		d, _ := newDriver(t, "/", step{argv: jls, reply: tc.reply})
		got, err := d.JailRunning(context.Background(), "pg_j")
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("JailRunning = %v, %v; want %v, err %v", got, err, tc.want, tc.wantErr)
		}
	}
}

func TestPFEnabled(t *testing.T) {
	info := []string{"pfctl", "-s", "info"}
	rules := []string{"pfctl", "-s", "rules"}
	for name, tc := range map[string]struct {
		steps   []step
		want    bool
		wantErr bool
	}{
		"enabled":    {[]step{{info, out("pfctl_s_info_enabled.txt", "", 0)}, {rules, out("pfctl_s_rules.txt", "", 0)}}, true, false},
		"no rules":   {[]step{{info, out("pfctl_s_info_enabled.txt", "", 0)}, {rules, nil}}, false, false},
		"disabled":   {[]step{{info, out("pfctl_s_info_disabled.txt", "", 0)}}, false, false},
		"not loaded": {[]step{{info, out("", "pfctl_netlink_noent.stderr", 1)}}, false, false},
		"not root":   {[]step{{info, out("", "pfctl_netlink_perm.stderr", 1)}}, false, true},
	} {
		t.Run(name, func(t *testing.T) {
			d, _ := newDriver(t, "/", tc.steps...)
			got, err := d.PFEnabled(context.Background())
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("PFEnabled = %v, %v; want %v, err %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestActivateServicesAndNetif(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/etc/sysctl.conf", "net.inet.ip.forwarding=1\n")
	d, f := newDriver(t, root,
		step{argv: []string{"service", "-j", "pg_j", "postgresql", "restart"}},
		step{argv: []string{"service", "sshd", "restart"}},
		step{argv: []string{"sysctl", "-f", filepath.Join(root, "etc/sysctl.conf")}},
		step{argv: []string{"service", "netif", "restart", "ngx_a"}},
		step{argv: []string{"ifconfig", "ngx_a"}},
		step{argv: []string{"service", "nginx", "restart"}, reply: out("service_restart_not_enabled.txt", "", 0)},
	)
	ctx := context.Background()
	for _, u := range []string{"jail-service:pg_j:postgresql", "service:sshd", "sysctl", "netif:ngx_a", "cron", "none", "reboot-required"} {
		unit, err := verify.ParseUnit(u)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Activate(ctx, unit); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
	}
	err := d.Activate(ctx, verify.Unit{Kind: verify.UnitService, Name: "nginx"})
	if err == nil || !strings.Contains(err.Error(), `set nginx_enable="YES" in /etc/rc.conf`) {
		t.Fatalf("err = %v", err)
	}
	want := []string{"service -j pg_j postgresql restart", "service sshd restart", "sysctl -f " + filepath.Join(root, "etc/sysctl.conf"), "service netif restart ngx_a", "ifconfig ngx_a", "service nginx restart"}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls = %q\nwant %q", f.calls, want)
	}
}

func TestActivateWireGuard(t *testing.T) {
	ctx := context.Background()
	stripped := "[Interface]\nPrivateKey = x\n"
	d, _ := newDriver(t, "/",
		step{argv: []string{"wg", "show", "wg0"}},
		step{argv: []string{"wg-quick", "strip", "wg0"}, reply: func(*testing.T, []string) Result { return Result{Stdout: []byte(stripped)} }},
		step{argv: []string{"wg", "syncconf", "wg0", "*"}, reply: func(t *testing.T, argv []string) Result {
			b, err := os.ReadFile(argv[3])
			if err != nil || string(b) != stripped {
				t.Errorf("syncconf file = %q, %v", b, err)
			}
			if fi, err := os.Stat(argv[3]); err == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("stripped config mode %v, want 0600 (private key)", fi.Mode())
			}
			return Result{}
		}},
		step{argv: []string{"wg", "show", "wg1"}, reply: func(*testing.T, []string) Result {
			return Result{ExitCode: 1, Stderr: []byte("Unable to access interface: No such file or directory\n")}
		}},
		step{argv: []string{"wg-quick", "up", "wg1"}},
	)
	for _, u := range []string{"wireguard:wg0", "wireguard:wg1"} {
		unit, _ := verify.ParseUnit(u)
		if err := d.Activate(ctx, unit); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
	}
}

func TestParseJLSDefault(t *testing.T) {
	js, err := ParseJLS(recorded(t, "jls_default.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []JailInfo{
		{JID: 3, Hostname: "node_j.example.org", Path: "/jails/node_j"},
		{JID: 4, Hostname: "nginx_j", Path: "/jails/nginx_j", IPv4: []string{"10.0.2.40"}},
	}
	if !reflect.DeepEqual(js, want) {
		t.Errorf("ParseJLS = %+v\nwant %+v", js, want)
	}
	if _, err := ParseJLS([]byte(`{"__version": "1", "jail-information": {"jail": []}}`)); err == nil {
		t.Error("accepted an unknown libxo version")
	}
}

func TestExecRunner(t *testing.T) {
	r, err := ExecRunner{}.Run(context.Background(), "sh", "-c", "echo out; echo err >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode != 3 || string(r.Stdout) != "out\n" || string(r.Stderr) != "err\n" {
		t.Errorf("Run = %+v", r)
	}
	if _, err := (ExecRunner{}).Run(context.Background(), "/nonexistent/tool"); err == nil {
		t.Error("a missing binary is an error")
	}
}

func TestRegistered(t *testing.T) {
	d, err := apply.NewDriver("freebsd", apply.DriverOptions{Root: "/"})
	if err != nil || d.Name() != "freebsd" {
		t.Fatalf("NewDriver = %v, %v", d, err)
	}
}

func FuzzParseJLS(f *testing.F) {
	for _, n := range []string{"jls_v_pg_j.json", "jls_default.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { ParseJLS(b) })
}

func FuzzParseToolErrors(f *testing.F) {
	for _, n := range []string{"pfctl_nf_errors.stderr", "jail_e_syntax.stderr", "sh_n_unterminated.stderr", "pfctl_f_syntax.stderr"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, e := range layout.ParseToolErrors(b, "/etc/pf.conf", func(s string) string { return s }) {
			var fe *layout.FileError
			if !errors.As(e, &fe) || fe.File == "" || fe.Line < 0 {
				t.Fatalf("bad error %#v", e)
			}
		}
	})
}

// Under a root other than /, files the bundle does not carry are read
// from the root, never from the live host.
func TestPrecheckUnderRoot(t *testing.T) {
	stage, files := stageTree(t)
	root := t.TempDir()
	var pfSrc string
	d := New(apply.DriverOptions{Root: root}, runFunc(func(argv []string) Result {
		if argv[0] == "pfctl" {
			b, _ := os.ReadFile(argv[3])
			pfSrc = string(b)
		}
		return Result{}
	}))
	if err := d.Precheck(context.Background(), stage, files); err != nil {
		t.Fatal(err)
	}
	if want := `file "` + filepath.Join(root, "etc/ips_blocklist") + `"`; !strings.Contains(pfSrc, want) {
		t.Errorf("pf.conf given to pfctl lacks %s:\n%s", want, pfSrc)
	}
}

// TestServiceNotEnabled: rc.subr's run_rc_command prints `Cannot 'restart'
// X. Set X_enable to YES ...` and returns 0 when X is not enabled. The
// command did nothing, so the unit fails and names the rcvar to set.
func TestServiceNotEnabled(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		unit  string
		argv  []string
		rec   string
		rcvar string
		where string
	}{
		{"service:nginx", []string{"service", "nginx", "restart"}, "service_restart_not_enabled.txt", "nginx_enable", "in /etc/rc.conf"},
		{"jail-service:pg_j:nginx", []string{"service", "-j", "pg_j", "nginx", "restart"}, "service_restart_not_enabled.txt", "nginx_enable", "in jail pg_j's /etc/rc.conf"},
		{"jail:pg_j", []string{"service", "jail", "restart", "pg_j"}, "service_jail_restart_not_enabled.txt", "jail_enable", "in /etc/rc.conf"},
	} {
		t.Run(tc.unit, func(t *testing.T) {
			d, _ := newDriver(t, "/", step{argv: tc.argv, reply: out(tc.rec, "", 0)})
			u, err := verify.ParseUnit(tc.unit)
			if err != nil {
				t.Fatal(err)
			}
			err = d.Activate(ctx, u)
			var ne *ServiceNotEnabledError
			if !errors.As(err, &ne) || ne.RCVar != tc.rcvar {
				t.Fatalf("err = %v, want ServiceNotEnabledError for %s", err, tc.rcvar)
			}
			if want := `set ` + tc.rcvar + `="YES" ` + tc.where; !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want %q", err, want)
			}
		})
	}
	t.Run("deactivate", func(t *testing.T) {
		stop := "Cannot 'stop' jail. Set jail_enable to YES in /etc/rc.conf or use 'onestop' instead of 'stop'.\n"
		d, _ := newDriver(t, "/", step{argv: []string{"service", "jail", "stop", "pg_j"}, reply: func(*testing.T, []string) Result {
			return Result{Stdout: []byte(stop)}
		}})
		var ne *ServiceNotEnabledError
		if err := d.Deactivate(ctx, verify.Unit{Kind: verify.UnitJail, Jail: "pg_j"}); !errors.As(err, &ne) {
			t.Fatalf("err = %v, want ServiceNotEnabledError", err)
		}
	})
}

func TestServiceJailFailureSpacing(t *testing.T) {
	for _, out := range []string{
		"Starting jails: cannot start jail  \"pg_j\": \njail: pg_j: x\n.\n", // rc.d/jail: two spaces
		"Starting jails: cannot start jail \"pg_j\": \njail: pg_j: x\n.\n",
		"Starting jails:\tcannot  start jail\t\"pg_j\":\njail: pg_j: x\n.\n",
	} {
		reason, ok := ServiceJailFailure([]byte(out), "pg_j")
		if !ok || reason != "jail: pg_j: x" {
			t.Errorf("ServiceJailFailure(%q) = %q, %v", out, reason, ok)
		}
	}
	if _, ok := ServiceJailFailure([]byte("Starting jails: cannot start jail  \"pg_jx\": \n"), "pg_j"); ok {
		t.Error("matched another jail's failure")
	}
}

// TestActivatePFRCConf: pf.ko is loaded before the first pfctl (rc.d/pf's
// required_modules; nothing else loads it), and pf_rules and pf_flags
// come from rc.conf, rc.conf.local and rc.conf.d/pf, later ones winning,
// as load_rc_config reads them for rc.d/pf.
func TestActivatePFRCConf(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/etc/rc.conf", "pf_enable=\"YES\"\npf_rules=\"/etc/pf.main.conf\"\npf_flags=\"-D ext_if=em0\"\n")
	write(t, root, "/etc/rc.conf.local", "pf_flags=\"-D ext_if=em1 -o basic\"\n")
	conf := filepath.Join(root, "etc/pf.main.conf")
	flags := []string{"-D", "ext_if=em1", "-o", "basic"}
	d, _ := newDriver(t, root,
		step{argv: []string{"kldload", "-n", "pf"}},
		step{argv: append([]string{"pfctl", "-n", "-f", conf}, flags...)},
		step{argv: append([]string{"pfctl", "-f", conf}, flags...)},
		step{argv: []string{"pfctl", "-s", "info"}, reply: out("pfctl_s_info_enabled.txt", "", 0)},
		step{argv: []string{"pfctl", "-s", "rules"}, reply: out("pfctl_s_rules.txt", "", 0)},
	)
	if err := d.Activate(context.Background(), verify.Unit{Kind: verify.UnitPF}); err != nil {
		t.Fatal(err)
	}

	t.Run("pf.ko cannot be loaded", func(t *testing.T) {
		d, _ := newDriver(t, t.TempDir(), step{argv: []string{"kldload", "-n", "pf"}, reply: out("", "kldload_noperm.stderr", 1)})
		err := d.Activate(context.Background(), verify.Unit{Kind: verify.UnitPF})
		if err == nil || !strings.Contains(err.Error(), "load pf.ko") || !strings.Contains(err.Error(), "Operation not permitted") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("value needs the shell", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, "/etc/rc.conf", "pf_flags=\"-D ext_if=`cat /etc/xnic`\"\n")
		d, _ := newDriver(t, root)
		err := d.Activate(context.Background(), verify.Unit{Kind: verify.UnitPF})
		if err == nil || !strings.Contains(err.Error(), "/etc/rc.conf: pf_flags=") {
			t.Fatalf("err = %v", err)
		}
	})
}

// The pre-check loads pf.ko (15's pfctl -n needs /dev/pf) and passes
// pf_flags from the rc.conf being installed, as rc.d/pf's pf_check does.
func TestPrecheckPFFlags(t *testing.T) {
	stage, files := stageTree(t)
	write(t, stage, "/etc/rc.conf", "pf_enable=\"YES\"\npf_flags=\"-D pg_port=5432\"\n")
	var calls []string
	d := New(apply.DriverOptions{Root: t.TempDir()}, runFunc(func(argv []string) Result {
		switch argv[0] {
		case "kldload":
			calls = append(calls, strings.Join(argv, " "))
		case "pfctl": // pfctl -n -f TMP FLAGS...
			calls = append(calls, strings.Join(append([]string{"pfctl", "-n", "-f", "TMP"}, argv[4:]...), " "))
		}
		return Result{}
	}))
	if err := d.Precheck(context.Background(), stage, files); err != nil {
		t.Fatal(err)
	}
	if want := []string{"kldload -n pf", "pfctl -n -f TMP -D pg_port=5432"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("calls = %q, want %q", calls, want)
	}
}

// TestActivateSysctl: `service sysctl restart` runs `sysctl -i -f` and
// exits 0 whatever fails (libexec/rc/rc.d/sysctl), so the driver runs
// `sysctl -f` itself, on sysctl.conf and sysctl.conf.local like rc.d/sysctl,
// and reports each failed line.
func TestActivateSysctl(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/etc/sysctl.conf", "net.inet.ip.forwarding=1\n")
	write(t, root, "/etc/sysctl.conf.local", "kern.ipc.somaxconn=1024\n")
	d, _ := newDriver(t, root,
		step{argv: []string{"sysctl", "-f", filepath.Join(root, "etc/sysctl.conf")}, reply: out("", "sysctl_f_errors.stderr", 4)},
		step{argv: []string{"sysctl", "-f", filepath.Join(root, "etc/sysctl.conf.local")}},
	)
	err := d.Activate(context.Background(), verify.Unit{Kind: verify.UnitSysctl})
	if err == nil {
		t.Fatal("failed sysctl lines passed")
	}
	for _, want := range []string{
		"/etc/sysctl.conf:3: unknown oid 'net.inet.tcp.nosuch'",
		"/etc/sysctl.conf:5: oid 'kern.osrelease' is read only",
		"/etc/sysctl.conf:7: invalid integer 'yes'",
		"/etc/sysctl.conf:9: kern.securelevel=-1: Operation not permitted",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err lacks %q:\n%v", want, err)
		}
	}
	var fe *layout.FileError
	if !errors.As(err, &fe) || fe.File != "/etc/sysctl.conf" {
		t.Errorf("err is not a FileError on /etc/sysctl.conf: %#v", fe)
	}
}

// TestPrecheckJailConfStderr: jail -e prints the jails and exits 0 even
// after `variable ... not found` or `cannot redefine parameter`: any stderr
// output fails the check, naming the host file.
func TestPrecheckJailConfStderr(t *testing.T) {
	for _, rec := range []string{"jail_e_unknown_var.stderr", "jail_e_redefine.stderr"} {
		t.Run(rec, func(t *testing.T) {
			stage, files := stageTree(t)
			d := New(apply.DriverOptions{Root: "/"}, runFunc(func(argv []string) Result {
				if argv[0] == "jail" {
					return Result{Stdout: recorded(t, "jail_e_ok.txt"), Stderr: recorded(t, rec)}
				}
				return Result{}
			}))
			err := d.Precheck(context.Background(), stage, files)
			want := strings.TrimPrefix(strings.TrimSpace(string(recorded(t, rec))), "jail: ")
			if err == nil || !strings.Contains(err.Error(), "/etc/jail.conf: "+want) {
				t.Fatalf("err = %v, want /etc/jail.conf: %s", err, want)
			}
		})
	}
	t.Run("clean", func(t *testing.T) {
		stage, files := stageTree(t)
		d := New(apply.DriverOptions{Root: "/"}, runFunc(func(argv []string) Result {
			if argv[0] == "jail" {
				return Result{Stdout: recorded(t, "jail_e_ok.txt")}
			}
			return Result{}
		}))
		if err := d.Precheck(context.Background(), stage, files); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzParseSysctlErrors(f *testing.F) {
	f.Add(recordedF(f, "sysctl_f_errors.stderr"))
	f.Add([]byte("sysctl: Tunable values are set in /boot/loader.conf\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		errs := parseSysctlErrors(b, "/etc/sysctl.conf")
		if len(errs) > strings.Count(string(b), "\n")+1 {
			t.Fatalf("%d errors from %d lines", len(errs), strings.Count(string(b), "\n")+1)
		}
		for _, e := range errs {
			var fe *layout.FileError
			if !errors.As(e, &fe) || fe.File != "/etc/sysctl.conf" || fe.Line < 0 {
				t.Fatalf("bad error %#v", e)
			}
		}
	})
}

func FuzzServiceOutput(f *testing.F) {
	for _, n := range []string{"service_jail_restart_vnet.txt", "service_jail_restart_nopath.txt", "service_restart_not_enabled.txt"} {
		f.Add(recordedF(f, n))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if reason, ok := ServiceJailFailure(b, "pg_j"); ok && strings.Contains(reason, "\n") {
			t.Fatalf("reason spans lines: %q", reason)
		} else if !ok && reason != "" {
			t.Fatalf("reason %q without a failure", reason)
		}
		if rcvar, ok := ServiceNotEnabled(b); ok && (rcvar == "" || strings.ContainsAny(rcvar, " \t\n")) {
			t.Fatalf("rcvar %q", rcvar)
		}
	})
}

func recordedF(f *testing.F, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// TestPrecheckShOncePerContent: an rc file whose bytes sh -n accepted is
// not checked by a process again; new bytes are, and a rejected file is
// checked (and rejected) at every pre-check.
func TestPrecheckShOncePerContent(t *testing.T) {
	stage, files := stageTree(t)
	var mu sync.Mutex
	var ran []string
	d := New(apply.DriverOptions{Root: "/"}, runFunc(func(argv []string) Result {
		if argv[0] != "sh" {
			return Result{}
		}
		src, err := os.ReadFile(argv[2])
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		ran = append(ran, strings.TrimPrefix(argv[2], stage))
		mu.Unlock()
		if strings.Contains(string(src), "bad") {
			return Result{ExitCode: 2, Stderr: []byte(argv[2] + ": 2: Syntax error: Unterminated quoted string\n")}
		}
		return Result{}
	}))
	precheck := func(rc string) ([]string, error) {
		t.Helper()
		write(t, stage, "/etc/rc.conf", rc) // not plain assignments: sh -n runs
		ran = nil
		err := d.Precheck(context.Background(), stage, files)
		return ran, err
	}
	if ran, err := precheck("x=\"$y\"\n"); err != nil || len(ran) != 1 || ran[0] != "/etc/rc.conf" {
		t.Fatalf("first check: ran %q, err %v; want sh -n of /etc/rc.conf, nil", ran, err)
	}
	if ran, err := precheck("x=\"$y\"\n"); err != nil || len(ran) != 0 {
		t.Errorf("same bytes again: ran %q, err %v; want no sh -n, nil", ran, err)
	}
	if ran, err := precheck("x=\"$z\"\n"); err != nil || len(ran) != 1 {
		t.Errorf("new bytes: ran %q, err %v; want one sh -n, nil", ran, err)
	}
	for i := range 2 {
		ran, err := precheck("x=\"$y\"\nbad=\"\n")
		if err == nil || !strings.Contains(err.Error(), "/etc/rc.conf:2: Syntax error") || len(ran) != 1 {
			t.Errorf("rejected bytes, check %d: ran %q, err %v; want one sh -n and its error", i+1, ran, err)
		}
	}
}
