package verify

import (
	"fmt"
	"strings"
	"time"
)

// GateState is what a gate allows.
type GateState string

const (
	GateOpen   GateState = "open"   // every gating host proved the serial healthy
	GateClosed GateState = "closed" // not yet: no report, unverifiable, not there, baking
	GateFailed GateState = "failed" // a gating host rolled back or rejected its serial: never
)

// GateInput is what could be read of one gating host's status ref.
type GateInput struct {
	Envelope []byte // the raw report envelope; nil if there is none
	Err      error  // why the report could not be read (server down, ...)
	// Newest is the time of the newest report of this host accepted
	// before: an older one is a replay and is ignored.
	Newest time.Time
}

// GateHostResult is one gating host's part of a gate decision.
type GateHostResult struct {
	Host   string    `json:"host"`
	Serial uint64    `json:"serial"` // the serial it must run healthily
	State  GateState `json:"state"`
	Reason string    `json:"reason"`
	// Report is the verified report, nil if none was accepted.
	Report *Report `json:"-"`
}

// GateResult is a gate decision: open only when every host is open, failed
// as soon as one failed.
type GateResult struct {
	State GateState        `json:"state"`
	Hosts []GateHostResult `json:"hosts"`
}

// Reason is the one-line explanation for status and logs, e.g.
// "gate failed: serverA rolled back serial 3: health check web failed".
func (g GateResult) Reason() string {
	var parts []string
	for _, h := range g.Hosts {
		if h.State == g.State || (g.State == GateClosed && h.State != GateOpen) {
			parts = append(parts, h.Reason)
		}
	}
	if g.State == GateOpen {
		return "gate open"
	}
	return "gate " + string(g.State) + ": " + strings.Join(parts, "; ")
}

// CheckGate decides a gate from the gating hosts' raw reports. Every
// report is verified against the key the signed manifest pins for its
// host; one that does not verify counts as no report. The bake time is
// measured on the gating host's own clock: its report must be made at
// least Bake after it applied the serial, and still say healthy.
func CheckGate(g *Gate, in map[string]GateInput) GateResult {
	res := GateResult{State: GateOpen}
	if g == nil {
		return res
	}
	for _, gh := range g.Hosts {
		hr := checkGateHost(gh, time.Duration(g.Bake), in[gh.Host])
		res.Hosts = append(res.Hosts, hr)
		switch {
		case hr.State == GateFailed:
			res.State = GateFailed
		case hr.State == GateClosed && res.State == GateOpen:
			res.State = GateClosed
		}
	}
	return res
}

func checkGateHost(gh GateHost, bake time.Duration, in GateInput) GateHostResult {
	hr := GateHostResult{Host: gh.Host, Serial: gh.Serial, State: GateClosed}
	closed := func(format string, args ...any) GateHostResult {
		hr.Reason = gh.Host + ": " + fmt.Sprintf(format, args...)
		return hr
	}
	switch {
	case in.Err != nil:
		return closed("no report: %v", in.Err)
	case in.Envelope == nil:
		return closed("no report yet")
	}
	key, err := LoadPublicKey([]byte(gh.Key))
	if err != nil {
		return closed("pinned key: %v", err)
	}
	r, err := VerifyReport(in.Envelope, gh.Host, key)
	if err != nil {
		return closed("report ignored: %v", err)
	}
	if !in.Newest.IsZero() && r.Time.Before(in.Newest) {
		return closed("report ignored: made %s, older than one seen before (%s)", r.Time.UTC().Format(time.RFC3339), in.Newest.UTC().Format(time.RFC3339))
	}
	hr.Report = r
	if f := r.FailedSerial(gh.Serial); f != nil {
		hr.State = GateFailed
		hr.Reason = fmt.Sprintf("%s %s serial %d: %s", gh.Host, failedVerb(f.Outcome), f.Serial, f.Reason)
		return hr
	}
	c := r.Current
	switch {
	case c == nil:
		return closed("runs no generation yet, waiting for serial %d (last outcome %s)", gh.Serial, r.Outcome)
	case c.Serial < gh.Serial:
		return closed("runs serial %d, waiting for serial %d (last outcome %s)", c.Serial, gh.Serial, r.Outcome)
	case !r.Healthy:
		return closed("serial %d is not healthy (%s)", c.Serial, unhealthy(r))
	case r.Time.Before(c.AppliedAt.Add(bake)):
		return closed("serial %d healthy since %s, baking until %s", c.Serial,
			c.AppliedAt.UTC().Format(time.RFC3339), c.AppliedAt.Add(bake).UTC().Format(time.RFC3339))
	}
	hr.State = GateOpen
	hr.Reason = fmt.Sprintf("%s: serial %d healthy since %s", gh.Host, c.Serial, c.AppliedAt.UTC().Format(time.RFC3339))
	return hr
}

func failedVerb(outcome string) string {
	switch outcome {
	case "rolled-back":
		return "rolled back"
	case "":
		return "failed"
	}
	return outcome
}

// unhealthy names what a report says is wrong.
func unhealthy(r *Report) string {
	var bad []string
	for _, h := range r.Health {
		if !h.OK {
			bad = append(bad, h.Name)
		}
	}
	switch {
	case len(bad) > 0:
		return "failing: " + strings.Join(bad, ", ")
	case r.Hold != "":
		return "held: " + r.Hold
	case len(r.Drift) > 0:
		return "drift: " + strings.Join(r.Drift, ", ")
	}
	return "last outcome " + r.Outcome
}
