package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/freebsd/layout"
	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/policy/jailconf"
	"github.com/rigger-bsd/rigger/policy/rcconf"
	"github.com/rigger-bsd/rigger/verify"
)

// Precheck checks the staged tree as the freebsd driver does, with our
// own parsers: pf.conf with the staged table files and includes (staged
// paths win, others come from the sandbox, as on a host), each jail.conf
// and every jail it defines, rc.conf files, rc.d scripts (sh -n) and table
// files. Errors name host paths and lines.
func (d *Driver) Precheck(ctx context.Context, stage string, files []verify.File) error {
	staged := map[string]bool{}
	for _, f := range files {
		staged[path.Clean(f.Path)] = true
	}
	read := d.pfReader(stage, staged)
	var errs []error
	// pf.conf and the files are checked concurrently: rc files each cost
	// a dash -n.
	var pfErr error
	var wg sync.WaitGroup
	if staged[layout.PFConf] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, pfErr = checkPF(read)
		}()
	}
	per := make([][]error, len(files))
	sem := make(chan struct{}, 4)
	for i, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			per[i] = d.checkFile(ctx, stage, f, read, staged)
		}()
	}
	wg.Wait()
	errs = append(errs, pfErr)
	for _, e := range per {
		errs = append(errs, e...)
	}
	return precheckError(errs)
}

// precheckError hands the engine an *apply.PrecheckError naming the first
// host file at fault, with every problem inside (each a *layout.FileError
// where a file is known).
func precheckError(errs []error) error {
	var keep []error
	for _, e := range errs {
		keep = append(keep, fileErrors(e)...)
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

// checkJailConf is jail -f CONF -e: parse, then resolve every jail.
func checkJailConf(p string, src []byte, read func(string) ([]byte, error), glob func(string) ([]string, error)) []error {
	cfg, err := jailconf.ParseOptions(p, src, jailconf.Options{ReadFile: read, Glob: glob})
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, n := range cfg.Names() {
		if _, err := cfg.Resolve(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// shCheck runs sh -n (dash on Debian, ash-derived like FreeBSD's sh) on an
// rc.d script and maps its "FILE: LINE: msg" to the host path.
func shCheck(ctx context.Context, hostP, stagedP string) error {
	out, err := exec.CommandContext(ctx, "sh", "-n", stagedP).CombinedOutput()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("sh -n %s: %w", hostP, err)
	}
	errs := layout.ParseToolErrors(out, hostP, func(s string) string { return strings.ReplaceAll(s, stagedP, hostP) })
	if len(errs) == 0 {
		return &layout.FileError{File: hostP, Msg: "sh -n failed"}
	}
	return errors.Join(errs...)
}

// globStaged expands an .include pattern over the staged files and the
// sandbox's other files, as the host will look after the install.
func (d *Driver) globStaged(stage string, staged map[string]bool) func(string) ([]string, error) {
	return func(pat string) ([]string, error) {
		seen := map[string]bool{}
		var out []string
		for p := range staged {
			if ok, _ := path.Match(pat, p); ok {
				seen[p] = true
				out = append(out, p)
			}
		}
		more, err := globIn(d.root)(pat)
		for _, p := range more {
			if !seen[p] {
				out = append(out, p)
			}
		}
		sort.Strings(out)
		return out, err
	}
}

// fileErrors turns the policy parsers' errors into *layout.FileError, the
// type the freebsd driver returns too, so callers see one error type.
func fileErrors(err error) []error {
	if err == nil {
		return nil
	}
	var out []error
	switch e := err.(type) {
	case *policy.FileError:
		out = append(out, e)
	case *jailconf.ResolveError:
		out = append(out, &layout.FileError{File: e.File, Line: e.Line, Msg: "jail " + e.Jail + ": " + e.Msg})
	case interface{ Unwrap() []error }: // policy.ErrorList, errors.Join
		for _, x := range e.Unwrap() {
			out = append(out, fileErrors(x)...)
		}
	default:
		out = append(out, err)
	}
	return out
}

// checkFile checks one staged file by its kind.
func (d *Driver) checkFile(ctx context.Context, stage string, f verify.File, read func(string) ([]byte, error), staged map[string]bool) []error {
	p := path.Clean(f.Path)
	src, err := os.ReadFile(hostPath(stage, p))
	if err != nil {
		return []error{&layout.FileError{File: p, Msg: err.Error()}}
	}
	var errs []error
	if u, err := verify.ParseUnit(f.Unit); err == nil && u.Kind == verify.UnitPFTable {
		if _, err := layout.ParseTableFile(p, src); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case layout.IsJailConf(p):
		errs = append(errs, checkJailConf(p, src, read, d.globStaged(stage, staged))...)
	case layout.IsRCConf(p):
		errs = append(errs, rcconf.Check(p, src)...)
	case layout.IsRCFile(p):
		if err := shCheck(ctx, p, hostPath(stage, p)); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
