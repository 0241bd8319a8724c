package sim

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// alive reports whether p still runs: the pid exists, is not a zombie
// and, where /proc exists, still runs the binary we started (pids are
// reused).
func alive(p Proc) bool {
	if p.PID <= 0 {
		return false
	}
	if err := syscall.Kill(p.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	dir := "/proc/" + strconv.Itoa(p.PID)
	if stat, err := os.ReadFile(dir + "/stat"); err == nil {
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	// An exiting process loses its cmdline before it closes its sockets:
	// empty means "still going", only a different binary means reused.
	if cmd, err := os.ReadFile(dir + "/cmdline"); err == nil && len(cmd) > 0 && len(p.Argv) > 0 {
		argv0, _, _ := strings.Cut(string(cmd), "\x00")
		if argv0 != p.Argv[0] {
			return false
		}
	}
	return true
}

// terminate stops p and its process group: SIGTERM, then SIGKILL. spiped
// exits on SIGTERM only once its connections are idle, and it holds no
// state worth a clean exit, so the grace is short.
func terminate(p Proc) error {
	if !alive(p) {
		return nil
	}
	syscall.Kill(-p.PID, syscall.SIGTERM)
	syscall.Kill(p.PID, syscall.SIGTERM)
	if waitGone(p, 50*time.Millisecond) {
		return nil
	}
	syscall.Kill(-p.PID, syscall.SIGKILL)
	syscall.Kill(p.PID, syscall.SIGKILL)
	if waitGone(p, 2*time.Second) {
		return nil
	}
	return errors.New("process " + strconv.Itoa(p.PID) + " (" + p.Service + " " + p.Name + ") did not exit")
}

func waitGone(p Proc, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !alive(p) {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return !alive(p)
}

// terminateAll stops ps concurrently.
func terminateAll(ps []Proc) error {
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = terminate(p)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// tagEnv marks every process the sim starts with its sandbox root, owner
// (jail or "host") and service, so processes an agent started but never
// recorded (it was killed in between) are still found and stopped.
const tagEnv = "RIGGER_SIM_OWNER"

func tag(root, owner, service string) string { return root + "|" + owner + "|" + service }

// strays finds live processes tagged for root, and owner and service
// when not empty, by reading /proc/*/environ (Linux; elsewhere none).
func strays(root, owner, service string) []Proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := tagEnv + "=" + root + "|"
	if owner != "" {
		want += owner + "|"
		if service != "" {
			want += service
		}
	}
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if strings.HasPrefix(kv, want) && (service == "" || kv == want) {
				cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
				argv := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
				out = append(out, Proc{Service: "stray", Name: kv[len(tagEnv)+1:], PID: pid, Argv: argv})
				break
			}
		}
	}
	return out
}
