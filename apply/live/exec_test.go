package live

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/policy/hostdesc"
)

// host is a small model of the kernel state the steps change, enough to
// tell the old state from the new one: interfaces (by name, with the
// epair unit behind them), members, addresses, mtu, routes, services and
// running jails. It fails like FreeBSD on what does not exist.
type host struct {
	ifaces   map[string]string // name → unit ("epair3a", "bridge0")
	members  map[string]bool   // "bridge member"
	addrs    map[string]bool   // "if addr"
	mtu      map[string]string
	routes   map[string]string // "fib dest" → gateway
	services map[string]bool
	jails    map[string]bool
	next     int
	log      []string
	fail     string // a command line that fails
}

func newHost(d *hostdesc.Host) *host {
	h := &host{ifaces: map[string]string{}, members: map[string]bool{}, addrs: map[string]bool{}, mtu: map[string]string{},
		routes: map[string]string{}, services: map[string]bool{}, jails: map[string]bool{}, next: 5}
	for _, i := range d.Interfaces {
		h.ifaces[i.Name] = i.CloneName()
		for _, m := range i.Members {
			h.members[i.Name+" "+m] = true
		}
		if i.Jail == "" {
			for _, a := range i.Addrs {
				h.addrs[i.Name+" "+a] = true
			}
		}
		if i.MTU != 0 && i.MTU != 1500 {
			h.mtu[i.Name] = fmt.Sprint(i.MTU)
		}
	}
	for _, r := range d.Routes {
		h.routes[fmt.Sprint(r.FIB)+" "+r.Dest] = r.Gateway
	}
	for _, s := range d.Services {
		h.services[s.Name] = true
	}
	for _, j := range d.Jails {
		h.jails[j.Name] = true
	}
	return h
}

