package freebsd

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The ps table rc.subr would see on a host running the agent under
// daemon(8): the supervisor's title is "daemon: TITLE[CHILDPID]"
// (usr.sbin/daemon/daemon.c setproctitle), and ps appends the command
// name in parentheses. Another daemon(8)-supervised service and an agent
// inside a jail (jid 3) must never be touched.
const psTable = `100 0 daemon: rigger_agent[101] (daemon)
101 0 /usr/local/sbin/rigger-agent --config /usr/local/etc/rigger/agent.yaml run
200 0 daemon: node[201] (daemon)
201 0 node main.js
300 3 /usr/local/sbin/rigger-agent --config /usr/local/etc/rigger/agent.yaml run
`

// rcRun runs the rc.d script (or src, a variant of it) with arg under a
// POSIX shell, with testdata/rc.subr.stub standing in for /etc/rc.subr
// and /var/run moved to a temp dir. It returns stdout+stderr, the exit
// code, the kill/start log and the ps table afterwards.
func rcRun(t *testing.T, src, arg, childPid string) (out string, code int, log, ps string) {
	t.Helper()
	dir := t.TempDir()
	stub, err := filepath.Abs("testdata/rc.subr.stub")
	if err != nil {
		t.Fatal(err)
	}
	src = strings.Replace(src, ". /etc/rc.subr", ". "+stub, 1)
	src = strings.ReplaceAll(src, "/var/run/", dir+"/")
	files := map[string]string{
		"script":                 src,
		"ps":                     psTable,
		"kids":                   "100 101\n200 201\n",
		"log":                    "",
		"rigger_agent.pid":       "100",
		"rigger_agent.child.pid": childPid,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(shell(t), filepath.Join(dir, "script"), arg)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"rigger_agent_enable=YES",
		"RC_TEST_PS=" + filepath.Join(dir, "ps"),
		"RC_TEST_KIDS=" + filepath.Join(dir, "kids"),
		"RC_TEST_LOG=" + filepath.Join(dir, "log"),
	}
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	logb, _ := os.ReadFile(filepath.Join(dir, "log"))
	psb, _ := os.ReadFile(filepath.Join(dir, "ps"))
	return strings.ReplaceAll(string(b), dir, "RUN"), code, strings.ReplaceAll(string(logb), dir, "RUN"), string(psb)
}

func shell(t *testing.T) string {
	if sh, err := exec.LookPath("dash"); err == nil {
		return sh // ash-derived, like FreeBSD's /bin/sh
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal("no POSIX shell to run the rc.d script with")
	}
	return sh
}

func script(t *testing.T) string {
	b, err := os.ReadFile("rigger_agent")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRCScriptReachesRightProcess: status, stop, restart and reload each
// act on the right pid, as rc.subr's check_pidfile/_find_processes
// matching decides: stop/status/restart on the daemon(8) supervisor (pid
// 100, title "daemon: rigger_agent[101]"), reload on the agent (pid 101).
func TestRCScriptReachesRightProcess(t *testing.T) {
	src := script(t)

	out, code, log, _ := rcRun(t, src, "status", "101")
	if code != 0 || !strings.Contains(out, "rigger_agent is running as pid 100.") || log != "" {
		t.Errorf("status: exit %d, %q, log %q", code, out, log)
	}

	out, code, log, ps := rcRun(t, src, "stop", "101")
	if code != 0 || log != "kill -TERM 100\n" {
		t.Errorf("stop: exit %d, %q, log %q; want SIGTERM to the supervisor only", code, out, log)
	}
	if strings.Contains(ps, "rigger_agent[101]") || strings.Contains(ps, "\n101 ") || !strings.Contains(ps, "201 0 node") {
		t.Errorf("after stop, ps:\n%s", ps)
	}

	out, code, log, _ = rcRun(t, src, "restart", "101")
	wantStart := "start /usr/sbin/daemon -f -S -T rigger_agent -t rigger_agent -P RUN/rigger_agent.pid -p RUN/rigger_agent.child.pid -R 5 /usr/local/sbin/rigger-agent --config /usr/local/etc/rigger/agent.yaml run \n"
	if code != 0 || log != "kill -TERM 100\n"+wantStart {
		t.Errorf("restart: exit %d, %q, log %q; want SIGTERM to 100 then one start:\n%q", code, out, log, wantStart)
	}

	out, code, log, _ = rcRun(t, src, "reload", "101")
	if code != 0 || log != "kill -HUP 101\n" {
		t.Errorf("reload: exit %d, %q, log %q; want SIGHUP to the agent (101), not daemon(8)", code, out, log)
	}

	// A stale child pidfile naming another process is not signalled.
	out, code, log, _ = rcRun(t, src, "reload", "201")
	if code == 0 || log != "" || !strings.Contains(out, "not running? (check RUN/rigger_agent.child.pid)") {
		t.Errorf("reload with a stale child pidfile: exit %d, %q, log %q", code, out, log)
	}
}

// With procname set to the agent's path while the pidfile holds daemon's
// pid (the script before this fix, and FREEBSD.md 7.1's sketch), rc.subr
// never matches: status says not running, stop does nothing and restart
// starts a second supervisor. The stub must show that, or the test above
// proves nothing.
func TestRCScriptAgentProcnameBreaks(t *testing.T) {
	src := strings.Replace(script(t), `procname="${command}"`, `procname="/usr/local/sbin/rigger-agent"`, 1)
	if src == script(t) {
		t.Fatal("procname line not found in rigger_agent")
	}
	out, code, _, _ := rcRun(t, src, "status", "101")
	if code != 1 || !strings.Contains(out, "rigger_agent is not running.") {
		t.Errorf("status: exit %d, %q", code, out)
	}
	_, _, log, _ := rcRun(t, src, "stop", "101")
	if log != "" {
		t.Errorf("stop signalled %q", log)
	}
	_, _, log, _ = rcRun(t, src, "restart", "101")
	if !strings.HasPrefix(log, "start ") || strings.Contains(log, "kill") {
		t.Errorf("restart log %q: want a second start and no kill", log)
	}
}
