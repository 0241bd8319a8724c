package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/rigger-bsd/rigger/bundler/gitauth"
	"github.com/rigger-bsd/rigger/verify"
	"github.com/rigger-bsd/rigger/verify/statusref"
)

// hookTimeout bounds the status hook; a hung mailer must not stop polls.
const hookTimeout = 30 * time.Second

// maxHookOutput is how much of the hook's output is logged.
const maxHookOutput = 4 << 10

// reporter is the agent's status side: it turns outcomes into signed
// reports for the host's status ref, the Prometheus textfile and the hook,
// and reads the gating hosts' reports.
type reporter struct {
	remote statusref.Remote
	key    *verify.Signer // nil: reports are not pushed
	// event is the last outcome worth telling (not "unchanged"): the
	// report keeps saying it until the next one.
	event event
	// last is the last report pushed (or tried), lastPush when it was
	// pushed successfully.
	last     *verify.Report
	lastPush time.Time
	// newest is the time of the newest accepted report per gating host:
	// an older report replayed by the server is ignored.
	newest map[string]time.Time
}

type event struct {
	outcome Outcome
	serial  uint64
	commit  string // source commit when known
	reason  string
	pending *Pending // what waited when it happened
}

// ReportInfo is the state of the agent's own status report in Status.
type ReportInfo struct {
	Ref      string    `json:"ref"`
	PushedAt time.Time `json:"pushed_at,omitzero"`
	Error    string    `json:"error,omitempty"`
}

// openReporter sets up the status side from the config: the status git
// server and its credentials (the source's unless status.url is set) and,
// with status.push, the host key.
func openReporter(cfg *Config) (*reporter, error) {
	rp := &reporter{newest: map[string]time.Time{}}
	s := cfg.Status
	var (
		auth transport.AuthMethod
		err  error
	)
	if s.URL == "" {
		rp.remote.URL = cfg.Source.URL
		auth, err = authFor(cfg.Source)
	} else {
		rp.remote.URL = s.URL
		auth, err = gitauth.Auth(gitauth.Config{URL: s.URL, TokenFile: s.TokenFile, SSHKey: s.SSHKey, KnownHosts: s.KnownHosts})
		if fe, ok := errors.AsType[*gitauth.FieldError](err); ok {
			err = &ConfigError{Key: "status." + fe.Field, Err: fe.Err}
		}
	}
	if err != nil {
		return nil, err
	}
	rp.remote.Auth, rp.remote.Timeout = auth, cfg.Source.Timeout
	if s.Hook != "" {
		// Run as root on every outcome: as guarded as the config itself.
		if err := checkPrivate(s.Hook); err != nil {
			return nil, &ConfigError{Key: "status.hook", Err: fmt.Errorf("%s: %w", s.Hook, err)}
		}
	}
	if s.Push {
		if err := checkSecret(s.Key); err != nil {
			return nil, &ConfigError{Key: "status.key", Err: fmt.Errorf("%s: %w", s.Key, err)}
		}
		if rp.key, err = verify.LoadHostKey(s.Key); err != nil {
			return nil, &ConfigError{Key: "status.key", Err: err}
		}
	}
	return rp, nil
}

// checkSecret refuses a private key file others may read or change.
func checkSecret(path string) error {
	if err := checkPrivate(path); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("readable by group or others (mode %04o); chmod 600", fi.Mode().Perm())
	}
	return nil
}

// worthTelling: outcomes that change what the report says. The others
// (unchanged, up-to-date, quarantined, error) leave the last event.
func worthTelling(o Outcome) bool {
	switch o {
	case OutcomeApplied, OutcomeRolledBack, OutcomeRejected, OutcomeDegraded, OutcomeHeld, OutcomeWaiting:
		return true
	}
	return false
}

