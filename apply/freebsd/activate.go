package freebsd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rigger-bsd/rigger/apply/freebsd/layout"
	"github.com/rigger-bsd/rigger/verify"
)

// Activate brings one unit in line with the installed files.
func (d *Driver) Activate(ctx context.Context, u verify.Unit) error {
	var err error
	switch u.Kind {
	case verify.UnitNone, verify.UnitCron: // cron rereads /etc/cron.d itself
	case verify.UnitRebootRequired:
		d.log.Warn("reboot required to apply loader changes; not rebooting")
	case verify.UnitPF:
		err = d.activatePF(ctx)
	case verify.UnitPFTable:
		err = d.activateTable(ctx, u.Name)
	case verify.UnitJail:
		err = d.activateJail(ctx, u.Jail)
	case verify.UnitJailService:
		// service(8) -j runs the rc script inside the jail (jexec).
		_, err = d.service(ctx, u.Jail, u.Name, "restart")
	case verify.UnitService:
		_, err = d.service(ctx, "", u.Name, "restart")
	case verify.UnitNetif:
		err = d.activateNetif(ctx, u.Name)
	case verify.UnitWireGuard:
		err = d.activateWireGuard(ctx, u.Name)
	case verify.UnitSysctl:
		_, err = d.exec(ctx, "service", "sysctl", "restart")
	default:
		err = fmt.Errorf("unknown unit kind %q", u.Kind)
	}
	if err != nil {
		return fmt.Errorf("activate %s: %w", u, err)
	}
	return nil
}

// activatePF checks then loads /etc/pf.conf in one transaction; pfctl -f
// keeps the state table, unlike `service pf restart`, whose start runs
// pfctl -F all and drops every connection (FREEBSD.md 1.2). If pf is not
// enabled yet it is enabled, as rc.d/pf's start does.
func (d *Driver) activatePF(ctx context.Context) error {
	conf := d.host(layout.PFConf)
	argv := []string{"pfctl", "-n", "-f", conf}
	r, err := d.run.Run(ctx, argv...)
	if err != nil {
		return err
	}
	if r.ExitCode != 0 {
		errs := layout.ParseToolErrors(r.Stderr, layout.PFConf, func(s string) string { return s })
		return fmt.Errorf("pfctl -nf %s: %w", conf, errors.Join(errs...))
	}
	if _, err := d.exec(ctx, "pfctl", "-f", conf); err != nil {
		return err
	}
	on, err := d.PFEnabled(ctx)
	if err != nil || on {
		return err
	}
	r, err = d.run.Run(ctx, "pfctl", "-e")
	if err != nil {
		return err
	}
	if r.ExitCode != 0 && !strings.Contains(string(r.Stderr), "already enabled") {
		return commandError([]string{"pfctl", "-e"}, r)
	}
	return nil
}

