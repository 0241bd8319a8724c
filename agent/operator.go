package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/verify"
)

// Rollback reinstalls a kept generation (to = 0: the one before the
// current) through the engine, and pins it until a serial above the last
// accepted one arrives. The pin is written before the engine runs: a crash
// after the engine's commit must not leave the host on the older serial
// with nothing that says why (the newer one, still published, would be
// taken for a replay). A pin whose serial is not the current one after a
// crash is dropped at start (Recover).
func (a *Agent) Rollback(ctx context.Context, to uint64) (*apply.Result, error) {
	last, err := a.lastSerial()
	if err != nil {
		return nil, err
	}
	a.log.Info("rollback requested", "to", to)
	old, err := a.store.Pin()
	if err != nil {
		return nil, err
	}
	target, err := a.rollbackTarget(to)
	if err != nil {
		return nil, err
	}
	if target != 0 {
		if err := a.store.SetPin(Pin{Serial: target, Above: last, At: a.now().UTC()}); err != nil {
			return nil, err
		}
	}
	res, err := a.engine.Rollback(context.WithoutCancel(ctx), to)
	if err != nil {
		perr := a.store.ClearPin() // nothing was rolled back to
		if old != nil {
			perr = a.store.SetPin(*old)
		}
		a.st.LastError = &ErrorInfo{At: a.now().UTC(), Message: "rollback: " + err.Error()}
		var dg *apply.DegradedError
		if errors.As(err, &dg) {
			h := Hold{Since: a.now().UTC(), Reason: holdDegraded + err.Error()}
			err = errors.Join(err, a.store.SetHold(h))
			a.st.Hold = &h
		}
		return nil, errors.Join(err, perr, a.writeStatus())
	}
	p := Pin{Serial: res.Serial, Above: last, At: a.now().UTC()}
	if res.Serial != target {
		if err := a.store.SetPin(p); err != nil {
			return nil, err
		}
	} else if got, err := a.store.Pin(); err == nil && got != nil {
		p = *got
	}
	a.st.Pin = &p
	a.st.Current = nil
	if err := a.syncCurrent(); err != nil {
		return nil, err
	}
	a.st.Health = healthOf(res.Health)
	a.log.Info("rolled back by operator", "serial", res.Serial, "pinned_until_above", last)
	return res, a.writeStatus()
}

// rollbackTarget is the serial Engine.Rollback(to) restores: to, or the
// newest kept generation below the current one (0: none, the engine
// refuses).
func (a *Agent) rollbackTarget(to uint64) (uint64, error) {
	if to != 0 {
		return to, nil
	}
	cur, err := a.engine.Current()
	if err != nil || cur == nil {
		return 0, err
	}
	gens, err := a.engine.Generations()
	if err != nil {
		return 0, err
	}
	var best uint64
	for _, g := range gens {
		if g.Serial < cur.Serial && g.Serial > best {
			best = g.Serial
		}
	}
	return best, nil
}

// PlanResult is what `agent plan` shows.
type PlanResult struct {
	Commit string
	Bundle *verify.Bundle
	Plan   *apply.Plan
	// UpToDate: the published bundle is the one applied (or older).
	UpToDate bool
}

// Plan fetches the branch head into memory (never the agent's own clone),
// verifies this host's bundle and asks the engine what applying it would
// change. It changes nothing.
func (a *Agent) Plan(ctx context.Context) (*PlanResult, error) {
	src, err := OpenSource("", a.cfg.Source)
	if err != nil {
		return nil, err
	}
	commit, err := src.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	lim := verify.DefaultLimits()
	bf, err := src.Read(commit, a.cfg.Host, lim.ManifestSize, lim.ArchiveSize)
	if err != nil {
		return nil, err
	}
	last, err := a.lastSerial()
	if err != nil {
		return nil, err
	}
	b, err := verify.Verify(bf.Manifest, bytes.NewReader(bf.Archive), a.verifyOptions(last))
	if errors.Is(err, verify.ErrRollback) && claimedSerial(bf.Manifest) == last && last != 0 {
		return &PlanResult{Commit: commit, UpToDate: true}, nil
	}
	if err != nil {
		return nil, err
	}
	p, err := a.engine.Plan(b)
	if err != nil {
		return nil, fmt.Errorf("plan serial %d: %w", b.Manifest.Serial, err)
	}
	return &PlanResult{Commit: commit, Bundle: b, Plan: p}, nil
}
