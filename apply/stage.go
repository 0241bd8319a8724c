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

// stage writes the whole new tree (changed and unchanged files) under
// StateDir/staging laid out like the root, so a check of the staged
// pf.conf sees the staged table files beside it. The returned drop
// removes the files (and only them) once the pre-check is done.
//
// The directories stay between transactions (Engine.stageDirs): a mkdir
// and an rmdir cost more than a file's create and unlink, and a host's
// manifests keep their layout from one serial to the next. Only the
// directories this manifest lacks are made and those it no longer has are
// removed. Nothing else writes under staging, so once drop has removed
// every file the tree is empty directories; when that is not known (a
// fresh Engine, a failed write or removal) the tree is removed whole
// first.
func (e *Engine) stage(tgt *generation) (dir string, drop func(), err error) {
	dir = filepath.Join(e.cfg.StateDir, stagingDir)
	need := map[string]bool{".": true}
	for _, f := range tgt.meta.Manifest.Files {
		for d := path.Dir(f.Path[1:]); d != "." && !need[d]; d = path.Dir(d) {
			need[d] = true
		}
	}
	have := e.stageDirs
	e.stageDirs = nil // until drop has removed every file
	if have == nil {
		if err := os.RemoveAll(dir); err != nil {
			return "", nil, fmt.Errorf("staging: %w", err)
		}
		have = map[string]bool{}
	}
	fail := func(target string, err error) (string, func(), error) {
		os.RemoveAll(dir)
		return "", nil, stageError(target, err)
	}
	// Deepest first: a directory goes after what it holds.
	for _, d := range sortedDirs(have, true) {
		if !need[d] {
			if err := os.Remove(filepath.Join(dir, filepath.FromSlash(d))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fail(d, err)
			}
		}
	}
	for _, d := range sortedDirs(need, false) {
		if !have[d] {
			if err := os.Mkdir(filepath.Join(dir, filepath.FromSlash(d)), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fail("/"+d, err)
			}
		}
	}
	written := make([]string, 0, len(tgt.meta.Manifest.Files))
	for _, f := range tgt.meta.Manifest.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.WriteFile(p, tgt.files[f.Path], 0o600); err != nil {
			return fail(f.Path, err)
		}
		written = append(written, p)
	}
	drop = func() {
		for _, p := range written {
			if err := os.Remove(p); err != nil {
				os.RemoveAll(dir)
				return
			}
		}
		e.stageDirs = need
	}
	return dir, drop, nil
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
func (e *Engine) precheck(ctx context.Context, rs *roots, tgt *generation, chs []change, stage string) ([][2]int, error) {
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
	if err := e.cfg.Driver.Precheck(ctx, stage, tgt.meta.Manifest.Files); err != nil {
		var pe *PrecheckError
		if errors.As(err, &pe) {
			return nil, pe
		}
		return nil, &PrecheckError{Path: stage, Err: err}
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
