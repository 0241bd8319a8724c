package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// StatusSchema is the version of the Status JSON. Fields are only ever
// added; a removal or change of meaning bumps it.
const StatusSchema = 1

// The states of an agent, in Status.State.
const (
	StateIdle       = "idle"        // on the current generation, nothing to do or waiting for a rollout wave
	StateApplying   = "applying"    // an install is in progress
	StateHeld       = "held"        // `agent hold`: polls go on, nothing is applied
	StateRolledBack = "rolled-back" // the last bundle failed and was rolled back, or `agent rollback` pinned an older generation
	StateDegraded   = "degraded"    // a rollback failed too; applies are held until `agent resume`
	StateError      = "error"       // the last poll failed (source unreachable, I/O); retrying with backoff
	// StateRebootRequired: a bundle is installed and waits for the host's
	// next boot; its health check and commit come after it.
	StateRebootRequired = "reboot-required"
)

// Status is the agent's report: `agent status --json` prints it and the
// running agent keeps it in state_dir/status.json. All times are RFC 3339
// UTC; durations are integer milliseconds. Optional objects are omitted
// when they do not apply; lists are always present (possibly empty).
//
//	schema              int     StatusSchema (1)
//	host                string  the host this agent applies bundles for
//	state               string  idle | applying | held | rolled-back | degraded | error | reboot-required
//	running             bool    an `agent run` or `agent once` holds the state dir lock
//	pid                 int     that process (omitted when not running)
//	source              string  git URL (credentials removed) and branch "URL#branch"
//	current             object  the applied generation: serial, source_commit (infra repo commit),
//	                            bundles_commit, signers (key ids), applied_at, reboot_required,
//	                            reboot_reasons ("FILE: why", one per file)
//	last_poll           object  at, outcome (see Outcome), duration_ms, commit, serial
//	last_error          object  at, message: the most recent failure (kept after recovery);
//	                            resolved: a later poll succeeded and the host is not rolled back,
//	                            degraded or failing, so it is history, not the current state
//	failures            int     consecutive failed polls (backoff grows with it)
//	pending             object  a verified bundle not applied yet: serial, commit, not_before, reason
//	rolled_back         object  serial, reason, at, health (the checks that failed): the last bundle that was rolled back
//	quarantined         list    bundles never retried: serial, verified, commit, reason, kind, at
//	health              list    last health results: name, kind, ok, latency_ms, attempts, error
//	                            (after a rollback: the re-check of the restored generation)
//	drift               object  checked_at, files (managed files changed on disk), mode, corrected
//	hold                object  since, until (absent: until resume), reason
//	pin                 object  serial, above, at: `agent rollback` pinned serial until one above "above" arrives
//	report              object  ref (refs/rigger/status/HOST), pushed_at, error: the last status report push
//	reboot_pending      object  like current: a bundle installed that waits for the next boot
//	                            (state reboot-required); health check and commit follow the boot
//	next_poll           time    when the running agent polls next
//	updated             time    when this status was written
//	seen_commit, trust, applying: the agent's own bookkeeping (last commit
//	                            dealt with, trust config fingerprint, install running)
type Status struct {
	Schema      int           `json:"schema"`
	Host        string        `json:"host"`
	State       string        `json:"state"`
	Running     bool          `json:"running"`
	PID         int           `json:"pid,omitempty"`
	Source      string        `json:"source"`
	Current     *Current      `json:"current,omitempty"`
	LastPoll    *PollInfo     `json:"last_poll,omitempty"`
	LastError   *ErrorInfo    `json:"last_error,omitempty"`
	Failures    int           `json:"failures"`
	Pending     *Pending      `json:"pending,omitempty"`
	RolledBack  *RolledBack   `json:"rolled_back,omitempty"`
	Quarantined []Quarantined `json:"quarantined"`
	Health      []Health      `json:"health"`
	Drift       *Drift        `json:"drift,omitempty"`
	Hold        *Hold         `json:"hold,omitempty"`
	Pin         *Pin          `json:"pin,omitempty"`
	Report      *ReportInfo   `json:"report,omitempty"`
	// RebootPending is a bundle installed that waits for a reboot.
	RebootPending *Current  `json:"reboot_pending,omitempty"`
	NextPoll      time.Time `json:"next_poll,omitzero"`
	Updated       time.Time `json:"updated,omitzero"`

	// SeenCommit is the last bundles-branch commit fully dealt with
	// (applied, up to date, rejected or rolled back): an unchanged head
	// equal to it costs one ref advertisement and nothing more.
	SeenCommit string `json:"seen_commit,omitempty"`
	// Trust fingerprints the trust config SeenCommit was judged with.
	Trust string `json:"trust,omitempty"`
	// Applying is set while an install runs.
	Applying bool `json:"applying,omitempty"`
	// JournalUnreadable is set while an unreadable apply journal holds
	// the agent degraded (see journalUnreadable).
	JournalUnreadable string `json:"journal_unreadable,omitempty"`
	// Warnings are what an operator should act on soon: the installed
	// bundle expires, status.json had to be rebuilt.
	Warnings []string `json:"warnings,omitempty"`
}

