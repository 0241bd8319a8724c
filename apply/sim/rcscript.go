package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"time"
)

// Local rc.d scripts (an app's /usr/local/etc/rc.d/NAME that a bundle
// installs) are run, not assumed: the real sh runs the script with a
// stand-in for /etc/rc.subr that records what run_rc_command would start,
// and the sim starts a stand-in for that. Only the daemon(8)-supervised
// form is emulated (command=/usr/sbin/daemon), the form FREEBSD.md §7.1
// prescribes.

// localScript returns the real path of the rc.d script for name in the
// context when it is one the emulator has no built-in for, else "".
func (c *cmd) localScript(x *rcCtx, name string) string {
	if baseScripts[name] {
		return ""
	}
	for _, d := range []string{"/etc/rc.d/", "/usr/local/etc/rc.d/"} {
		p := hostPath(x.root, d+name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// executable reports whether a script file may be run: service(8) runs
// only scripts with an execute bit (usr.sbin/service/service.sh tests
// [ -x "$dir/$script" ]), and so does rc for local scripts
// (libexec/rc/rc.subr run_rc_script: if [ -x $_file ]).
func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// rcSubrStandIn replaces ". /etc/rc.subr". load_rc_config has nothing to
// read: the sim passes the context's rc.conf values in the environment.
// run_rc_command prints what rc.subr's start would use, NUL-separated:
// rc.subr builds "$command $rc_flags $command_args" and evals it, so the
// arguments are split by the shell's own eval here too; ${name}_user makes
// rc.subr wrap the command in "su -m USER" (run_rc_command in
// libexec/rc/rc.subr).
const rcSubrStandIn = `load_rc_config() { :; }
checkyesno() {
	eval "_v=\${$1}"
	case $_v in [Yy][Ee][Ss]|[Tt][Rr][Uu][Ee]|[Oo][Nn]|1) return 0;; esac
	return 1
}
run_rc_command() {
	eval "_user=\${${name}_user}"
	eval "_flags=\${${name}_flags}"
	printf '%s\0' "name=$name" "rcvar=$rcvar" "command=$command" "pidfile=$pidfile" "user=$_user" "action=$1"
	eval "set -- $_flags $command_args"
	for _a; do printf 'argv=%s\0' "$_a"; done
}
`

// rcSubrLine is how an rc.d script loads rc.subr.
var rcSubrLine = regexp.MustCompile(`(?m)^[ \t]*\.[ \t]+/etc/rc\.subr[ \t]*$`)

// scriptRun is what an rc.d script asked run_rc_command to start.
type scriptRun struct {
	name, rcvar, command, pidfile, user string
	args                                []string
}

// runScript runs the rc.d script at file (real path) with action through
// the real sh and the rc.subr stand-in, in an environment holding the
// context's rc.conf values.
func (c *cmd) runScript(x *rcCtx, file, action string) (*scriptRun, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(src, []byte("#!/bin/sh")) {
		return nil, fmt.Errorf("%s: no #!/bin/sh line: service(8) executes the script", file)
	}
	if rcSubrLine.Find(src) == nil {
		return nil, fmt.Errorf("%s: does not load /etc/rc.subr (. /etc/rc.subr)", file)
	}
	text := rcSubrLine.ReplaceAllLiteral(src, []byte(rcSubrStandIn))
	env := []string{"PATH=/usr/bin:/bin"}
	for k := range x.vars.raw {
		if !shellName.MatchString(k) {
			continue
		}
		if v, err := x.vars.get(k); err == nil {
			env = append(env, k+"="+v)
		}
	}
	ctx := c.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sh := exec.CommandContext(ctx, "sh", "-s", action)
	sh.Stdin = bytes.NewReader(text)
	sh.Env = env
	sh.Dir = x.root
	var stderr bytes.Buffer
	sh.Stderr = &stderr
	out, err := sh.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", file, action, err, strings.TrimSpace(stderr.String()))
	}
	run := &scriptRun{}
	for _, f := range strings.Split(string(out), "\x00") {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "name":
			run.name = v
		case "rcvar":
			run.rcvar = v
		case "command":
			run.command = v
		case "pidfile":
			run.pidfile = v
		case "user":
			run.user = v
		case "argv":
			run.args = append(run.args, v)
		}
	}
	base := path.Base(file)
	switch {
	case run.name == "":
		return nil, fmt.Errorf("%s: never called run_rc_command with name set", file)
	case run.name != base:
		return nil, fmt.Errorf("%s: name=%s, but service(8) and rcorder know the script as %s", file, run.name, base)
	case run.rcvar != run.name+"_enable":
		return nil, fmt.Errorf("%s: rcvar=%q, want %s_enable (rc.conf enables it by that name)", file, run.rcvar, run.name)
	}
	return run, nil
}

var shellName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// scriptSpec is the stand-in for the daemon(8) command a local rc.d script
// starts: an HTTP server where the supervised program's environment says
// it listens (HOST and PORT, as a Node app reads them).
func (c *cmd) scriptSpec(x *rcCtx, name, file string) (svcSpec, error) {
	if !executable(file) {
		return svcSpec{}, fmt.Errorf("%s: not executable: service(8) and rc skip it", file)
	}
	run, err := c.runScript(x, file, "start")
	if err != nil {
		return svcSpec{}, err
	}
	if run.command != "/usr/sbin/daemon" {
		return svcSpec{}, fmt.Errorf("%s: command=%s: the sim emulates daemon(8)-supervised scripts only", file, run.command)
	}
	if run.user != "" {
		// rc.subr would run daemon(8) itself through su -m USER: as that
		// user it cannot write a pidfile under /var/run nor use -u.
		return svcSpec{}, fmt.Errorf("%s: %s_user=%s makes rc.subr run daemon(8) as %s (su -m), which cannot write its pidfile or drop privileges", file, name, run.user, run.user)
	}
	child, err := daemonChild(run.args)
	if err != nil {
		return svcSpec{}, fmt.Errorf("%s: daemon %s: %w", file, strings.Join(run.args, " "), err)
	}
	env := map[string]string{}
	for len(child) > 0 && path.Base(child[0]) == "env" {
		child = child[1:]
		for len(child) > 0 && strings.Contains(child[0], "=") && !strings.HasPrefix(child[0], "-") {
			k, v, _ := strings.Cut(child[0], "=")
			env[k] = v
			child = child[1:]
		}
	}
	if len(child) == 0 {
		return svcSpec{}, fmt.Errorf("%s: daemon(8) is given no program", file)
	}
	if env["HOST"] == "" || env["PORT"] == "" {
		return svcSpec{}, fmt.Errorf("%s: cannot tell where %s listens: want HOST= and PORT= in its environment", file, child[0])
	}
	addr := net.JoinHostPort(env["HOST"], env["PORT"])
	exe, err := os.Executable()
	if err != nil {
		return svcSpec{}, err
	}
	return svcSpec{
		service: name, name: name,
		argv:   append([]string{exe}, serviceArgs...),
		env:    []string{ServiceEnv + "=http:" + addr},
		listen: []string{addr},
	}, nil
}

// daemonChild returns the command daemon(8) runs from its arguments,
// parsed with daemon.c's option string "+cfHSp:P:ru:o:s:l:t:m:R:T:h"
// (usr.sbin/daemon/daemon.c): options stop at the first non-option.
func daemonChild(args []string) ([]string, error) {
	const flags, withArg = "cfHSrh", "pPuosltmRT"
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return args[i+1:], nil
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			return args[i:], nil
		}
		if strings.HasPrefix(a, "--") {
			return nil, fmt.Errorf("long option %s: not emulated", a)
		}
	word:
		for j := 1; j < len(a); j++ {
			switch o := a[j]; {
			case strings.IndexByte(flags, o) >= 0:
			case strings.IndexByte(withArg, o) >= 0:
				if j+1 == len(a) { // the argument is the next word
					if i++; i == len(args) {
						return nil, fmt.Errorf("option -%c needs an argument", o)
					}
				}
				break word
			default:
				return nil, fmt.Errorf("unknown option -%c", o)
			}
		}
	}
	return nil, errors.New("no command to run")
}
