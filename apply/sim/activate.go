package sim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/apply/freebsd/layout"
	"github.com/rigger-bsd/rigger/policy/pf"
	"github.com/rigger-bsd/rigger/verify"
)

// hostOwner names the host's own services in the state and logs.
const hostOwner = "host"

// Activate does to the sim host what the freebsd driver does to a real
// one, with the same failures.
func (d *Driver) Activate(ctx context.Context, u verify.Unit) error {
	err := d.activate(ctx, u)
	d.record(u.String(), err)
	if err != nil {
		return fmt.Errorf("activate %s: %w", u, err)
	}
	return nil
}

// Deactivate stops a jail a rollback takes away, as service jail stop.
func (d *Driver) Deactivate(ctx context.Context, u verify.Unit) error {
	if u.Kind != verify.UnitJail {
		return nil
	}
	err := d.update(func(s *State) error { return d.stopJail(s, u.Jail) })
	d.record("stop "+u.String(), err)
	if err != nil {
		return fmt.Errorf("deactivate %s: %w", u, err)
	}
	return nil
}

func (d *Driver) activate(ctx context.Context, u verify.Unit) error {
	switch u.Kind {
	case verify.UnitNone, verify.UnitCron:
		return nil
	case verify.UnitRebootRequired:
		d.log.Warn("reboot required to apply loader changes; not rebooting")
		return nil
	case verify.UnitPF:
		return d.loadPF()
	case verify.UnitPFTable:
		return d.loadTable(u.Name)
	case verify.UnitJail:
		if err := d.rcEnabled("jail"); err != nil {
			return err
		}
		return d.update(func(s *State) error {
			if err := d.stopJail(s, u.Jail); err != nil {
				return err
			}
			return d.startJail(s, u.Jail)
		})
	case verify.UnitJailService:
		return d.update(func(s *State) error { return d.restartJailService(s, u.Jail, u.Name) })
	case verify.UnitService:
		return d.update(func(s *State) error { return d.restartHostService(s, u.Name) })
	case verify.UnitNetif:
		have, err := d.hostIfaces()
		if err != nil {
			return err
		}
		if !have[u.Name] {
			return fmt.Errorf("ifconfig: interface %s does not exist", u.Name)
		}
		s, err := d.read()
		if err != nil {
			return err
		}
		for name, j := range s.Jails {
			if contains(j.Ifaces, u.Name) {
				return fmt.Errorf("ifconfig: interface %s does not exist (moved into vnet jail %s)", u.Name, name)
			}
		}
		return nil
	case verify.UnitWireGuard:
		return d.checkWireGuard(u.Name)
	case verify.UnitSysctl:
		return d.checkSysctl()
	}
	return fmt.Errorf("unknown unit kind %q", u.Kind)
}

// pfReader reads pf.conf's includes and table files: staged ones from the
// stage (when checking a bundle), the rest from the sandbox.
func (d *Driver) pfReader(stage string, staged map[string]bool) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if !path.IsAbs(p) {
			return nil, fmt.Errorf("%s: relative path (pfctl resolves it against its working directory)", p)
		}
		if staged[path.Clean(p)] {
			return os.ReadFile(hostPath(stage, p))
		}
		return os.ReadFile(d.host(p))
	}
}

// checkPF is pfctl -nf: our parser, plus the table files, which pfctl
// reads at parse time ("cannot load").
func checkPF(read func(string) ([]byte, error)) (ruleset []byte, tables map[string]string, err error) {
	if err := pf.CheckFile(layout.PFConf, pf.Options{ReadFile: read}); err != nil {
		return nil, nil, err
	}
	tables = map[string]string{}
	var errs []error
	var walk func(p string, depth int)
	walk = func(p string, depth int) {
		src, err := read(p)
		if err != nil {
			errs = append(errs, &layout.FileError{File: p, Msg: err.Error()})
			return
		}
		ruleset = append(ruleset, src...)
		for _, t := range layout.Tables(src) {
			var content [][]byte
			for _, f := range t.Files {
				b, err := read(f)
				if err == nil {
					_, err = layout.ParseTableFile(f, b)
				}
				if err != nil {
					errs = append(errs, &layout.FileError{File: p, Line: t.Line, Msg: fmt.Sprintf("cannot load %q: %v", f, err)})
					continue
				}
				content = append(content, b)
			}
			if len(t.Files) > 0 {
				tables[t.Name] = sha(content...)
			}
		}
		for _, inc := range layout.Includes(src) {
			if path.IsAbs(inc) && depth < 8 {
				walk(path.Clean(inc), depth+1)
			}
		}
	}
	walk(layout.PFConf, 0)
	return ruleset, tables, errors.Join(errs...)
}

