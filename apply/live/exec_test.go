package live

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply/live/livetest"
	"github.com/rigger-bsd/rigger/policy/hostdesc"
	"github.com/rigger-bsd/rigger/policy/hostplan/plantest"
)

type transition struct {
	name     string
	old, new *hostdesc.Host
}

func transitions(t *testing.T) []transition {
	base := plantest.Desc(t, plantest.BaseRC, plantest.BaseJails)
	web2 := plantest.Desc(t, plantest.Edit(plantest.BaseRC, plantest.AddWeb2...), plantest.Web2Jails)
	big := plantest.Desc(t, plantest.Edit(plantest.BaseRC, append(append([]string{}, plantest.AddWeb2...),
		`defaultrouter="203.0.113.1"`, `defaultrouter="203.0.113.2"`,
		"", `ifconfig_xnic_alias0="inet 203.0.113.11/32"`,
		`ifconfig_xbridge="inet`, `ifconfig_xbridge="mtu 9000 inet`,
		"", `static_routes="lan"`, "", `route_lan="-net 10.1.0.0/16 10.0.2.254 -fib 1"`,
		`sshd_enable="YES"`, `ntpd_enable="YES"`)...), plantest.Web2Jails)
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
		h := livetest.New(tr.old)
		x := &Exec{Path: filepath.Join(t.TempDir(), JournalName), Cmd: h}
		var start []string
		for _, j := range tr.new.Jails {
			if !slices.ContainsFunc(tr.old.Jails, func(o hostdesc.Jail) bool { return o.Name == j.Name }) {
				start = append(start, j.Name)
			}
		}
		if err := apply(context.Background(), x, p, start...); err != nil {
			t.Fatalf("%s: %v\n%s", tr.name, err, strings.Join(h.Log, "\n"))
		}
		if d := h.Same(livetest.New(tr.new)); d != "" {
			t.Errorf("%s: not the new state: %s\n%s", tr.name, d, strings.Join(h.Log, "\n"))
		}
		if tr.name == "add-jail" {
			want := "ifconfig epair create\nifconfig epair5a name web2_a\nifconfig web2_a up\nifconfig epair5b name web2_b\nifconfig xbridge addm web2_a\nservice jail start web2_j"
			if got := strings.Join(h.Log, "\n"); got != want {
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
			h := livetest.New(tr.old)
			h.Fail = strings.Join(s.Do, " ")
			if s.Bind != "" || strings.Contains(h.Fail, "epair") {
				h.Fail = strings.ReplaceAll(h.Fail, "epair2", "epair5")
			}
			x := &Exec{Path: filepath.Join(t.TempDir(), JournalName), Cmd: h}
			err := apply(context.Background(), x, p)
			var se *StepError
			if !errors.As(err, &se) || se.Index != i {
				t.Fatalf("%s step %d: err %v", tr.name, i, err)
			}
			if d := h.Same(livetest.New(tr.old)); d != "" {
				t.Errorf("%s: failing step %d (%s): not the old state: %s\n%s", tr.name, i, h.Fail, d, strings.Join(h.Log, "\n"))
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
				h := livetest.New(tr.old)
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
							x.learn(p.Steps[k].Bind, []byte(fmt.Sprintf("epair%da", h.Next-1)))
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
					t.Fatalf("%s: kill at %d (after=%v): undo: %v\n%s", tr.name, i, after, err, strings.Join(h.Log, "\n"))
				}
				r.Finish()
				if d := h.Same(livetest.New(tr.old)); d != "" {
					t.Errorf("%s: kill at %d (after=%v): not the old state: %s\n%s", tr.name, i, after, d, strings.Join(h.Log, "\n"))
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
	base := plantest.Desc(t, plantest.BaseRC, plantest.BaseJails)
	cut := plantest.Desc(t, plantest.Edit(plantest.BaseRC, `defaultrouter="203.0.113.1"`, `defaultrouter="203.0.113.2"`), plantest.BaseJails)
	p, err := Compute(base, cut, &Management{Iface: "xnic", Source: netip.MustParseAddr("198.51.100.7")})
	if err != nil || !p.Mgmt() {
		t.Fatalf("plan: %v mgmt %v", err, p.Mgmt())
	}
	h := livetest.New(base)
	x := &Exec{Path: filepath.Join(t.TempDir(), JournalName), Cmd: h}
	x.Begin(3, p)
	start := time.Now()
	unreachable := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	err = x.Run(context.Background(), After, unreachable, 200*time.Millisecond)
	var ml *ManagementLostError
	if !errors.As(err, &ml) || time.Since(start) > 10*time.Second {
		t.Fatalf("err %v after %s", err, time.Since(start))
	}
	if h.Routes["0 default"] != "203.0.113.2" {
		t.Fatalf("route not changed before the confirmation: %v", h.Routes)
	}
	if err := x.UndoAll(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if d := h.Same(livetest.New(base)); d != "" {
		t.Fatalf("not restored: %s", d)
	}
	// A source that answers confirms the change.
	h2 := livetest.New(base)
	x2 := &Exec{Path: filepath.Join(t.TempDir(), JournalName), Cmd: h2}
	x2.Begin(3, p)
	if err := x2.Run(context.Background(), After, func(context.Context) error { return nil }, time.Second); err != nil {
		t.Fatal(err)
	}
}
