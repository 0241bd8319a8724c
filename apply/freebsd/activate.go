package freebsd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
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
		err = d.activateSysctl(ctx)
	default:
		err = fmt.Errorf("unknown unit kind %q", u.Kind)
	}
	if err != nil {
		return fmt.Errorf("activate %s: %w", u, err)
	}
	return nil
}

// activatePF checks then loads pf_rules (normally /etc/pf.conf) in one
// transaction, then enables pf if it is not yet, as rc.d/pf's pf_start
// does. `pfctl -f` keeps the state table, unlike `service pf restart`,
// whose start runs pfctl -F all and drops every connection (FREEBSD.md 1.2).
func (d *Driver) activatePF(ctx context.Context) error {
	if err := d.reloadPF(ctx); err != nil {
		return err
	}
	on, err := d.PFEnabled(ctx)
	if err != nil || on {
		return err
	}
	r, err := d.run.Run(ctx, "pfctl", "-e")
	if err != nil {
		return err
	}
	if r.ExitCode != 0 && !strings.Contains(string(r.Stderr), "already enabled") {
		return commandError([]string{"pfctl", "-e"}, r)
	}
	return nil
}

// reloadPF is rc.d/pf's pf_resync (libexec/rc/rc.d/pf): `pfctl -n -f
// $pf_rules $pf_flags`, and only if that passes `pfctl -f $pf_rules
// $pf_flags`. pf.ko is loaded first: rc.d/pf has required_modules="pf"
// and nothing else loads it, so on a host where pf was never enabled the
// first pfctl finds no /dev/pf.
func (d *Driver) reloadPF(ctx context.Context) error {
	pf, err := readPFSettings(d.hostFile)
	if err != nil {
		return err
	}
	if pf.Rules != layout.PFConf {
		d.log.Warn("rc.conf sets pf_rules: loading it, as rc.d/pf does at boot", "pf_rules", pf.Rules)
	}
	if err := d.kldloadPF(ctx); err != nil {
		return err
	}
	conf := d.host(pf.Rules)
	argv := append([]string{"pfctl", "-n", "-f", conf}, pf.Flags...)
	r, err := d.run.Run(ctx, argv...)
	if err != nil {
		return err
	}
	if r.ExitCode != 0 {
		errs := layout.ParseToolErrors(r.Stderr, pf.Rules, func(s string) string { return s })
		return fmt.Errorf("pfctl -nf %s: %w", conf, errors.Join(errs...))
	}
	_, err = d.exec(ctx, append([]string{"pfctl", "-f", conf}, pf.Flags...)...)
	return err
}

// kldloadPF loads pf.ko unless it is loaded (kldload -n). Loading the
// module does not filter anything: pf stays disabled until pfctl -e.
// FreeBSD 14's pfctl -n still parses without /dev/pf (a dummy action);
// 15's pfctl opens /dev/pf and netlink first and fails with "Failed to
// open netlink" (sbin/pfctl/pfctl.c main, pfctl_open): so both the
// pre-check and the load need it, on both.
func (d *Driver) kldloadPF(ctx context.Context) error {
	if _, err := d.exec(ctx, "kldload", "-n", "pf"); err != nil {
		return fmt.Errorf("load pf.ko: %w", err)
	}
	return nil
}

