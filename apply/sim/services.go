package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ServiceEnv tells a re-executed binary to run a stand-in service:
// "pg:ADDR:PORT[,ADDR:PORT...]" or "http:...".
const ServiceEnv = "RIGGER_SIM_SERVICE"

// serviceArgs are appended when the sim re-executes its own binary, so a
// binary that forgot to call ServiceMain does nothing harmful: a test
// binary runs no test, the agent rejects the flag.
var serviceArgs = []string{"-test.run=^$", "-test.count=1"}

// svcSpec is one process a jail's rc.conf asks for.
type svcSpec struct {
	service string // rc.d name: spiped, postgresql, nginx
	name    string // pipe name or service name
	argv    []string
	env     []string
	listen  []string
	// optional: start only if the ports can be bound (nginx on :80 as a
	// non-root user in tests).
	optional bool
}

// services lists what the jail's rc.conf enables that the sim can run.
// only, if set, limits it to one rc.d service name.
func (h *Host) services(jailRoot string, v *rcVars, addrs []string, only string) ([]svcSpec, error) {
	var out []svcSpec
	want := func(s string) bool { return only == "" || only == s }
	if want("spiped") && v.yes("spiped_enable") {
		bin, err := exec.LookPath("spiped")
		if err != nil {
			return nil, errors.New("spiped not found on PATH: the sim runs real spiped for the jails' pipes (apt-get install spiped)")
		}
		pipes, err := v.get("spiped_pipes")
		if err != nil {
			return nil, err
		}
		for _, p := range strings.Fields(pipes) {
			get := func(k string) (string, error) { return v.get("spiped_pipe_" + p + "_" + k) }
			mode, err := get("mode")
			if err != nil {
				return nil, err
			}
			var flag string
			switch mode {
			case "encrypt", "client":
				flag = "-e"
			case "decrypt", "server":
				flag = "-d"
			default:
				// rc.d/spiped prints this and skips the pipe.
				h.log.Warn("Invalid value for spiped_pipe_" + p + "_mode: " + mode)
				continue
			}
			src, err := get("source")
			if err != nil {
				return nil, err
			}
			tgt, err := get("target")
			if err != nil {
				return nil, err
			}
			key, err := get("key")
			if err != nil {
				return nil, err
			}
			if key != "" {
				// The key path is inside the jail.
				key = filepath.Join(jailRoot, filepath.FromSlash(path.Clean("/"+key)))
			}
			argv := []string{bin, flag, "-s", src, "-t", tgt, "-k", key, "-F"}
			flags, _ := get("flags")
			argv = append(argv, spipedFlags(flags)...)
			out = append(out, svcSpec{service: "spiped", name: p, argv: argv, listen: []string{unbracket(src)}})
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	standIn := func(service, kind string, port string, optional bool) {
		if !want(service) || !v.yes(service+"_enable") {
			return
		}
		var ls []string
		for _, a := range addrs {
			ls = append(ls, net.JoinHostPort(a, port))
		}
		if len(ls) == 0 {
			h.log.Warn("sim: no address to bind", "service", service, "rc", v.file)
			return
		}
		out = append(out, svcSpec{
			service: service, name: service,
			argv:     append([]string{exe}, serviceArgs...),
			env:      []string{ServiceEnv + "=" + kind + ":" + strings.Join(ls, ",")},
			listen:   ls,
			optional: optional,
		})
	}
	standIn("postgresql", "pg", "5432", false)
	standIn("nginx", "http", "80", true)
	standIn("sshd", "ssh", "22", true)
	return out, nil
}

// spipedFlags keeps the extra flags of spiped_pipe_X_flags that make
// sense in the foreground (no -D, -p, -u: the sim runs spiped -F as the
// test user).
func spipedFlags(s string) []string {
	var out []string
	f := strings.Fields(s)
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case "-D", "-F":
		case "-p", "-u":
			i++
		default:
			out = append(out, f[i])
		}
	}
	return out
}

// unbracket turns spiped's [addr]:port into host:port for dialing.
func unbracket(a string) string {
	if strings.HasPrefix(a, "[") {
		if i := strings.Index(a, "]:"); i > 0 {
			return net.JoinHostPort(a[1:i], a[i+2:])
		}
	}
	return a
}

// start runs spec detached (own session: it outlives the agent, like a
// jail's daemons) with output to a log file, and waits until it listens.
// A bind that fails with "Address already in use" right after the previous
// process on that port was stopped is retried for a second: the kernel
// may not have released the port yet.
func (h *Host) start(owner string, spec svcSpec) (Proc, error) {
	var p Proc
	var err error
	for try := 0; try < 6; try++ {
		if p, err = h.start1(owner, spec); err == nil || !strings.Contains(err.Error(), "Address already in use") && !strings.Contains(err.Error(), "address already in use") {
			return p, err
		}
		h.log.Info("sim: port busy, retrying", "service", spec.service, "name", spec.name, "err", err)
		time.Sleep(200 * time.Millisecond)
	}
	return p, err
}