// Current is the generation in place.
type Current struct {
	Serial         uint64    `json:"serial"`
	SourceCommit   string    `json:"source_commit,omitempty"`
	BundlesCommit  string    `json:"bundles_commit,omitempty"`
	Signers        []string  `json:"signers"`
	AppliedAt      time.Time `json:"applied_at,omitzero"`
	RebootRequired bool      `json:"reboot_required,omitempty"`
	RebootReasons  []string  `json:"reboot_reasons,omitempty"` // "FILE: why", one per file
	// Live lists the live host steps this apply ran, in order, as
	// command lines (apply/live).
	Live []string `json:"live,omitempty"`
	// Expires is the installed bundle's signed expiry: after it no
	// bundle of that serial is accepted again (fail static).
	Expires      time.Time `json:"expires,omitzero"`
	ManifestBlob string    `json:"manifest_blob,omitempty"`
	ArchiveBlob  string    `json:"archive_blob,omitempty"`
}

// PollInfo describes the last poll.
type PollInfo struct {
	At         time.Time `json:"at"`
	Outcome    Outcome   `json:"outcome"`
	DurationMS int64     `json:"duration_ms"`
	Commit     string    `json:"commit,omitempty"`
	Serial     uint64    `json:"serial,omitempty"`
}

// ErrorInfo is a failure with its time.
type ErrorInfo struct {
	At       time.Time `json:"at"`
	Message  string    `json:"message"`
	Resolved bool      `json:"resolved,omitempty"` // derived by ReadStatus, see Status
}

// Pending is a verified bundle that waits.
type Pending struct {
	Serial    uint64    `json:"serial"`
	Commit    string    `json:"commit"`
	NotBefore time.Time `json:"not_before,omitzero"`
	Reason    string    `json:"reason"` // "not_before" or "held"
}

