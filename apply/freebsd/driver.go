// Package freebsd is the host driver for a real FreeBSD host: it checks
// staged files with the system's own tools (pfctl -nf, jail -e, sh -n) and
// activates units with pfctl, service(8), jls(8) and wg(8), exactly as
// reference/FREEBSD.md records them. Every command goes through a Runner,
// so the parsing is tested on Linux against outputs recorded on FreeBSD.
package freebsd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/freebsd/layout"
	"github.com/rigger-bsd/rigger/verify"
)

func init() {
	apply.RegisterDriver("freebsd", func(o apply.DriverOptions) (apply.Driver, error) {
		return New(o, ExecRunner{}), nil
	})
}

// Driver drives a FreeBSD host. It starts nothing of its own: Close is a
// no-op and jails keep running when the agent exits.
type Driver struct {
	root string
	run  Runner
	log  *slog.Logger
	// shOK holds the digests of the rc file contents sh -n accepted
	// (checkSh): the same bytes are not checked by a process again.
	shMu sync.Mutex
	shOK map[[sha256.Size]byte]bool
}

// shOKMax bounds shOK: a host has a few dozen rc files, each with a
// couple of versions in flight; past the bound the set starts over.
const shOKMax = 1024

var _ apply.Driver = (*Driver)(nil)

// New returns a driver for the host under opts.Root ("/" on a real host),
// running commands through r.
func New(opts apply.DriverOptions, r Runner) *Driver {
	root := opts.Root
	if root == "" {
		root = "/"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Driver{root: filepath.Clean(root), run: r, log: log}
}

func (d *Driver) Name() string { return "freebsd" }
func (d *Driver) Close() error { return nil }

// host maps an absolute host path under the driver's root.
func (d *Driver) host(p string) string { return filepath.Join(d.root, filepath.FromSlash(p)) }

// exec runs argv and fails on a non-zero exit.
func (d *Driver) exec(ctx context.Context, argv ...string) (Result, error) {
	d.log.Debug("run", "argv", argv)
	r, err := d.run.Run(ctx, argv...)
	if err != nil {
		return r, err
	}
	if r.ExitCode != 0 {
		return r, commandError(argv, r)
	}
	return r, nil
}

// Precheck checks the staged tree with the host's tools; see preparePF for
// how staged table files are the ones pfctl reads.
//
// It runs in two parts. First, in file order, everything that reads or
// rewrites a staged file before a tool sees it (the path rewrites of
// pf.conf and the jail.conf files, the table files' bytes); then the
// tools themselves (pfctl -nf, jail -e, the table parses), which only
// read, run together. The problems come in the order of the checks run
// one after the other: pf.conf's first, then each file's in file order,
// then sh -n's. (Only a pf.conf that includes a jail.conf would now see
// that file rewritten; pfctl refuses such a file either way.)
func (d *Driver) Precheck(ctx context.Context, stage string, files []verify.File) error {
	staged := map[string]bool{}
	for _, f := range files {
		staged[path.Clean(f.Path)] = true
	}
	// sh -n of the rc files (one process each, but for plain rc.conf
	// files) runs beside the other checks: it reads files no rewrite
	// touches.
	var rc []string
	for _, f := range files {
		if p := path.Clean(f.Path); layout.IsRCFile(p) && !layout.IsJailConf(p) {
			rc = append(rc, p)
		}
	}
	shErrs := make([][]error, len(rc))
	var sh sync.WaitGroup
	for i, p := range rc {
		sh.Go(func() { shErrs[i] = d.checkSh(ctx, stage, p) })
	}
	// checks[i] yields the problems of the i-th check, in report order.
	var checks []func() []error
	if staged[layout.PFConf] {
		checks = append(checks, d.preparePF(ctx, stage, staged))
	}
	for _, f := range files {
		p := path.Clean(f.Path)
		if u, err := verify.ParseUnit(f.Unit); err == nil && u.Kind == verify.UnitPFTable {
			src, err := os.ReadFile(filepath.Join(stage, p))
			checks = append(checks, func() []error {
				if err != nil {
					return []error{&layout.FileError{File: p, Msg: err.Error()}}
				}
				if _, err := layout.ParseTableFile(p, src); err != nil {
					return []error{err}
				}
				return nil
			})
		}
		if layout.IsJailConf(p) {
			checks = append(checks, d.prepareJailConf(ctx, stage, p, staged))
		}
	}
	results := make([][]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { results[i] = c() })
	}
	wg.Wait()
	sh.Wait()
	var errs []error
	for _, r := range results {
		errs = append(errs, r...)
	}
	for _, e := range shErrs {
		errs = append(errs, e...)
	}
	return precheckError(errs)
}