// afterPoll tells the outcome of a poll: textfile every time; report and
// hook when the report says something new, and a heartbeat push when
// nothing changed for status.heartbeat.
func (a *Agent) afterPoll(ctx context.Context, out Outcome, serial uint64, err error) {
	rp := a.rep
	if rp.key == nil && a.cfg.Status.Textfile == "" && a.cfg.Status.Hook == "" {
		return // nothing to tell anyone: an idle poll stays one ref listing
	}
	if worthTelling(out) {
		ev := event{outcome: out, serial: serial}
		if a.lastManifest != nil && a.lastManifest.Serial == serial {
			ev.commit = a.lastManifest.Source.Commit
		}
		if p := a.st.Pending; p != nil {
			cp := *p
			ev.pending = &cp
		}
		switch {
		case err != nil:
			ev.reason = err.Error()
		case a.st.Pending != nil:
			ev.reason = a.st.Pending.Reason
		}
		rp.event = ev
	} else if d := a.st.Drift; d != nil && len(d.Files) > 0 && !d.Corrected && rp.event.outcome != "drift" {
		rp.event = event{outcome: "drift", reason: "managed files changed on disk: " + strings.Join(d.Files, ", ")}
	}
	r := a.buildReport()
	if a.cfg.Status.Textfile != "" {
		if werr := writeTextfile(a.cfg.Status.Textfile, a.textfile(r)); werr != nil {
			a.log.Warn("status textfile", "file", a.cfg.Status.Textfile, "err", werr)
		}
	}
	changed := rp.last == nil || !sameReport(rp.last, r)
	if changed && a.cfg.Status.Hook != "" {
		a.runHook(ctx, r)
	}
	if rp.key == nil || ctx.Err() != nil {
		return
	}
	if !changed && a.now().Sub(rp.lastPush) < a.cfg.Status.Heartbeat {
		return
	}
	rp.last = r
	info := &ReportInfo{Ref: string(statusref.Ref(a.cfg.Host))}
	if a.st.Report != nil {
		info.PushedAt = a.st.Report.PushedAt
	}
	env, perr := verify.SignReport(r, rp.key)
	if perr == nil {
		perr = rp.remote.Push(ctx, a.cfg.Host, env, r.Time)
	}
	if perr != nil {
		info.Error = perr.Error()
		a.log.Warn("status report not pushed", "err", perr)
	} else {
		rp.lastPush = a.now()
		info.PushedAt = rp.lastPush.UTC()
		a.log.Debug("status report pushed", "outcome", r.Outcome, "serial", r.Serial)
	}
	a.st.Report = info
}

// sameReport compares two reports but for their time.
func sameReport(x, y *verify.Report) bool {
	a, b := *x, *y
	a.Time, b.Time = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// buildReport is the host's report as of now.
func (a *Agent) buildReport() *verify.Report {
	ev := a.rep.event
	r := &verify.Report{
		Schema: verify.ReportSchema, Host: a.cfg.Host, Time: a.now().UTC(),
		Outcome: string(ev.outcome), Serial: ev.serial, Commit: ev.commit, Reason: clip(ev.reason),
	}
	if r.Outcome == "" {
		r.Outcome = "started"
	}
	st := a.st
	healthy := st.Current != nil && st.computeState(a.now()) != StateDegraded
	if c := st.Current; c != nil {
		r.Current = &verify.ReportCurrent{Serial: c.Serial, Commit: c.SourceCommit, AppliedAt: c.AppliedAt.UTC()}
	}
	for _, h := range st.Health {
		if len(r.Health) == verify.MaxReportChecks {
			break
		}
		r.Health = append(r.Health, verify.ReportCheck{Name: h.Name, Kind: h.Kind, OK: h.OK, Error: clip(h.Error)})
		healthy = healthy && h.OK
	}
	if d := st.Drift; d != nil && len(d.Files) > 0 && !d.Corrected {
		r.Drift = d.Files[:min(len(d.Files), verify.MaxReportChecks)]
		healthy = false
	}
	r.Healthy = healthy
	if st.Hold != nil {
		r.Hold = clip(st.Hold.Reason)
	}
	// The pending bundle as of the last event: an unchanged poll after it
	// knows none, and must not make the report (and the hook) change.
	if p := ev.pending; p != nil {
		r.Pending = &verify.ReportPending{Serial: p.Serial, Commit: p.Commit, Reason: clip(p.Reason)}
	}
	q, err := a.store.Quarantine()
	if err != nil {
		a.log.Warn("status report: quarantine list", "err", err)
	}
	for _, e := range q {
		if !e.Verified && e.Kind != "rejected" {
			continue
		}
		outcome := e.Kind
		if outcome == "precheck" {
			outcome = string(OutcomeRejected)
		}
		r.Failed = append(r.Failed, verify.ReportFailed{Serial: e.Serial, Commit: e.Commit, Outcome: outcome, Reason: clip(e.Reason), At: e.At.UTC()})
	}
	if n := len(r.Failed); n > verify.MaxReportFailed {
		r.Failed = r.Failed[n-verify.MaxReportFailed:]
	}
	return r
}

func clip(s string) string {
	const max = 2048
	if len(s) <= max {
		return s
	}
	return s[:max-3] + "..."
}

// runHook runs status.hook with the report (JSON) on stdin and RIGGER_*
// variables, without a shell, bounded in time; its output is logged.
func (a *Agent) runHook(ctx context.Context, r *verify.Report) {
	body, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.cfg.Status.Hook)
	cmd.Stdin = bytes.NewReader(append(body, '\n'))
	cmd.Env = []string{
		"PATH=/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin",
		"RIGGER_HOST=" + r.Host,
		"RIGGER_OUTCOME=" + r.Outcome,
		"RIGGER_SERIAL=" + strconv.FormatUint(r.Serial, 10),
		"RIGGER_HEALTHY=" + strconv.FormatBool(r.Healthy),
	}
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		a.log.Warn("status hook failed", "hook", a.cfg.Status.Hook, "err", err, "output", out.String())
		return
	}
	a.log.Debug("status hook ran", "hook", a.cfg.Status.Hook, "output", out.String())
}

// limitedBuffer keeps the first maxHookOutput bytes written to it.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxHookOutput - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
