package apply

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/rigger-bsd/rigger/verify"
)

// ErrSecretMissing: a file the manifest names in Secrets is not on the host.
var ErrSecretMissing = errors.New("secret missing on the host (the host must provide it; bundles never carry it)")

// stagedTree is what StateDir/staging holds between transactions: the
// files (and their directories) the last stage wrote, relative paths.
type stagedTree struct {
	files, dirs map[string]bool
}

// stage writes the whole new tree (changed and unchanged files) under
// StateDir/staging laid out like the root, so a check of the staged
// pf.conf sees the staged table files beside it.
//
// The tree stays between transactions (Engine.staged) and is brought in
// line with the manifest: files rewritten in place, only what the last
// manifest lacked created, only what this one lacks removed. A create and
// an unlink cost far more than a rewrite (an inode allocated and freed,
// and on ext4 without a journal every create scans past the inodes freed
// in the last minute: ialloc.c, recently_deleted), and a host's manifests
// keep their layout from one serial to the next. Nothing else writes
// under staging; when its content is not known (a fresh Engine, a failed
// stage) it is removed whole first.
func (e *Engine) stage(tgt *generation) (string, error) {
	dir := filepath.Join(e.cfg.StateDir, stagingDir)
	now := stagedTree{files: map[string]bool{}, dirs: map[string]bool{".": true}}
	for _, f := range tgt.meta.Manifest.Files {
		now.files[f.Path[1:]] = true
		for d := path.Dir(f.Path[1:]); d != "." && !now.dirs[d]; d = path.Dir(d) {
			now.dirs[d] = true
		}
	}
	was := e.staged
	e.staged = nil // until this stage is complete
	if was == nil {
		if err := os.RemoveAll(dir); err != nil {
			return "", fmt.Errorf("staging: %w", err)
		}
		was = &stagedTree{}
	}
	fail := func(target string, err error) (string, error) {
		os.RemoveAll(dir)
		return "", stageError(target, err)
	}
	local := func(rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }
	for f := range was.files {
		if !now.files[f] {
			if err := os.Remove(local(f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fail("/"+f, err)
			}
		}
	}
	for _, d := range sortedDirs(was.dirs, true) { // deepest first
		if !now.dirs[d] {
			if err := os.Remove(local(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fail("/"+d, err)
			}
		}
	}
	for _, d := range sortedDirs(now.dirs, false) {
		if !was.dirs[d] {
			if err := os.Mkdir(local(d), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fail("/"+d, err)
			}
		}
	}
	// The rewrites touch different files, in directories made above: they
	// run together, and the first failure in manifest order is reported.
	files := tgt.meta.Manifest.Files
	errs := make([]error, len(files))
	writes := make([]func() error, len(files))
	for i, f := range files {
		writes[i] = func() error {
			errs[i] = rewrite(local(f.Path[1:]), tgt.files[f.Path])
			return nil
		}
	}
	parallel(writes)
	for i, err := range errs {
		if err != nil {
			return fail(files[i].Path, err)
		}
	}
	e.staged = &now
	return dir, nil
}

// rewrite replaces the contents of the file at name (created if absent)
// with data, in place. No O_TRUNC: ext4 flushes a file truncated to zero
// at its close (auto_da_alloc), and the staged copy needs no disk.
func rewrite(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// sortedDirs lists the directories of set (relative, "." the top)
// parents first, or deepest first.
func sortedDirs(set map[string]bool, deepest bool) []string {
	depth := func(d string) int {
		if d == "." {
			return 0
		}
		return strings.Count(d, "/") + 1
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if di, dj := depth(out[i]), depth(out[j]); di != dj {
			return di < dj != deepest
		}
		return out[i] < out[j]
	})
	return out
}

// stageError: the staged tree is fresh, so a failure there is the bundle's
// own (a file where another entry needs a directory): a *PrecheckError,
// quarantined like any other. Only a full or failing state disk is the
// host's, and worth retrying.
func stageError(target string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("staging %s: %w", target, err)
	}
	return &PrecheckError{Path: target, Err: fmt.Errorf("staging: %w", err)}
}

// precheck runs every check that can fail before anything is installed:
// the health checks are well formed, each changed target is a regular file
// or absent (a planted symlink or directory is refused), owners resolve,
// secrets exist, and the driver accepts the staged tree. It returns the
// resolved owner of each change.
//
// The driver's checks (the host's tools on the staged tree) run beside
// the engine's own, which read only the live host; a problem the engine
// finds is the one reported, as when the driver's came after.
func (e *Engine) precheck(ctx context.Context, rs *roots, tgt *generation, chs []change, stage string) ([][2]int, error) {
	drv := make(chan error, 1)
	go func() { drv <- e.cfg.Driver.Precheck(ctx, stage, tgt.meta.Manifest.Files) }()
	ids, err := e.precheckHost(rs, tgt, chs)
	derr := <-drv
	if err != nil {
		return nil, err
	}
	if derr != nil {
		var pe *PrecheckError
		if errors.As(derr, &pe) {
			return nil, pe
		}
		return nil, &PrecheckError{Path: stage, Err: derr}
	}
	return ids, nil
}

// precheckHost is precheck's part on the live host: health checks,
// targets, owners and secrets.
func (e *Engine) precheckHost(rs *roots, tgt *generation, chs []change) ([][2]int, error) {
	for _, c := range tgt.meta.Manifest.Health {
		if err := validateCheck(c); err != nil {
			return nil, &PrecheckError{Path: "health check " + c.Name, Err: err}
		}
	}
	ids := make([][2]int, len(chs))
	for i, c := range chs {
		if _, err := rs.stat(c.Path); err != nil {
			return nil, &PrecheckError{Path: c.Path, Err: err}
		}
		if c.Op == OpRemove {
			continue
		}
		uid, gid, err := lookupOwner(rs, c.file)
		if err != nil {
			return nil, &PrecheckError{Path: c.Path, Err: err}
		}
		ids[i] = [2]int{uid, gid}
	}
	for _, s := range tgt.meta.Manifest.Secrets {
		st, err := rs.stat(s)
		if err != nil {
			return nil, &PrecheckError{Path: s, Err: err}
		}
		if !st.exists {
			return nil, &PrecheckError{Path: s, Err: ErrSecretMissing}
		}
	}
	return ids, nil
}

// validateCheck refuses a health check the engine could not run.
func validateCheck(c verify.Check) error {
	need := func(field, v string) error {
		if v == "" {
			return fmt.Errorf("kind %s needs %s", c.Kind, field)
		}
		return nil
	}
	switch c.Kind {
	case verify.CheckJail:
		return need("jail", c.Jail)
	case verify.CheckPF, verify.CheckGit:
		return nil
	case verify.CheckTCP:
		return need("addr", c.Addr)
	case verify.CheckHTTP:
		return need("url", c.URL)
	case verify.CheckExec:
		if len(c.Command) == 0 || c.Command[0] == "" {
			return fmt.Errorf("kind exec needs command")
		}
		return nil
	case verify.CheckWireGuard:
		return need("iface", c.Iface)
	case verify.CheckTunnel:
		if err := need("addr", c.Addr); err != nil {
			return err
		}
		switch c.Probe {
		case "pg-ssl":
			return nil
		case "send-expect":
			if c.Send == "" {
				return errors.New("probe send-expect needs send")
			}
			return need("expect", c.Expect)
		case "banner":
			return need("expect", c.Expect)
		}
		return fmt.Errorf("tunnel probe %q: want pg-ssl, send-expect or banner", c.Probe)
	}
	return fmt.Errorf("unknown kind %q", c.Kind)
}