// failed is a check whose problems are known before any tool runs.
func failed(errs ...error) func() []error { return func() []error { return errs } }

// precheckError hands the engine an *apply.PrecheckError naming the first
// host file at fault, with every problem inside (each a *layout.FileError
// where a file is known).
func precheckError(errs []error) error {
	var keep []error
	for _, e := range errs {
		if e != nil {
			keep = append(keep, e)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	p := layout.FirstFile(keep)
	if p == "" {
		p = "staged tree"
	}
	return &apply.PrecheckError{Path: p, Err: errors.Join(keep...)}
}

// unstage maps a path a tool printed back to the host path.
func unstage(stage string) func(string) string {
	stage = filepath.Clean(stage)
	return func(s string) string { return strings.ReplaceAll(s, stage+"/", "/") }
}

// preparePF readies pfctl -nf on the staged pf.conf and returns the
// check, to be run once every staged file is rewritten (Precheck). pfctl reads table files
// and includes at parse time, by the absolute paths written in pf.conf,
// which name the live host files. So in the staged pf.conf (and each
// staged include, recursively) every `file "P"` / `include "P"` that the
// bundle carries is rewritten to stage/P; paths the bundle does not carry
// keep naming the host's file. The staged copies are rewritten in place
// (the stage is the driver's scratch copy, see apply.Driver), not copied
// to temp files: a file created and removed per check costs more than
// the check on a filesystem that scans its freed inodes at each create
// (ext4 without a journal: fs/ext4/ialloc.c, recently_deleted). The
// rewrite never adds or removes a line, so pfctl's FILE:LINE errors map
// back to the host path exactly. (A path held in a macro is not
// rewritten: pf.conf in the wild writes table paths literally.)
func (d *Driver) preparePF(ctx context.Context, stage string, staged map[string]bool) func() []error {
	done := map[string]bool{} // staged files rewritten (or being rewritten)
	var rewrite func(hostPath string) error
	rewrite = func(hostPath string) error {
		done[hostPath] = true
		name := filepath.Join(stage, hostPath)
		src, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		out := layout.RewritePaths(src, func(kind, p string) (string, bool) {
			if !path.IsAbs(p) || d.mapped(stage, p) {
				return "", false // relative, or rewritten already
			}
			p = path.Clean(p)
			if staged[p] {
				if kind == "include" && !done[p] {
					// Unreadable: pfctl, given the staged path, says so.
					_ = rewrite(p)
				}
				return filepath.Join(stage, p), true
			}
			if d.root != "/" {
				return d.host(p), true
			}
			return "", false
		})
		return rewriteInPlace(name, src, out)
	}
	if err := rewrite(layout.PFConf); err != nil {
		return failed(&layout.FileError{File: layout.PFConf, Msg: err.Error()})
	}
	conf := filepath.Join(stage, layout.PFConf)
	// pf_flags can define macros (-D) the rules need: check with them, as
	// rc.d/pf's pf_check does, read from the rc.conf being installed.
	pf, err := readPFSettings(func(p string) ([]byte, error) {
		if staged[p] {
			return os.ReadFile(filepath.Join(stage, p))
		}
		return d.hostFile(p)
	})
	if err != nil {
		return failed(err)
	}
	if err := d.kldloadPF(ctx); err != nil {
		return failed(&layout.FileError{File: layout.PFConf, Msg: "pf pre-check: " + err.Error()})
	}
	argv := append([]string{"pfctl", "-n", "-f", conf}, pf.Flags...)
	return func() []error {
		r, err := d.run.Run(ctx, argv...)
		if err != nil {
			return []error{fmt.Errorf("pf pre-check: %w", err)}
		}
		if r.ExitCode == 0 {
			return nil
		}
		errs := layout.ParseToolErrors(r.Stderr, layout.PFConf, unstage(stage))
		if len(errs) == 0 {
			errs = append(errs, &layout.FileError{File: layout.PFConf, Msg: commandError(argv, r).Error()})
		}
		return errs
	}
}

// prepareJailConf readies `jail -f CONF -e ,` (jail(8) parses the file and
// lists the configured jails without creating, changing or removing any.
// It is not a validator: after a syntax error it exits 1, but unknown
// variables, redefined parameters and bad values are printed on stderr
// while it still prints the jails and exits 0 (usr.sbin/jail/config.c
// load_config, add_param; jail.c main: show_jails then exit(0)). So any
// stderr output fails the check. Stdout is one line per jail,
// `name=NAME,path=...` (jail.c print_jail, print_param).
// `.include` paths the bundle carries are pointed at the stage, in place,
// as for pf.
func (d *Driver) prepareJailConf(ctx context.Context, stage, p string, staged map[string]bool) func() []error {
	conf := filepath.Join(stage, p)
	src, err := os.ReadFile(conf)
	if err != nil {
		return failed(&layout.FileError{File: p, Msg: err.Error()})
	}
	rewritten := layout.RewritePaths(src, func(kind, inc string) (string, bool) {
		if kind != "include" || !path.IsAbs(inc) || d.mapped(stage, inc) {
			return "", false
		}
		for s := range staged {
			if ok, _ := path.Match(inc, s); ok || s == inc {
				return filepath.Join(stage, inc), true
			}
		}
		if d.root != "/" {
			return d.host(inc), true
		}
		return "", false
	})
	if err := rewriteInPlace(conf, src, rewritten); err != nil {
		return failed(fmt.Errorf("jail pre-check: %w", err))
	}
	argv := []string{"jail", "-f", conf, "-e", ","}
	return func() []error {
		r, err := d.run.Run(ctx, argv...)
		if err != nil {
			return []error{fmt.Errorf("jail pre-check: %w", err)}
		}
		if r.ExitCode == 0 && len(bytes.TrimSpace(r.Stderr)) == 0 {
			return nil
		}
		errs := layout.ParseToolErrors(r.Stderr, p, unstage(stage))
		if len(errs) == 0 {
			errs = append(errs, &layout.FileError{File: p, Msg: commandError(argv, r).Error()})
		}
		return errs
	}
}

// mapped reports whether p, read in a staged file, is a path a check of
// the same stage rewrote already: into the stage, or under a root that is
// not "/".
func (d *Driver) mapped(stage, p string) bool {
	return strings.HasPrefix(p, filepath.Clean(stage)+"/") || d.root != "/" && strings.HasPrefix(p, d.root+"/")
}

// rewriteInPlace replaces the staged file name's contents src with out,
// in place (no O_TRUNC: ext4 flushes a file truncated to zero at its
// close, auto_da_alloc), when they differ.
func rewriteInPlace(name string, src, out []byte) error {
	if bytes.Equal(src, out) {
		return nil
	}
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(out)
	if err == nil {
		err = f.Truncate(int64(len(out)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkSh runs sh -n (parse, never execute) on a staged rc file, unless
// the file is plain assignments that sh can only accept (plainAssignments),
// or its bytes passed sh -n before in this driver's life: a parse depends
// on the bytes alone (sh -n runs nothing, so reads no other file:
// bin/sh/main.c cmdloop calls evaltree only when nflag is clear).
// A failure is not remembered; it is checked again, and reported, at
// every apply.
func (d *Driver) checkSh(ctx context.Context, stage, p string) []error {
	src, err := os.ReadFile(filepath.Join(stage, p))
	if err == nil && plainAssignments(src) {
		return nil
	}
	var sum [sha256.Size]byte
	if err == nil {
		sum = sha256.Sum256(src)
		d.shMu.Lock()
		ok := d.shOK[sum]
		d.shMu.Unlock()
		if ok {
			return nil
		}
	}
	argv := []string{"sh", "-n", filepath.Join(stage, p)}
	r, rerr := d.run.Run(ctx, argv...)
	if rerr != nil {
		return []error{fmt.Errorf("sh -n %s: %w", p, rerr)}
	}
	if r.ExitCode == 0 {
		if err == nil {
			d.shMu.Lock()
			if d.shOK == nil || len(d.shOK) >= shOKMax {
				d.shOK = map[[sha256.Size]byte]bool{}
			}
			d.shOK[sum] = true
			d.shMu.Unlock()
		}
		return nil
	}
	errs := layout.ParseToolErrors(r.Stderr, p, unstage(stage))
	if len(errs) == 0 {
		errs = append(errs, &layout.FileError{File: p, Msg: commandError(argv, r).Error()})
	}
	return errs
}
