package sim

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// appScript is a local rc.d script in the form FREEBSD.md §7.1 gives:
// rc.subr, rcvar, load_rc_config, daemon(8) supervising the program.
const appScript = `#!/bin/sh
# PROVIDE: app
# REQUIRE: LOGIN
. /etc/rc.subr

name=app
rcvar=app_enable
load_rc_config $name

: ${app_enable:="NO"}
: ${app_runas:="www"}

pidfile="/var/run/${name}.pid"
command="/usr/sbin/daemon"
command_args="-r -S -T ${name} -P ${pidfile} -u ${app_runas} /usr/bin/env NODE_ENV=production HOST=${app_host} PORT=3000 /usr/local/bin/node /srv/app.js"

run_rc_command "$1"
`

// TestLocalScript: service(8) on a local rc.d script runs the script
// itself (real sh, rc.subr stand-in) and starts a stand-in where the
// daemon(8)-supervised program's environment says it listens. The ways a
// script fails on FreeBSD fail here too: no execute bit, ${name}_user
// (rc.subr then runs daemon(8) through su -m), a name that is not the
// file's, and not enabled.
func TestLocalScript(t *testing.T) {
	ipA, ipB := pair()
	h := newHost(t, ipA, ipB, newKey(t))
	h.boot(t)
	rc := readFile(t, h.root, "/etc/rc.conf")
	setRC := func(extra string) { write(t, h.root, "/etc/rc.conf", rc+extra) }
	script := hostPath(h.root, "/usr/local/etc/rc.d/app")
	install := func(text string, mode os.FileMode) {
		t.Helper()
		write(t, h.root, "/usr/local/etc/rc.d/app", text)
		if err := os.Chmod(script, mode); err != nil {
			t.Fatal(err)
		}
	}
	url := "http://" + ipA + ":3000/"

	install(appScript, 0o644)
	setRC("app_enable=\"YES\"\napp_host=\"" + ipA + "\"\n")
	if _, errOut, code := h.run(t, "service", "app", "start"); code != 1 || !strings.Contains(errOut, "or is not executable") {
		t.Errorf("0644 script: exit %d, %q; want service(8)'s refusal", code, errOut)
	}

	install(appScript, 0o755)
	setRC("app_enable=\"YES\"\napp_host=\"" + ipA + "\"\napp_user=\"www\"\n")
	if _, errOut, code := h.run(t, "service", "app", "start"); code != 1 || !strings.Contains(errOut, "app_user=www makes rc.subr run daemon(8) as www (su -m)") {
		t.Errorf("app_user set: exit %d, %q", code, errOut)
	}

	install(strings.Replace(appScript, "name=app", "name=other", 1), 0o755)
	setRC("app_enable=\"YES\"\napp_host=\"" + ipA + "\"\n")
	if _, errOut, code := h.run(t, "service", "app", "start"); code != 1 || !strings.Contains(errOut, "name=other, but service(8) and rcorder know the script as app") {
		t.Errorf("wrong name: exit %d, %q", code, errOut)
	}

	install(appScript, 0o755)
	setRC("app_host=\"" + ipA + "\"\n")
	if out, _, code := h.run(t, "service", "app", "start"); code != 0 || !strings.HasPrefix(out, "Cannot 'start' app.") {
		t.Errorf("not enabled: exit %d, %q", code, out)
	}

	setRC("app_enable=\"YES\"\napp_host=\"" + ipA + "\"\n")
	if out, errOut, code := h.run(t, "service", "app", "start"); code != 0 {
		t.Fatalf("start: exit %d, %q, %q", code, out, errOut)
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("the app's stand-in does not answer at %s: %v", url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), ipA+":3000") {
		t.Errorf("GET %s: %d %q", url, resp.StatusCode, body)
	}
	if out, _, code := h.run(t, "service", "app", "status"); code != 0 || !strings.HasPrefix(out, "app is running as pid ") {
		t.Errorf("status: %q, %d", out, code)
	}
	if _, errOut, code := h.run(t, "service", "app", "stop"); code != 0 {
		t.Fatalf("stop: exit %d, %q", code, errOut)
	}
	if _, err := c.Get(url); err == nil {
		t.Error("the app still answers after stop")
	}
}

func TestDaemonChild(t *testing.T) {
	for _, tc := range []struct {
		args, want, err string
	}{
		{"-r -S -T app -P /var/run/app.pid -u www /usr/bin/env A=1 node x.js", "/usr/bin/env A=1 node x.js", ""},
		{"-fr -P/var/run/p -- -weird", "-weird", ""},
		{"-cfHSr -p c.pid -P s.pid -o out -s info -l daemon -t title -m 3 -R 5 -T tag prog", "prog", ""},
		{"-x prog", "", "unknown option -x"},
		{"-P", "", "option -P needs an argument"},
		{"-r", "", "no command to run"},
		{"--restart prog", "", "long option --restart: not emulated"},
	} {
		got, err := daemonChild(strings.Fields(tc.args))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: err %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
}