// activateTable replaces one table's contents from the file that pf.conf
// (or a file it includes) declares for it: `table <T> ... file "F"`,
// without reloading the rules, when that is exactly what a reload would
// do. `pfctl -t T -T replace -f F` replaces the whole table
// (sbin/pfctl/pfctl_table.c pfctl_table): inline { } addresses of the
// declaration would be dropped, a const table refuses the change, and a
// table missing from the loaded ruleset is silently created persistent.
// So a table declared const or with inline addresses, or absent from
// `pfctl -s Tables`, gets a full rules reload instead, which rereads
// every table file. A table declared with several files gets their
// concatenation. A table with no file in pf.conf is an error: there is no
// convention to guess from, and a guess would empty the table.
func (d *Driver) activateTable(ctx context.Context, table string) error {
	pf, err := readPFSettings(d.hostFile)
	if err != nil {
		return err
	}
	decl, err := layout.TableIn(d.hostFile, pf.Rules, table)
	if err != nil {
		return err
	}
	if decl.Const || decl.Inline {
		d.log.Info("table declared const or with addresses: reloading the rules", "table", table, "file", decl.File, "line", decl.Line)
		return d.reloadPF(ctx)
	}
	loaded, err := d.loadedTables(ctx)
	if err != nil {
		return err
	}
	if !loaded[table] {
		d.log.Info("table not in the loaded ruleset: reloading the rules", "table", table)
		return d.reloadPF(ctx)
	}
	file := d.host(decl.Files[0])
	if len(decl.Files) > 1 {
		f, err := os.CreateTemp("", "rigger-table-*")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		for _, p := range decl.Files {
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

// loadedTables lists the tables of the loaded main ruleset: `pfctl -s
// Tables` prints the active ones, one name a line, with a tab and the
// anchor after tables of an anchor (sbin/pfctl/pfctl_table.c print_table).
// pf.ko not loaded means none.
func (d *Driver) loadedTables(ctx context.Context) (map[string]bool, error) {
	stdout, loaded, err := d.pfctlShow(ctx, "Tables")
	if err != nil || !loaded {
		return map[string]bool{}, err
	}
	out := map[string]bool{}
	for _, ln := range strings.Split(string(stdout), "\n") {
		if ln = strings.TrimSpace(ln); ln != "" && !strings.ContainsAny(ln, " \t") {
			out[ln] = true
		}
	}
	return out, nil
}

// pfctlShow runs `pfctl -s WHAT`. loaded is false when pf.ko is not
// loaded: /dev/pf is missing, "No such file or directory" (14) or "Failed
// to open netlink: No such file or directory" (15; sbin/pfctl/pfctl.c main).
func (d *Driver) pfctlShow(ctx context.Context, what string) (stdout []byte, loaded bool, err error) {
	argv := []string{"pfctl", "-s", what}
	r, err := d.run.Run(ctx, argv...)
	if err != nil {
		return nil, false, err
	}
	if r.ExitCode != 0 {
		if strings.Contains(string(r.Stderr), "No such file or directory") {
			return nil, false, nil
		}
		return nil, false, commandError(argv, r)
	}
	return r.Stdout, true, nil
}

// hostFile reads an absolute host path under the driver's root.
func (d *Driver) hostFile(p string) ([]byte, error) { return os.ReadFile(d.host(p)) }

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
	if _, err := d.exec(ctx, "wg", "syncconf", ifname, tmp); err != nil {
		return err
	}
	// Keys a config sets with `PostUp = wg set %i ... private-key FILE` or
	// `peer K preshared-key FILE` are not in the stripped file: syncconf
	// keeps them only for peers it keeps (wireguard-tools setconf.c
	// sync_conf), so a peer the change removed and a later change (or a
	// rollback) re-adds would come back without its preshared key. The
	// config's own `wg set` lines are applied again.
	conf, err := os.ReadFile(d.host(layout.WireGuardConf(ifname)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // wg-quick strip read it; nothing more to apply
	}
	if err != nil {
		return err
	}
	for _, ln := range strings.Split(string(conf), "\n") {
		k, v, ok := strings.Cut(ln, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "PostUp") {
			continue
		}
		argv := strings.Fields(strings.ReplaceAll(v, "%i", ifname))
		if len(argv) > 2 && path.Base(argv[0]) == "wg" && argv[1] == "set" {
			if _, err := d.exec(ctx, argv...); err != nil {
				return err
			}
		}
	}
	return nil
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
	stdout, loaded, err := d.pfctlShow(ctx, "info")
	if err != nil || !loaded {
		return false, err
	}
	on, err := ParsePFInfo(stdout)
	if err != nil || !on {
		return false, err
	}
	rules, err := d.exec(ctx, "pfctl", "-s", "rules")
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(rules.Stdout)) != "", nil
}

// sysctlConfs are the files rc.d/sysctl applies, in order.
var sysctlConfs = []string{layout.SysctlConf, "/etc/sysctl.conf.local"}

// activateSysctl applies sysctl.conf with `sysctl -f`, not `service sysctl
// restart`: rc.d/sysctl's sysctl_start (libexec/rc/rc.d/sysctl) runs
// `sysctl -i -f FILE >/dev/null`, which ignores unknown OIDs and always
// exits 0. sysctl -f exits with the number of lines that failed and
// prints `sysctl: MSG at line N` for each (sbin/sysctl/sysctl.c parsefile,
// parse); those become errors naming the file and line.
func (d *Driver) activateSysctl(ctx context.Context) error {
	var errs []error
	for _, f := range sysctlConfs {
		if _, err := os.Stat(d.host(f)); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		argv := []string{"sysctl", "-f", d.host(f)}
		r, err := d.run.Run(ctx, argv...)
		if err != nil {
			return err
		}
		if r.ExitCode == 0 {
			continue
		}
		errs = append(errs, parseSysctlErrors(r.Stderr, f)...)
		if len(errs) == 0 {
			errs = append(errs, &layout.FileError{File: f, Msg: commandError(argv, r).Error()})
		}
	}
	return errors.Join(errs...)
}
