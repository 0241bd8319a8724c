package freebsd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/rigger-bsd/rigger/apply/live"
)

var _ live.Runner = (*Driver)(nil)

// RunLive runs one live step (ifconfig, route, sysctl, hostname, service)
// and fails where the tool would report success for nothing done:
// rc.subr prints "Cannot 'start' NAME. Set NAME_enable to YES ..." and
// exits 0 when the service is not enabled (libexec/rc/rc.subr,
// run_rc_command; FREEBSD.md §0.2), and rc.d/jail exits 0 whether or not
// the jail started or stopped (jls decides, as in activateJail).
func (d *Driver) RunLive(ctx context.Context, argv ...string) ([]byte, error) {
	if len(argv) == 4 && argv[0] == "service" && argv[1] == "jail" && (argv[2] == "start" || argv[2] == "stop") {
		r, err := d.exec(ctx, argv...)
		if err != nil {
			return r.Stdout, err
		}
		running, err := d.JailRunning(ctx, argv[3])
		if err != nil {
			return r.Stdout, err
		}
		if running != (argv[2] == "start") {
			out := append(append([]byte{}, r.Stdout...), r.Stderr...)
			return r.Stdout, fmt.Errorf("%s: jail %s running=%v after it (jls -j %s): %s",
				strings.Join(argv, " "), argv[3], running, argv[3], strings.TrimSpace(string(out)))
		}
		return r.Stdout, nil
	}
	if len(argv) == 3 && argv[0] == "service" {
		r, err := d.service(ctx, "", argv[1], argv[2])
		return r.Stdout, err
	}
	r, err := d.exec(ctx, argv...)
	return r.Stdout, err
}

// ManagementPath asks the kernel which interface carries traffic to the
// git source (route -n get ADDR in FIB 0, the agent's FIB). The live plan
// marks the steps that touch it.
func (d *Driver) ManagementPath(ctx context.Context, source netip.Addr) (*live.Management, error) {
	r, err := d.exec(ctx, "route", "-n", "get", source.String())
	if err != nil {
		return nil, err
	}
	ifname := ParseRouteGet(r.Stdout)["interface"]
	if ifname == "" {
		return nil, fmt.Errorf("route -n get %s: no interface in its output", source)
	}
	return &live.Management{Iface: ifname, Source: source}, nil
}

// ParseRouteGet reads route(8)'s `get` output ("  interface: xnic" lines,
// sbin/route/route.c print_getmsg) into key → value.
func ParseRouteGet(b []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.Contains(k, " ") {
			continue
		}
		m[k] = strings.TrimSpace(v)
	}
	return m
}