// activateTable replaces one table's contents from the file that pf.conf
// (or a file it includes) declares for it: `table <T> ... file "F"`. The
// rules are not reloaded. A table declared with several files gets their
// concatenation. A table with no file in pf.conf is an error: there is no
// convention to guess from, and a guess would empty the table.
func (d *Driver) activateTable(ctx context.Context, table string) error {
	files, err := d.tableFiles(table)
	if err != nil {
		return err
	}
	file := d.host(files[0])
	if len(files) > 1 {
		f, err := os.CreateTemp("", "rigger-table-*")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		for _, p := range files {
			b, err := os.ReadFile(d.host(p))
			if err != nil {
				f.Close()
				return fmt.Errorf("table <%s>: %w", table, err)
			}
			if _, err := f.Write(append(b, '\n')); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
		file = f.Name()
	}
	_, err = d.exec(ctx, "pfctl", "-t", table, "-T", "replace", "-f", file)
	return err
}

// tableFiles finds the files of table in the installed pf.conf and the
// files it includes.
func (d *Driver) tableFiles(table string) ([]string, error) {
	return layout.TableFilesIn(func(p string) ([]byte, error) { return os.ReadFile(d.host(p)) }, table)
}

// activateJail restarts one jail and asks jls whether it runs: rc.d/jail
// exits 0 even when the jail fails to start, so its output only explains.
func (d *Driver) activateJail(ctx context.Context, name string) error {
	r, err := d.service(ctx, "", "jail", "restart", name)
	if err != nil {
		return err
	}
	running, err := d.JailRunning(ctx, name)
	if err != nil {
		return err
	}
	if running {
		return nil
	}
	out := append(append([]byte{}, r.Stdout...), r.Stderr...)
	if reason, ok := ServiceJailFailure(out, name); ok {
		return &JailStartError{Jail: name, Reason: reason}
	}
	return &JailStartError{Jail: name, Reason: "not running after service jail restart (jls -j " + name + ")"}
}

// Deactivate stops a jail that a rollback removes from the config, while
// its jail.conf entry still exists: `service jail stop NAME`, then jls
// must no longer list it (the rc script exits 0 either way).
func (d *Driver) Deactivate(ctx context.Context, u verify.Unit) error {
	if u.Kind != verify.UnitJail {
		return nil
	}
	if _, err := d.service(ctx, "", "jail", "stop", u.Jail); err != nil {
		return fmt.Errorf("deactivate %s: %w", u, err)
	}
	running, err := d.JailRunning(ctx, u.Jail)
	if err != nil {
		return fmt.Errorf("deactivate %s: %w", u, err)
	}
	if running {
		return fmt.Errorf("deactivate %s: still running after service jail stop (jls -j %s)", u, u.Jail)
	}
	return nil
}

// service runs `service [-j JAIL] NAME VERB ARGS...` and fails on a
// non-zero exit, and also when rc.subr printed that it did nothing because
// the service is not enabled (run_rc_command returns 0 then).
func (d *Driver) service(ctx context.Context, jail, name, verb string, args ...string) (Result, error) {
	argv := []string{"service"}
	if jail != "" {
		argv = append(argv, "-j", jail)
	}
	argv = append(append(argv, name, verb), args...)
	r, err := d.exec(ctx, argv...)
	if err != nil {
		return r, err
	}
	if rcvar, ok := ServiceNotEnabled(r.Stdout); ok {
		return r, &ServiceNotEnabledError{Jail: jail, Service: name, Verb: verb, RCVar: rcvar}
	}
	return r, nil
}

// ServiceNotEnabledError: service(8) did nothing because the service's
// rcvar is not YES. The unit was meant to run, so the fix is the rcvar.
type ServiceNotEnabledError struct {
	Jail, Service, Verb, RCVar string
}

func (e *ServiceNotEnabledError) Error() string {
	where := "/etc/rc.conf"
	cmd := "service " + e.Service + " " + e.Verb
	if e.Jail != "" {
		where = "jail " + e.Jail + "'s /etc/rc.conf"
		cmd = "service -j " + e.Jail + " " + e.Service + " " + e.Verb
	}
	return fmt.Sprintf("%s did nothing: %s is not YES (set %s=\"YES\" in %s)", cmd, e.RCVar, e.RCVar, where)
}

// JailStartError: a jail did not come up.
type JailStartError struct {
	Jail   string
	Reason string
}

func (e *JailStartError) Error() string { return "jail " + e.Jail + " did not start: " + e.Reason }

// activateNetif restarts one interface only. A bare `service netif
// restart` destroys every cloned interface, including the epairs of
// running vnet jails, and `service routing restart` flushes every route;
// neither is ever run. `netif restart IF` re-adds IF's own static routes
// (FREEBSD.md 5.3). Whether IF may be restarted at all is the engine's
// call (manifest netif_restart).
func (d *Driver) activateNetif(ctx context.Context, ifname string) error {
	if _, err := d.service(ctx, "", "netif", "restart", ifname); err != nil {
		return err
	}
	_, err := d.exec(ctx, "ifconfig", ifname)
	return err
}

// activateWireGuard applies a changed wg-quick config. A running
// interface gets `wg syncconf` with the stripped config, which changes only
// what differs and keeps peer sessions (FREEBSD.md 8); addresses and routes
// in the [Interface] section need a restart of the interface by hand. A
// missing interface is brought up with wg-quick.
func (d *Driver) activateWireGuard(ctx context.Context, ifname string) error {
	r, err := d.run.Run(ctx, "wg", "show", ifname)
	if err != nil {
		return err
	}
	if r.ExitCode != 0 {
		_, err := d.exec(ctx, "wg-quick", "up", ifname)
		return err
	}
	strip, err := d.exec(ctx, "wg-quick", "strip", ifname)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "rigger-wg-") // 0700: holds a private key
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, ifname+".conf")
	if err := os.WriteFile(tmp, strip.Stdout, 0o600); err != nil {
		return err
	}
	_, err = d.exec(ctx, "wg", "syncconf", ifname, tmp)
	return err
}

// JailRunning asks jls(8). A missing or dying jail is "not running", not
// an error: without -d, jls -j NAME fails with `jls: jail "NAME" not found`
// or, for a jail that is going away (a vnet jail stays dying while sockets
// linger), `jls: jail "NAME" is dying` (sys/kern/kern_jail.c
// kern_jail_get, both ENOENT; usr.sbin/jls/jls.c main, xo_errx with
// jail_errmsg), exit 1.
func (d *Driver) JailRunning(ctx context.Context, name string) (bool, error) {
	argv := []string{"jls", "--libxo", "json", "-v", "-j", name}
	r, err := d.run.Run(ctx, argv...)
	if err != nil {
		return false, err
	}
	if r.ExitCode != 0 {
		q := `jail "` + name + `" `
		if e := string(r.Stderr); strings.Contains(e, q+"not found") || strings.Contains(e, q+"is dying") {
			return false, nil
		}
		return false, commandError(argv, r)
	}
	jails, err := ParseJLS(r.Stdout)
	if err != nil {
		return false, err
	}
	for _, j := range jails {
		if (j.Name == name || j.Name == "") && (j.State == "" || j.State == "ACTIVE") {
			return true, nil
		}
	}
	return false, nil
}

// PFEnabled reports pf enabled (pfctl -s info) with rules loaded
// (pfctl -s rules prints at least one). pf.ko not loaded means disabled.
func (d *Driver) PFEnabled(ctx context.Context) (bool, error) {
	argv := []string{"pfctl", "-s", "info"}
	r, err := d.run.Run(ctx, argv...)
	if err != nil {
		return false, err
	}
	if r.ExitCode != 0 {
		if strings.Contains(string(r.Stderr), "No such file or directory") {
			return false, nil // /dev/pf missing: pf.ko not loaded
		}
		return false, commandError(argv, r)
	}
	on, err := ParsePFInfo(r.Stdout)
	if err != nil || !on {
		return false, err
	}
	rules, err := d.exec(ctx, "pfctl", "-s", "rules")
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(rules.Stdout)) != "", nil
}