// loadPF is pfctl -nf then pfctl -f: a broken ruleset leaves the loaded
// one in place.
func (d *Driver) loadPF() error {
	rules, tables, err := checkPF(d.pfReader("", nil))
	if err != nil {
		return fmt.Errorf("pfctl -nf %s: %w", layout.PFConf, err)
	}
	return d.update(func(s *State) error {
		s.PF = PFState{Enabled: true, Ruleset: sha(rules), Tables: tables, Loaded: time.Now().UTC()}
		return nil
	})
}

// loadTable is pfctl -t T -T replace -f FILE, FILE as pf.conf declares it.
func (d *Driver) loadTable(table string) error {
	read := readFileIn(d.root)
	files, err := layout.TableFilesIn(read, table)
	if err != nil {
		return err
	}
	var content [][]byte
	for _, f := range files {
		b, err := read(f)
		if err != nil {
			return fmt.Errorf("pfctl: %s: %w", f, err)
		}
		if _, err := layout.ParseTableFile(f, b); err != nil {
			return err
		}
		content = append(content, b)
	}
	return d.update(func(s *State) error {
		if !s.PF.Enabled {
			return errors.New("pfctl: Table does not exist. (pf not loaded)")
		}
		if s.PF.Tables == nil {
			s.PF.Tables = map[string]string{}
		}
		s.PF.Tables[table] = sha(content...)
		return nil
	})
}

// stopJail stops the jail's processes and forgets it (service jail stop).
func (d *Driver) stopJail(s *State, name string) error {
	var procs []Proc
	if j := s.Jails[name]; j != nil {
		procs = j.Procs
	}
	// Strays: started by an agent killed before it recorded them.
	err := terminateAll(append(procs, strays(d.root, name, "")...))
	delete(s.Jails, name)
	return err
}

// startJail is service jail start NAME plus the jail's /etc/rc: it fails
// where jail(8) would, then starts the services the jail's rc.conf
// enables. A service that dies at start fails the activation too (on
// FreeBSD the jail would run and the health check would catch it; here
// the reason is known, so it is reported).
func (d *Driver) startJail(s *State, name string) error {
	jp, err := d.planJail(name, s)
	if err != nil {
		return err
	}
	specs, err := d.services(d.host(jp.path), jp.vars, jp.addrs, "")
	if err != nil {
		return &JailError{Jail: name, Reason: err.Error()}
	}
	j := &JailState{Name: name, JID: s.NextJID, Path: jp.path, Ifaces: jp.ifaces, Addrs: jp.addrs, Started: time.Now().UTC()}
	s.NextJID++
	s.Jails[name] = j
	return d.startSpecs(s, name, j, specs)
}

func (d *Driver) startSpecs(s *State, owner string, j *JailState, specs []svcSpec) error {
	save := func() {
		if err := writeState(d.root, s); err != nil {
			d.log.Warn("sim: state", "err", err)
		}
	}
	started := func(p Proc) { j.Procs = append(j.Procs, p); save() }
	failed := func(p Proc) {
		for i := range j.Procs {
			if j.Procs[i].PID == p.PID {
				j.Procs = append(j.Procs[:i], j.Procs[i+1:]...)
				break
			}
		}
		save()
	}
	var errs []error
	for _, sp := range specs {
		_, err := d.start(owner, sp, started, failed)
		if errors.Is(err, errSkipped) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			// Keep a record so JailRunning reports the jail broken.
			j.Procs = append(j.Procs, Proc{Service: sp.service, Name: sp.name, Argv: sp.argv, Listen: sp.listen})
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w", owner, errors.Join(errs...))
	}
	return nil
}

