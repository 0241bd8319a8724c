package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// nextDelay is the wait before the next poll: the interval with ±10%
// jitter, doubled per consecutive failure up to max_backoff, and never past
// a pending bundle's not_before.
func (a *Agent) nextDelay() time.Duration {
	d := a.cfg.Interval
	for i := 1; i < a.st.Failures && d < a.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, a.cfg.MaxBackoff)
	d = time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
	if p := a.st.Pending; p != nil && !p.NotBefore.IsZero() {
		if until := p.NotBefore.Sub(a.now()); until < d {
			d = max(until, 0) + 10*time.Millisecond
		}
	}
	return d
}

// RunOptions connect Run to the process's signals.
type RunOptions struct {
	// Reload (SIGHUP) makes Run call ReloadConfig and switch to the
	// result; a failed reload keeps the running config.
	Reload       <-chan struct{}
	ReloadConfig func() (*Config, error)
	// Wake (SIGUSR1) makes Run look for an operator request
	// (request.json, e.g. a rollback asked for while Run holds the lock).
	Wake <-chan struct{}
}

// Run polls until ctx is cancelled (SIGTERM): first at once, then after
// nextDelay, serving reloads and operator requests between polls.
func (a *Agent) Run(ctx context.Context, o RunOptions) error {
	if err := a.Recover(ctx); err != nil {
		return err
	}
	a.log.Info("agent started", "host", a.cfg.Host, "source", a.st.Source, "interval", a.cfg.Interval)
	for ctx.Err() == nil {
		a.serveRequest(ctx)
		a.Poll(ctx)
		if ctx.Err() != nil {
			break
		}
		d := a.nextDelay()
		a.st.NextPoll = a.now().Add(d).UTC()
		if err := a.writeStatus(); err != nil {
			a.log.Error("write status", "err", err)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-o.Wake:
		case <-o.Reload:
			a.reload(o.ReloadConfig)
		}
		t.Stop()
	}
	a.st.NextPoll = time.Time{}
	a.log.Info("agent stopped")
	return a.writeStatus()
}

func (a *Agent) reload(load func() (*Config, error)) {
	if load == nil {
		return
	}
	cfg, err := load()
	if err == nil {
		err = a.Reload(cfg)
	}
	if err != nil {
		a.log.Error("reload failed; keeping the running config", "err", err)
		a.st.LastError = &ErrorInfo{At: a.now().UTC(), Message: "reload: " + err.Error()}
		return
	}
	a.log.Info("config reloaded", "file", cfg.File)
}

// serveRequest carries out a pending operator request and answers it.
func (a *Agent) serveRequest(ctx context.Context) {
	req, err := a.store.Request()
	if err != nil {
		a.log.Error("read request", "err", err)
		return
	}
	if req == nil {
		return
	}
	resp := Response{ID: req.ID}
	switch req.Op {
	case "rollback":
		res, err := a.Rollback(ctx, req.To)
		if err != nil {
			resp.Error = err.Error()
		} else {
			resp.OK, resp.Serial = true, res.Serial
		}
	default:
		resp.Error = fmt.Sprintf("unknown request %q", req.Op)
	}
	resp.At = a.now().UTC()
	if err := a.store.Respond(resp); err != nil {
		a.log.Error("answer request", "err", err)
	}
}
