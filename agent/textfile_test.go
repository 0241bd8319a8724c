package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/verify"
)

// TestTextfileAndHook: after every outcome the textfile parses with the
// Prometheus text parser and says serial, outcome, health per check and
// hold; the hook gets the report on stdin once per outcome, not per poll.
func TestTextfileAndHook(t *testing.T) {
	out := t.TempDir()
	hookLog := filepath.Join(out, "hook.log")
	hook := filepath.Join(out, "hook.sh")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\n{ echo \"$RIGGER_OUTCOME $RIGGER_SERIAL\"; cat; } >> "+hookLog+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := newFleet(t, func(host, dir string) string {
		return fmt.Sprintf("  textfile: %q\n  hook: %q\n", filepath.Join(out, host+".prom"), hook)
	})
	prom := filepath.Join(out, "serverA.prom")
	f.engines["serverA"].fail = func(b *verify.Bundle) error {
		if b.Manifest.Serial == 2 {
			return &apply.RolledBackError{Serial: 2, Reason: errors.New("jail \"web\" is not running"),
				Recheck: []apply.HealthResult{{Name: `jail "web"`, Kind: verify.CheckJail, OK: true}}}
		}
		return nil
	}
	f.publish(1, 1, 0)
	f.poll("serverA", OutcomeApplied)
	fams := parseProm(t, prom)
	wantGauge(t, fams, "rigger_serial", nil, 1)
	wantGauge(t, fams, "rigger_healthy", nil, 1)
	wantGauge(t, fams, "rigger_hold", nil, 0)
	wantGauge(t, fams, "rigger_outcome", map[string]string{"outcome": "applied"}, 1)
	wantGauge(t, fams, "rigger_health_check_ok", map[string]string{"check": "pg_j", "kind": "jail"}, 1)
	if _, ok := fams["rigger_last_poll_timestamp_seconds"]; !ok {
		t.Error("no rigger_last_poll_timestamp_seconds")
	}

	f.poll("serverA", OutcomeUnchanged)
	f.publish(2, 2, 0)
	f.poll("serverA", OutcomeRolledBack)
	fams = parseProm(t, prom)
	wantGauge(t, fams, "rigger_outcome", map[string]string{"outcome": "rolled-back"}, 2)
	wantGauge(t, fams, "rigger_serial", nil, 1)
	wantGauge(t, fams, "rigger_health_check_ok", map[string]string{"check": `jail "web"`, "kind": "jail"}, 1)
	wantGauge(t, fams, "rigger_last_poll_outcome", map[string]string{"outcome": "rolled-back"}, 1)

	if err := f.agents["serverA"].Store().SetHold(Hold{Since: f.clock, Reason: "operator hold"}); err != nil {
		t.Fatal(err)
	}
	f.poll("serverA", OutcomeUnchanged)
	wantGauge(t, parseProm(t, prom), "rigger_hold", nil, 1)

	// Three outcomes worth telling (applied, rolled back, held by the
	// operator), each once; the unchanged poll in between ran no hook.
	log, err := os.ReadFile(hookLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(log), "\n")
	var starts []string
	for _, l := range lines {
		if strings.HasPrefix(l, "applied ") || strings.HasPrefix(l, "rolled-back ") || strings.HasPrefix(l, "started ") {
			starts = append(starts, l)
		}
	}
	if got := strings.Join(starts, ","); got != "applied 1,rolled-back 2,rolled-back 2" {
		t.Fatalf("hook runs: %q\n%s", got, log)
	}
	if !strings.Contains(string(log), `"hold": "operator hold"`) || !strings.Contains(string(log), `"reason": "jail \"web\" is not running"`) {
		t.Fatalf("hook stdin lacks the report:\n%s", log)
	}
}

func parseProm(t *testing.T, path string) map[string]*dtoFamily {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Legacy validation: the strictest names, as older node_exporters read.
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("textfile does not parse: %v\n%s", err, b)
	}
	out := map[string]*dtoFamily{}
	for name, f := range fams {
		df := &dtoFamily{}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["host"] != "serverA" {
				t.Errorf("%s: host label %q", name, labels["host"])
			}
			df.samples = append(df.samples, sample{labels, m.GetGauge().GetValue()})
		}
		out[name] = df
	}
	return out
}

type sample struct {
	labels map[string]string
	value  float64
}

type dtoFamily struct{ samples []sample }

func wantGauge(t *testing.T, fams map[string]*dtoFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Errorf("no %s", name)
		return
	}
next:
	for _, s := range f.samples {
		for k, v := range labels {
			if s.labels[k] != v {
				continue next
			}
		}
		if s.value != want {
			t.Errorf("%s%v = %v, want %v", name, labels, s.value, want)
		}
		return
	}
	t.Errorf("no %s with %v in %+v", name, labels, f.samples)
}