// restartService stops owner's processes of service svc and starts them
// again from the current rc.conf. rc.subr refuses a service that is not
// enabled.
func (d *Driver) restartService(s *State, owner string, j *JailState, root string, v *rcVars, svc string) error {
	if !v.yes(svc + "_enable") {
		//lint:ignore ST1005 rc.subr's own message, word for word
		return fmt.Errorf("Cannot 'restart' %s. Set %s_enable to YES in /etc/rc.conf or use 'onerestart' instead of 'restart'.", svc, svc)
	}
	specs, err := d.services(root, v, j.Addrs, svc)
	if err != nil {
		return err
	}
	var keep, stop []Proc
	for _, p := range j.Procs {
		if p.Service == svc {
			stop = append(stop, p)
		} else {
			keep = append(keep, p)
		}
	}
	if err := terminateAll(append(stop, strays(d.root, owner, svc)...)); err != nil {
		return err
	}
	j.Procs = keep
	if len(specs) == 0 {
		d.log.Info("sim: no stand-in for service; restart is a no-op", "owner", owner, "service", svc)
	}
	return d.startSpecs(s, owner, j, specs)
}

// restartJailService is service -j JAIL SVC restart.
func (d *Driver) restartJailService(s *State, jail, svc string) error {
	j := s.Jails[jail]
	if j == nil {
		return fmt.Errorf("jexec: jail_getid: jail %q not found", jail)
	}
	v, err := d.readRC(d.host(j.Path), path.Join(j.Path, "etc/rc.conf"), path.Join(j.Path, "etc/rc.conf.local"))
	if err != nil {
		return err
	}
	return d.restartService(s, jail, j, d.host(j.Path), v, svc)
}

// restartHostService is service SVC restart on the host.
func (d *Driver) restartHostService(s *State, svc string) error {
	v, err := d.readRC(d.root, layout.RCConf, "/etc/rc.conf.local")
	if err != nil {
		return err
	}
	if s.Host == nil {
		s.Host = &JailState{Name: hostOwner, Path: "/", Started: time.Now().UTC()}
	}
	addrs, err := v.ifaceAddrs(nil)
	if err != nil {
		return err
	}
	s.Host.Addrs = nil
	for _, a := range addrs {
		s.Host.Addrs = append(s.Host.Addrs, a.String())
	}
	return d.restartService(s, hostOwner, s.Host, d.root, v, svc)
}

// checkWireGuard stands in for wg syncconf: the config must exist and
// look like a wg-quick file.
func (d *Driver) checkWireGuard(ifname string) error {
	p := layout.WireGuardConf(ifname)
	b, err := os.ReadFile(d.host(p))
	if err != nil {
		return fmt.Errorf("wg-quick: %s: %w", p, err)
	}
	if !bytes.Contains(b, []byte("[Interface]")) {
		return &layout.FileError{File: p, Msg: "no [Interface] section"}
	}
	return nil
}

var sysctlLine = regexp.MustCompile(`^[A-Za-z0-9_.%-]+=`)

// checkSysctl stands in for service sysctl restart: every line of
// /etc/sysctl.conf must be name=value.
func (d *Driver) checkSysctl() error {
	b, err := os.ReadFile(d.host(layout.SysctlConf))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		ln := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(ln, '#'); i >= 0 {
			ln = strings.TrimSpace(ln[:i])
		}
		if ln != "" && !sysctlLine.MatchString(ln) {
			return &layout.FileError{File: layout.SysctlConf, Line: n, Msg: fmt.Sprintf("sysctl: bad line %q", ln)}
		}
	}
	return nil
}

// rcEnabled is rc.subr's refusal to restart a service whose NAME_enable
// is not YES in the host's rc.conf.
func (d *Driver) rcEnabled(svc string) error {
	v, err := d.readRC(d.root, layout.RCConf, "/etc/rc.conf.local")
	if err != nil {
		return err
	}
	if !v.yes(svc + "_enable") {
		//lint:ignore ST1005 rc.subr's own message, word for word
		return fmt.Errorf("Cannot 'restart' %s. Set %s_enable to YES in /etc/rc.conf or use 'onerestart' instead of 'restart'.", svc, svc)
	}
	return nil
}