// start1 is one attempt.
func (h *Host) start1(owner string, spec svcSpec) (Proc, error) {
	if spec.optional {
		for _, l := range spec.listen {
			ln, err := net.Listen("tcp", l)
			if err != nil {
				h.log.Info("sim: stand-in not started, port not bindable", "service", spec.service, "addr", l, "err", err)
				return Proc{}, errSkipped
			}
			ln.Close()
		}
	}
	logName := filepath.Join(h.root, StateDir, "log", owner+"-"+spec.service+"-"+spec.name+".log")
	logf, err := os.OpenFile(logName, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return Proc{}, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s start %q\n", time.Now().UTC().Format(time.RFC3339), spec.argv)
	cmd := exec.Command(spec.argv[0], spec.argv[1:]...)
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Env = append(cmd.Env, tagEnv+"="+tag(h.root, owner, spec.service))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("%s %s: %w", spec.service, spec.name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() // reap it while we live
	p := Proc{Service: spec.service, Name: spec.name, PID: cmd.Process.Pid, Argv: spec.argv, Listen: spec.listen}
	if err := waitListening(spec.listen, exited, 5*time.Second); err != nil {
		terminate(p)
		why := lastLine(logName)
		if spec.service != "spiped" && !strings.Contains(why, "stand-in") {
			why += " (no stand-in ran: does the binary call sim.ServiceMain() first?)"
		}
		return Proc{}, fmt.Errorf("%s %s: %v: %s", spec.service, spec.name, err, why)
	}
	return p, nil
}

var errSkipped = errors.New("skipped")

// waitListening dials each address until it answers, the process exits or
// the deadline passes. A connect proves the port is bound; the short
// grace afterwards catches a process that lost a bind race and exits.
func waitListening(addrs []string, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, a := range addrs {
		for {
			select {
			case <-exited:
				return errors.New("exited")
			default:
			}
			c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("not listening on %s after %s", a, limit)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	select {
	case <-exited:
		return errors.New("exited")
	case <-time.After(20 * time.Millisecond):
	}
	return nil
}

func lastLine(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var keep []string
	for i := len(lines) - 1; i >= 0 && len(keep) < 2; i-- {
		if strings.HasPrefix(lines[i], "--- ") {
			break
		}
		keep = append([]string{strings.TrimSpace(lines[i])}, keep...)
	}
	return strings.Join(keep, "; ")
}

// ServiceMain runs a stand-in service and never returns when the sim
// started this binary for one (ServiceEnv set); otherwise it returns at
// once. Call it first in main and in TestMain of every package whose
// tests use the sim driver.
func ServiceMain() {
	spec := os.Getenv(ServiceEnv)
	if spec == "" {
		return
	}
	os.Exit(runService(spec))
}

func runService(spec string) int {
	kind, list, ok := strings.Cut(spec, ":")
	if !ok || list == "" {
		fmt.Fprintf(os.Stderr, "%s=%q: want KIND:ADDR:PORT[,ADDR:PORT]\n", ServiceEnv, spec)
		return 2
	}
	var serve func(net.Listener)
	switch kind {
	case "pg":
		serve = servePG
	case "http":
		serve = serveHTTP
	case "ssh":
		serve = serveSSH
	default:
		fmt.Fprintf(os.Stderr, "%s: unknown stand-in %q\n", ServiceEnv, kind)
		return 2
	}
	// Several sim hosts share this machine's one network stack, and
	// addresses that real hosts each have for themselves (the same jail
	// subnets on serverA and serverB) exist only once here. An address
	// already in use is left to whoever bound it first; the stand-in fails
	// only when it can bind none of its addresses.
	bound := 0
	for _, a := range strings.Split(list, ",") {
		ln, err := net.Listen("tcp", a)
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintf(os.Stderr, "%s stand-in: %s taken by another sim host, skipped: %v\n", kind, a, err)
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s stand-in: %v\n", kind, err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "%s stand-in listening on %s\n", kind, a)
		bound++
		go serve(ln)
	}
	if bound == 0 {
		fmt.Fprintf(os.Stderr, "%s stand-in: no address could be bound: address already in use\n", kind)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return 0
}

// sslRequestCode is PostgreSQL's SSLRequest (and 80877104 GSSENCRequest).
const sslRequestCode = 80877103

// servePG answers an SSLRequest (or GSSENCRequest) with 'N', as a server
// without TLS does, then closes: enough for an end-to-end probe.
func servePG(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			var msg [8]byte
			if _, err := io.ReadFull(c, msg[:]); err != nil {
				return
			}
			n := binary.BigEndian.Uint32(msg[0:4])
			code := binary.BigEndian.Uint32(msg[4:8])
			if n == 8 && (code == sslRequestCode || code == sslRequestCode+1) {
				c.Write([]byte{'N'})
			}
		}()
	}
}

func serveHTTP(ln net.Listener) {
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "rigger sim nginx on %s\n", ln.Addr())
		}),
	}
	srv.Serve(ln)
}

// serveSSH sends an SSH identification line, as sshd does first: enough
// for a tcp or banner check.
func serveSSH(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "SSH-2.0-OpenSSH_9.7 FreeBSD-20240701 (rigger sim stand-in)\r\n")
			io.Copy(io.Discard, io.LimitReader(c, 4096))
		}()
	}
}