// same compares the observable state; epair units may differ.
func (h *host) same(o *host) string {
	names := func(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
	switch {
	case !slices.Equal(names(h.ifaces), names(o.ifaces)):
		return fmt.Sprintf("interfaces %v vs %v", names(h.ifaces), names(o.ifaces))
	case !maps.Equal(h.members, o.members):
		return fmt.Sprintf("members %v vs %v", h.members, o.members)
	case !maps.Equal(h.addrs, o.addrs):
		return fmt.Sprintf("addrs %v vs %v", h.addrs, o.addrs)
	case !maps.Equal(h.mtu, o.mtu):
		return fmt.Sprintf("mtu %v vs %v", h.mtu, o.mtu)
	case !maps.Equal(h.routes, o.routes):
		return fmt.Sprintf("routes %v vs %v", h.routes, o.routes)
	case !maps.Equal(h.services, o.services):
		return fmt.Sprintf("services %v vs %v", h.services, o.services)
	case !maps.Equal(h.jails, o.jails):
		return fmt.Sprintf("jails %v vs %v", h.jails, o.jails)
	}
	return ""
}

func (h *host) RunLive(_ context.Context, argv ...string) ([]byte, error) {
	line := strings.Join(argv, " ")
	h.log = append(h.log, line)
	if line == h.fail {
		return nil, errors.New("exit 1: injected")
	}
	bad := func() ([]byte, error) { return nil, fmt.Errorf("%s: exit 1", line) }
	has := func(n string) bool { _, ok := h.ifaces[n]; return ok }
	switch {
	case line == "ifconfig epair create":
		u := fmt.Sprintf("epair%d", h.next)
		h.next++
		h.ifaces[u+"a"], h.ifaces[u+"b"] = u+"a", u+"b"
		return []byte(u + "a\n"), nil
	case argv[0] == "ifconfig" && len(argv) >= 3 && argv[2] == "create":
		if has(argv[4]) {
			return bad()
		}
		h.ifaces[argv[4]] = argv[1]
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 3 && argv[2] == "destroy":
		u, ok := h.ifaces[argv[1]]
		if !ok {
			return bad()
		}
		for n, v := range h.ifaces {
			if v == u || strings.HasPrefix(u, "epair") && strings.TrimRight(v, "ab") == strings.TrimRight(u, "ab") {
				delete(h.ifaces, n)
				for k := range h.members {
					if strings.HasSuffix(k, " "+n) || strings.HasPrefix(k, n+" ") {
						delete(h.members, k)
					}
				}
				for k := range h.addrs {
					if strings.HasPrefix(k, n+" ") {
						delete(h.addrs, k)
					}
				}
				delete(h.mtu, n)
			}
		}
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 4 && argv[2] == "name":
		u, ok := h.ifaces[argv[1]]
		if !ok || has(argv[3]) {
			return bad()
		}
		delete(h.ifaces, argv[1])
		h.ifaces[argv[3]] = u
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 4 && (argv[2] == "addm" || argv[2] == "deletem"):
		k := argv[1] + " " + argv[3]
		if !has(argv[1]) || !has(argv[3]) || h.members[k] == (argv[2] == "addm") {
			return bad()
		}
		h.members[k] = argv[2] == "addm"
		if !h.members[k] {
			delete(h.members, k)
		}
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 5 && (argv[4] == "alias" || argv[4] == "-alias"):
		k := argv[1] + " " + argv[3]
		if !has(argv[1]) || h.addrs[k] == (argv[4] == "alias") {
			return bad()
		}
		h.addrs[k] = true
		if argv[4] == "-alias" {
			delete(h.addrs, k)
		}
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 4 && argv[2] == "mtu":
		h.mtu[argv[1]] = argv[3]
		if argv[3] == "1500" {
			delete(h.mtu, argv[1])
		}
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 3 && argv[2] == "up":
		if !has(argv[1]) {
			return bad()
		}
		return nil, nil
	case argv[0] == "route":
		r, _ := hostdesc.ParseRoute("x", strings.Join(argv[3:], " "))
		k := fmt.Sprint(r.FIB) + " " + r.Dest
		_, exists := h.routes[k]
		switch argv[2] {
		case "add":
			if exists {
				return bad()
			}
			h.routes[k] = r.Gateway
		case "change":
			if !exists {
				return bad()
			}
			h.routes[k] = r.Gateway
		case "delete":
			if !exists {
				return bad()
			}
			delete(h.routes, k)
		}
		return nil, nil
	case line == "service jail start "+argv[len(argv)-1]:
		h.jails[argv[3]] = true
		return nil, nil
	case line == "service jail stop "+argv[len(argv)-1]:
		delete(h.jails, argv[3])
		return nil, nil
	case argv[0] == "service":
		switch argv[2] {
		case "start":
			h.services[argv[1]] = true
		case "stop":
			delete(h.services, argv[1])
		}
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 2:
		if !has(argv[1]) {
			return bad()
		}
		return nil, nil
	case argv[0] == "sysctl" || argv[0] == "hostname":
		return nil, nil
	}
	return nil, fmt.Errorf("fake host: unknown command %q", line)
}

type transition struct {
	name     string
	old, new *hostdesc.Host
}

func transitions(t *testing.T) []transition {
	base := desc(t, baseRC, baseJails)
	web2 := desc(t, edit(baseRC, addWeb2...), web2Jails)
	big := desc(t, edit(baseRC, append(append([]string{}, addWeb2...),
		`defaultrouter="203.0.113.1"`, `defaultrouter="203.0.113.2"`,
		"", `ifconfig_xnic_alias0="inet 203.0.113.11/32"`,
		`ifconfig_xbridge="inet`, `ifconfig_xbridge="mtu 9000 inet`,
		"", `static_routes="lan"`, "", `route_lan="-net 10.1.0.0/16 10.0.2.254 -fib 1"`,
		`sshd_enable="YES"`, `ntpd_enable="YES"`)...), web2Jails)
	return []transition{{"add-jail", base, web2}, {"remove-jail", web2, base}, {"many", base, big}, {"many-back", big, base}}
}

// apply runs a plan the way the engine does: Before steps, the files,
// After steps; any failure undoes everything.
// start are the jails the transition adds: the plan leaves them to the
// engine's jail units, which the model stands in for here.
func apply(ctx context.Context, x *Exec, p *Plan, start ...string) error {
	if err := x.Begin(7, p); err != nil {
		return err
	}
	err := x.Run(ctx, Before, nil, 0)
	if err == nil {
		err = x.Run(ctx, After, nil, 0)
	}
	if err == nil {
		// The engine's jail units start the new jails.
		for _, j := range start {
			x.Cmd.RunLive(ctx, "service", "jail", "start", j)
		}
	}
	if err != nil {
		if uerr := x.UndoAll(ctx, func() error { return nil }); uerr != nil {
			return errors.Join(err, uerr)
		}
		x.Finish()
		return err
	}
	return x.Finish()
}

// TestExecReachesNewState: every transition's plan, run on the model,
// gives the model of the new description, with the epair unit the kernel
// chose bound into the later steps.
func TestExecReachesNewState(t *testing.T) {
	for _, tr := range transitions(t) {
		p, err := Compute(tr.old, tr.new, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := newHost(tr.old)
		x := &Exec{Path: filepath.Join(t.TempDir(), JournalName), Cmd: h}
		var start []string
		for _, j := range tr.new.Jails {
			if !slices.ContainsFunc(tr.old.Jails, func(o hostdesc.Jail) bool { return o.Name == j.Name }) {
				start = append(start, j.Name)
			}
		}
		if err := apply(context.Background(), x, p, start...); err != nil {
			t.Fatalf("%s: %v\n%s", tr.name, err, strings.Join(h.log, "\n"))
		}
		if d := h.same(newHost(tr.new)); d != "" {
			t.Errorf("%s: not the new state: %s\n%s", tr.name, d, strings.Join(h.log, "\n"))
		}
		if tr.name == "add-jail" {
			want := "ifconfig epair create\nifconfig epair5a name web2_a\nifconfig web2_a up\nifconfig epair5b name web2_b\nifconfig xbridge addm web2_a\nservice jail start web2_j"
			if got := strings.Join(h.log, "\n"); got != want {
				t.Errorf("commands:\n%s\nwant\n%s", got, want)
			}
		}
	}
}

// TestExecFailureUndoes: a step failing anywhere leaves the old state.
func TestExecFailureUndoes(t *testing.T) {
	for _, tr := range transitions(t) {
		p, _ := Compute(tr.old, tr.new, nil)
		for i, s := range p.Steps {
			h := newHost(tr.old)
			h.fail = strings.Join(s.Do, " ")
			if s.Bind != "" || strings.Contains(h.fail, "epair") {
				h.fail = strings.ReplaceAll(h.fail, "epair2", "epair5")
			}
			x := &Exec{Path: filepath.Join(t.TempDir(), JournalName), Cmd: h}
			err := apply(context.Background(), x, p)
			var se *StepError
			if !errors.As(err, &se) || se.Index != i {
				t.Fatalf("%s step %d: err %v", tr.name, i, err)
			}
			if d := h.same(newHost(tr.old)); d != "" {
				t.Errorf("%s: failing step %d (%s): not the old state: %s\n%s", tr.name, i, h.fail, d, strings.Join(h.log, "\n"))
			}
		}
	}
}

var errKilled = errors.New("killed")

// TestExecKillAtEveryStep: the agent dies before step i, or right after
// step i ran but before the journal says so; a new Exec reads the journal
// and undoes: the old state exactly.
func TestExecKillAtEveryStep(t *testing.T) {
	for _, tr := range transitions(t) {
		p, _ := Compute(tr.old, tr.new, nil)
		for i := range p.Steps {
			for _, after := range []bool{false, true} {
				h := newHost(tr.old)
				path := filepath.Join(t.TempDir(), JournalName)
				x := &Exec{Path: path, Cmd: h}
				x.Hook = func(k int) error {
					if k != i {
						return nil
					}
					if after {
						// The command ran; the journal still says doing.
						h.RunLive(context.Background(), x.bind(p.Steps[k].Do)...)
						if p.Steps[k].Bind != "" {
							x.learn(p.Steps[k].Bind, []byte(fmt.Sprintf("epair%da", h.next-1)))
						}
					}
					return errKilled
				}
				x.Begin(7, p)
				err := x.Run(context.Background(), Before, nil, 0)
				if err == nil {
					err = x.Run(context.Background(), After, nil, 0)
				}
				if !errors.Is(err, errKilled) {
					t.Fatalf("%s: kill at %d: %v", tr.name, i, err)
				}
				// Recovery: a new process.
				r := &Exec{Path: path, Cmd: h}
				ok, err := r.Open()
				if !ok || err != nil || r.Serial() != 7 {
					t.Fatalf("open: %v %v", ok, err)
				}
				if err := r.UndoAll(context.Background(), nil); err != nil {
					t.Fatalf("%s: kill at %d (after=%v): undo: %v\n%s", tr.name, i, after, err, strings.Join(h.log, "\n"))
				}
				r.Finish()
				if d := h.same(newHost(tr.old)); d != "" {
					t.Errorf("%s: kill at %d (after=%v): not the old state: %s\n%s", tr.name, i, after, d, strings.Join(h.log, "\n"))
				}
				if ok, _ := (&Exec{Path: path}).Open(); ok {
					t.Errorf("journal left after recovery")
				}
			}
		}
	}
}

// TestExecManagementConfirm: a step on the management path is confirmed
// by the source answering; when it does not within the deadline, the
// run fails with ManagementLostError and the undo restores the route.
func TestExecManagementConfirm(t *testing.T) {
	base := desc(t, baseRC, baseJails)
	cut := desc(t, edit(baseRC, `defaultrouter="203.0.113.1"`, `defaultrouter="203.0.113.2"`), baseJails)
	p, err := Compute(base, cut, &Management{Iface: "xnic", Source: mustAddr("198.51.100.7")})
	if err != nil || !p.Mgmt() {
		t.Fatalf("plan: %v mgmt %v", err, p.Mgmt())
	}
	h := newHost(base)
	x := &Exec{Path: filepath.Join(t.TempDir(), JournalName), Cmd: h}
	x.Begin(3, p)
	start := time.Now()
	unreachable := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	err = x.Run(context.Background(), After, unreachable, 200*time.Millisecond)
	var ml *ManagementLostError
	if !errors.As(err, &ml) || time.Since(start) > 10*time.Second {
		t.Fatalf("err %v after %s", err, time.Since(start))
	}
	if h.routes["0 default"] != "203.0.113.2" {
		t.Fatalf("route not changed before the confirmation: %v", h.routes)
	}
	if err := x.UndoAll(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if d := h.same(newHost(base)); d != "" {
		t.Fatalf("not restored: %s", d)
	}
	// A source that answers confirms the change.
	h2 := newHost(base)
	x2 := &Exec{Path: filepath.Join(t.TempDir(), JournalName), Cmd: h2}
	x2.Begin(3, p)
	if err := x2.Run(context.Background(), After, func(context.Context) error { return nil }, time.Second); err != nil {
		t.Fatal(err)
	}
}