// RolledBack is the last bundle that was installed and rolled back.
type RolledBack struct {
	Serial uint64    `json:"serial"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	// Health is what the failed bundle's checks said; Status.Health
	// holds the re-check of the generation restored after it.
	Health []Health `json:"health,omitempty"`
}

// Health is one health check result.
type Health struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	OK        bool   `json:"ok"`
	LatencyMS int64  `json:"latency_ms"`
	Attempts  int    `json:"attempts,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Drift is the last drift check.
type Drift struct {
	CheckedAt time.Time `json:"checked_at"`
	Files     []string  `json:"files"`
	Mode      string    `json:"mode"` // report | correct
	Corrected bool      `json:"corrected,omitempty"`
	Error     string    `json:"error,omitempty"`
}

// holdDegraded marks the hold the agent sets itself after a failed
// rollback; `agent resume` lifts it like any other.
const holdDegraded = "degraded: "

// computeState derives State from the other fields.
func (s *Status) computeState(now time.Time) string {
	switch {
	case s.Applying:
		return StateApplying
	case s.Hold.Active(now) && strings.HasPrefix(s.Hold.Reason, holdDegraded):
		return StateDegraded
	case s.Hold.Active(now):
		return StateHeld
	case s.RebootPending != nil:
		return StateRebootRequired
	case s.Pin != nil || s.RolledBack != nil:
		return StateRolledBack
	case s.LastPoll != nil && s.LastPoll.Outcome == OutcomeError:
		return StateError
	}
	return StateIdle
}

// expiryWarning is how long before the installed bundle's expiry status
// starts to warn (bundles are signed for 30 days by default).
const expiryWarning = 7 * 24 * time.Hour

// expiryPrefix starts the expiry warnings, which are recomputed on read.
const expiryPrefix = "the installed bundle"

// setWarnings recomputes Warnings: extra (what the agent found at start)
// and the installed bundle's expiry.
func (s *Status) setWarnings(now time.Time, extra []string) {
	w := slices.Clone(extra)
	if c := s.Current; c != nil && !c.Expires.IsZero() {
		switch left := c.Expires.Sub(now); {
		case left <= 0:
			w = append(w, fmt.Sprintf("%s (serial %d) expired at %s: it stays in place, but publish a newer serial", expiryPrefix, c.Serial, c.Expires.UTC().Format(time.RFC3339)))
		case left < expiryWarning:
			w = append(w, fmt.Sprintf("%s (serial %d) expires at %s (in %s): publish a newer serial", expiryPrefix, c.Serial, c.Expires.UTC().Format(time.RFC3339), left.Round(time.Minute)))
		}
	}
	s.Warnings = w
}

// ReadStatus assembles the status from the state dir without taking the
// lock: status.json as the agent last wrote it, overlaid with the hold,
// pin and quarantine files (which `agent hold` and friends change) and
// whether an agent holds the lock now. host is used when no status was
// written yet.
func ReadStatus(store Store, host string, now time.Time) (*Status, error) {
	st, err := store.Status()
	var extra []string
	if err != nil {
		// A report, not a record to trust: show what the other files say.
		extra = append(extra, fmt.Sprintf("status.json is unreadable (%v); the agent rebuilds it at its next start", err))
		st = nil
	}
	if st == nil {
		st = &Status{Schema: StatusSchema, Host: host}
	}
	for _, w := range st.Warnings {
		if !strings.HasPrefix(w, expiryPrefix) {
			extra = append(extra, w)
		}
	}
	st.setWarnings(now, extra)
	if st.Hold, err = store.Hold(); err != nil {
		return nil, err
	}
	if !st.Hold.Active(now) {
		st.Hold = nil
	}
	if st.Pin, err = store.Pin(); err != nil {
		return nil, err
	}
	if st.Quarantined, err = store.Quarantine(); err != nil {
		return nil, err
	}
	st.Running = store.Locked()
	st.PID = 0
	if st.Running {
		st.PID = store.LockPID()
	} else {
		st.Applying = false // an install cannot be running without its agent
		st.NextPoll = time.Time{}
	}
	st.normalize()
	st.State = st.computeState(now)
	if e := st.LastError; e != nil {
		e.Resolved = st.errorResolved()
	}
	return st, nil
}

// errorResolved: the last error is history when a poll after it
// succeeded and the state is one of the good ones.
func (s *Status) errorResolved() bool {
	switch s.State {
	case StateIdle, StateHeld, StateApplying:
	default:
		return false
	}
	p := s.LastPoll
	return p != nil && p.Outcome != OutcomeError && p.At.After(s.LastError.At)
}

func (s *Status) normalize() {
	if s.Quarantined == nil {
		s.Quarantined = []Quarantined{}
	}
	if s.Health == nil {
		s.Health = []Health{}
	}
	if s.Current != nil && s.Current.Signers == nil {
		s.Current.Signers = []string{}
	}
	if s.Drift != nil && s.Drift.Files == nil {
		s.Drift.Files = []string{}
	}
}

// WriteText prints the status as a short aligned block for people.
func (s *Status) WriteText(w io.Writer, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, args...)) }
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		d := now.Sub(t).Round(time.Second)
		if d >= 0 {
			return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), d)
		}
		return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), -d)
	}
	row("host", "%s", s.Host)
	state := strings.ReplaceAll(s.State, "-", " ")
	row("state", "%s", state)
	if s.Running {
		row("agent", "running (pid %d)", s.PID)
	} else {
		row("agent", "not running")
	}
	if s.Source != "" {
		row("source", "%s", s.Source)
	}
	if c := s.Current; c != nil {
		row("current", "serial %d, commit %s, applied %s", c.Serial, orDash(short(c.SourceCommit)), ts(c.AppliedAt))
		row("signers", "%s", orDash(strings.Join(shortAll(c.Signers), ", ")))
		if !c.Expires.IsZero() {
			row("expires", "%s", ts(c.Expires))
		}
		for _, l := range c.Live {
			row("live step", "%s", l)
		}
		switch {
		case len(c.RebootReasons) > 0:
			row("reboot", "required: %s", strings.Join(c.RebootReasons, "; "))
		case c.RebootRequired:
			row("reboot", "required") // written by an agent that did not record why
		}
	} else {
		row("current", "none")
	}
	for _, w := range s.Warnings {
		row("WARNING", "%s", w)
	}
	if p := s.RebootPending; p != nil {
		row("reboot", "required: serial %d installed %s, health check and commit after the next boot", p.Serial, ts(p.AppliedAt))
	}
	if p := s.LastPoll; p != nil {
		row("last poll", "%s, %s in %dms", ts(p.At), p.Outcome, p.DurationMS)
	} else {
		row("last poll", "never")
	}
	switch e := s.LastError; {
	case e == nil:
		row("last error", "none")
	case e.Resolved:
		row("last error", "none since %s", ts(s.LastPoll.At))
		row("earlier error", "%s (%s)", e.Message, ts(e.At))
	default:
		row("last error", "%s (%s)", e.Message, ts(e.At))
	}
	if s.Failures > 0 {
		row("failures", "%d in a row", s.Failures)
	}
	if p := s.Pending; p != nil {
		if p.Reason == "not_before" {
			row("pending", "serial %d waits until %s", p.Serial, ts(p.NotBefore))
		} else {
			row("pending", "serial %d (%s)", p.Serial, p.Reason)
		}
	}
	if r := s.RolledBack; r != nil {
		row("rolled back", "serial %d: %s (%s)", r.Serial, r.Reason, ts(r.At))
	}
	if h := s.Hold; h != nil {
		until := "until agent resume"
		if !h.Until.IsZero() {
			until = "until " + ts(h.Until)
		}
		row("hold", "%s: %s", until, h.Reason)
	}
	if p := s.Pin; p != nil {
		row("pinned", "serial %d until a serial above %d arrives", p.Serial, p.Above)
	}
	if r := s.Report; r != nil {
		switch {
		case r.Error != "":
			row("report", "%s: not pushed: %s", r.Ref, r.Error)
		case !r.PushedAt.IsZero():
			row("report", "%s, pushed %s", r.Ref, ts(r.PushedAt))
		}
	}
	if len(s.Quarantined) == 0 {
		row("quarantined", "none")
	}
	for i, q := range s.Quarantined {
		k := ""
		if i == 0 {
			k = "quarantined"
		}
		claimed := ""
		if !q.Verified {
			claimed = " (claimed)"
		}
		fmt.Fprintf(tw, "%s\tserial %d%s: %s: %s\n", colon(k), q.Serial, claimed, q.Kind, q.Reason)
	}
	if len(s.Health) == 0 {
		row("health", "no results")
	}
	for i, h := range s.Health {
		k := ""
		if i == 0 {
			k = "health"
		}
		res := "ok"
		if !h.OK {
			res = "FAIL " + h.Error
		}
		fmt.Fprintf(tw, "%s\t%s %s %s %dms\n", colon(k), h.Kind, h.Name, res, h.LatencyMS)
	}
	switch d := s.Drift; {
	case d == nil:
		row("drift", "not checked")
	case d.Error != "":
		row("drift", "check failed: %s", d.Error)
	case len(d.Files) == 0:
		row("drift", "none (checked %s)", ts(d.CheckedAt))
	default:
		what := "reported"
		if d.Corrected {
			what = "corrected"
		}
		row("drift", "%d file(s) %s: %s", len(d.Files), what, strings.Join(d.Files, ", "))
	}
	if !s.NextPoll.IsZero() {
		row("next poll", "%s", ts(s.NextPoll))
	}
	return tw.Flush()
}

func colon(k string) string {
	if k == "" {
		return ""
	}
	return k + ":"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortAll(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = short(id)
	}
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
