package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/rigger-bsd/rigger/verify"
)

// ErrSecretMissing: a file the manifest names in Secrets is not on the host.
var ErrSecretMissing = errors.New("secret missing on the host (the host must provide it; bundles never carry it)")

// stage writes the whole new tree (changed and unchanged files) under
// StateDir/staging laid out like the root, so a check of the staged
// pf.conf sees the staged table files beside it.
func (e *Engine) stage(tgt *generation) (string, error) {
	dir := filepath.Join(e.cfg.StateDir, stagingDir)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("staging: %w", err)
	}
	made := map[string]bool{}
	for _, f := range tgt.meta.Manifest.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if d := filepath.Dir(p); !made[d] {
			if err := os.MkdirAll(d, 0o755); err != nil {
				os.RemoveAll(dir)
				return "", stageError(f.Path, err)
			}
			made[d] = true
		}
		if err := os.WriteFile(p, tgt.files[f.Path], 0o600); err != nil {
			os.RemoveAll(dir)
			return "", stageError(f.Path, err)
		}
	}
	return dir, nil
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
