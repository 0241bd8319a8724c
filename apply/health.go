package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/rigger-bsd/rigger/verify"
)

const (
	defaultAttemptTimeout = 5 * time.Second
	firstRetry            = 100 * time.Millisecond
	maxRetry              = 2 * time.Second
	maxProbeRead          = 64 << 10
)

// checkHealth runs all checks concurrently, each retried until it passes
// or Config.HealthTimeout runs out. Results keep the manifest's order; the
// error names every check that never passed.
func (e *Engine) checkHealth(ctx context.Context, checks []verify.Check) ([]HealthResult, error) {
	if len(checks) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.HealthTimeout)
	defer cancel()
	res := make([]HealthResult, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { res[i] = e.runCheck(ctx, c) })
	}
	wg.Wait()
	var failed []string
	for _, r := range res {
		if !r.OK {
			failed = append(failed, fmt.Sprintf("%s (%s): %s", r.Name, r.Kind, r.Error))
		}
	}
	if len(failed) > 0 {
		return res, fmt.Errorf("health: %s", strings.Join(failed, "; "))
	}
	return res, nil
}

func (e *Engine) runCheck(ctx context.Context, c verify.Check) HealthResult {
	r := HealthResult{Name: c.Name, Kind: c.Kind}
	per := time.Duration(c.Timeout)
	if per <= 0 {
		per = defaultAttemptTimeout
	}
	wait := firstRetry
	for {
		r.Attempts++
		actx, cancel := context.WithTimeout(ctx, per)
		t0 := time.Now()
		err := e.probe(actx, c)
		r.Latency = time.Since(t0)
		cancel()
		if err == nil {
			r.OK, r.Error = true, ""
			return r
		}
		r.Error = attemptError(ctx, err, r.Error)
		select {
		case <-ctx.Done():
			return r
		case <-time.After(wait):
		}
		wait = min(wait*2, maxRetry)
	}
}

// attemptError is what a failed attempt leaves in the result. An attempt
// the overall health deadline cut short only says how it was killed
// ("signal: killed", "context deadline exceeded"); the previous attempt's
// error says why the check fails, so it is kept. A first attempt that the
// deadline cut short says so.
func attemptError(overall context.Context, err error, prev string) string {
	if overall.Err() == nil {
		return err.Error()
	}
	if prev != "" {
		return prev
	}
	return fmt.Sprintf("no answer within the health timeout: %v", err)
}

func (e *Engine) probe(ctx context.Context, c verify.Check) error {
	switch c.Kind {
	case verify.CheckJail:
		ok, err := e.cfg.Driver.JailRunning(ctx, c.Jail)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("jail %s not running", c.Jail)
		}
		return nil
	case verify.CheckPF:
		ok, err := e.cfg.Driver.PFEnabled(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("pf not enabled or no ruleset loaded")
		}
		return nil
	case verify.CheckGit:
		if e.cfg.GitCheck == nil {
			return errors.New("no git check configured")
		}
		return e.cfg.GitCheck(ctx)
	case verify.CheckTCP:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.Addr)
		if err != nil {
			return err
		}
		return conn.Close()
	case verify.CheckHTTP:
		return probeHTTP(ctx, c)
	case verify.CheckExec:
		if cr, ok := e.cfg.Driver.(CheckRunner); ok {
			_, err := cr.RunCheck(ctx, c.Command)
			return err
		}
		out, err := exec.CommandContext(ctx, c.Command[0], c.Command[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", c.Command[0], err, trimOut(out))
		}
		return nil
	case verify.CheckTunnel:
		return probeTunnel(ctx, c)
	case verify.CheckWireGuard:
		wg, ok := e.cfg.Driver.(WireGuardChecker)
		if !ok {
			return fmt.Errorf("driver %s cannot check WireGuard", e.cfg.Driver.Name())
		}
		return wg.WireGuardUp(ctx, c.Iface)
	}
	return fmt.Errorf("unknown check kind %q", c.Kind)
}

func probeHTTP(ctx context.Context, c verify.Check) error {
	// No proxy from the environment: a check must reach the host itself.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeRead))
	resp.Body.Close()
	if c.Status != 0 && resp.StatusCode != c.Status {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, c.Status)
	}
	if c.Status == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		return fmt.Errorf("status %d, want 2xx", resp.StatusCode)
	}
	return nil
}

// sslRequest is PostgreSQL's SSLRequest: length 8, code 80877103. A
// server answers one byte, 'S' or 'N', before any authentication, so it
// proves the whole pipe works without credentials.
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// probeTunnel completes an exchange through the local end of a pipe.
// spiped accepts the TCP connection even when the key or the far end is
// wrong and then resets it, so only an answer proves the tunnel.
func probeTunnel(ctx context.Context, c verify.Check) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	switch c.Probe {
	case "pg-ssl":
		if _, err := conn.Write(sslRequest); err != nil {
			return fmt.Errorf("pg-ssl: %w", err)
		}
		var b [1]byte
		if _, err := io.ReadFull(conn, b[:]); err != nil {
			return fmt.Errorf("pg-ssl: no answer: %w", err)
		}
		if b[0] != 'S' && b[0] != 'N' {
			return fmt.Errorf("pg-ssl: answer %q, want 'S' or 'N'", b[0])
		}
		return nil
	case "send-expect":
		if _, err := io.WriteString(conn, c.Send); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		return readUntil(conn, c.Expect)
	case "banner":
		return readUntil(conn, c.Expect)
	}
	return fmt.Errorf("tunnel probe %q: unknown", c.Probe)
}

func readUntil(r io.Reader, expect string) error {
	var got []byte
	buf := make([]byte, 4096)
	for len(got) < maxProbeRead {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if bytes.Contains(got, []byte(expect)) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("want %q, got %q: %w", expect, trimOut(got), err)
		}
	}
	return fmt.Errorf("want %q within %d bytes", expect, maxProbeRead)
}

func trimOut(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
