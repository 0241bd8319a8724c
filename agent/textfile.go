package agent

import (
	"fmt"
	"strings"

	"github.com/rigger-bsd/rigger/policy/atomicfile"
	"github.com/rigger-bsd/rigger/verify"
)

// textfile renders the host's state in the Prometheus text format for
// node_exporter's textfile collector (--collector.textfile.directory).
// Every series carries the host label so a central Prometheus can tell
// hosts apart even without instance relabelling.
func (a *Agent) textfile(r *verify.Report) []byte {
	var b strings.Builder
	host := `host="` + escapeLabel(a.cfg.Host) + `"`
	gauge := func(name, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
	}
	one := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	st := a.st
	gauge("rigger_serial", "Serial of the generation in place (0: none).")
	var serial uint64
	if c := st.Current; c != nil {
		serial = c.Serial
	}
	fmt.Fprintf(&b, "rigger_serial{%s} %d\n", host, serial)
	if c := st.Current; c != nil && !c.AppliedAt.IsZero() {
		gauge("rigger_applied_timestamp_seconds", "When the generation in place was applied.")
		fmt.Fprintf(&b, "rigger_applied_timestamp_seconds{%s} %d\n", host, c.AppliedAt.Unix())
	}
	if p := st.LastPoll; p != nil {
		gauge("rigger_last_poll_timestamp_seconds", "When the last poll started.")
		fmt.Fprintf(&b, "rigger_last_poll_timestamp_seconds{%s} %d\n", host, p.At.Unix())
		gauge("rigger_last_poll_outcome", "Outcome of the last poll (1 for the outcome it had).")
		fmt.Fprintf(&b, "rigger_last_poll_outcome{%s,outcome=\"%s\"} 1\n", host, escapeLabel(string(p.Outcome)))
	}
	gauge("rigger_outcome", "Last outcome worth telling (applied, rolled-back, rejected, degraded, held, waiting, drift) and its serial.")
	fmt.Fprintf(&b, "rigger_outcome{%s,outcome=\"%s\"} %d\n", host, escapeLabel(r.Outcome), r.Serial)
	gauge("rigger_healthy", "1 if a generation runs, its health checks passed and nothing drifted.")
	fmt.Fprintf(&b, "rigger_healthy{%s} %d\n", host, one(r.Healthy))
	if len(st.Health) > 0 {
		gauge("rigger_health_check_ok", "Result of each health check at the last apply (1 passed).")
		for _, h := range st.Health {
			fmt.Fprintf(&b, "rigger_health_check_ok{%s,check=\"%s\",kind=\"%s\"} %d\n", host, escapeLabel(h.Name), escapeLabel(h.Kind), one(h.OK))
		}
	}
	gauge("rigger_hold", "1 while applies are on hold (agent hold, or degraded).")
	fmt.Fprintf(&b, "rigger_hold{%s} %d\n", host, one(st.Hold != nil))
	gauge("rigger_degraded", "1 when a rollback failed too; applies held until agent resume.")
	fmt.Fprintf(&b, "rigger_degraded{%s} %d\n", host, one(st.computeState(a.now()) == StateDegraded))
	gauge("rigger_poll_failures", "Consecutive failed polls.")
	fmt.Fprintf(&b, "rigger_poll_failures{%s} %d\n", host, st.Failures)
	drift := 0
	if st.Drift != nil && !st.Drift.Corrected {
		drift = len(st.Drift.Files)
	}
	gauge("rigger_drift_files", "Managed files changed on disk at the last drift check.")
	fmt.Fprintf(&b, "rigger_drift_files{%s} %d\n", host, drift)
	if p := st.Pending; p != nil {
		gauge("rigger_pending_serial", "A verified serial not applied yet, with why (not_before, held, gate closed, gate failed).")
		reason, _, _ := strings.Cut(p.Reason, ":")
		fmt.Fprintf(&b, "rigger_pending_serial{%s,reason=\"%s\"} %d\n", host, escapeLabel(reason), p.Serial)
	}
	if rep := st.Report; rep != nil && !rep.PushedAt.IsZero() {
		gauge("rigger_report_pushed_timestamp_seconds", "When the last status report was pushed.")
		fmt.Fprintf(&b, "rigger_report_pushed_timestamp_seconds{%s} %d\n", host, rep.PushedAt.Unix())
	}
	return []byte(b.String())
}

// escapeLabel escapes a label value for the text format: backslash,
// double quote and newline.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// writeTextfile replaces path atomically (temp file in the same dir, then
// rename): the collector never reads half a file. The temp name does not
// end in .prom, so the collector ignores it.
func writeTextfile(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o644, atomicfile.Volatile)
}
