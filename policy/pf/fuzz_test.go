package pf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	dir := os.Getenv("RIGGER_PFCTL_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus", "pfctl")
	}
	ins, _ := filepath.Glob(filepath.Join(dir, "pf*.in"))
	seeds, _ := filepath.Glob(filepath.Join("testdata", "seeds", "*.conf"))
	for _, n := range append(ins, seeds...) {
		if b, err := os.ReadFile(n); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a = \"{ 1.2.3.4, ! 5.6.7.8 }\"\npass in from $a to any port { 1:2 >< 3 }\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		opts := Options{ReadFile: func(name string) ([]byte, error) {
			if name == "self.conf" {
				return src, nil // include loops must stop
			}
			return nil, os.ErrNotExist
		}}
		var rs *Ruleset
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			rs, err = Parse("fuzz.conf", src, opts)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Parse hangs on %q", src)
		}
		if rs == nil {
			t.Fatal("nil ruleset")
		}
		_ = rs.Normalized()
		if err != nil && !strings.Contains(err.Error(), "fuzz.conf:") && !strings.Contains(err.Error(), "self.conf:") {
			t.Fatalf("error without FILE:LINE: %v", err)
		}
		// FreeBSD 15's pfctl accepts all that 14's does
		opts.Release = 14
		if _, err14 := Parse("fuzz.conf", src, opts); err14 == nil && err != nil {
			t.Fatalf("accepted for 14, rejected for 15: %v", err)
		}
	})
}

// genRules writes a pf.conf of n filter rules in the shapes rigger renders.
func genRules(n int) []byte {
	var b strings.Builder
	b.WriteString("ext_if = \"vtnet0\"\nint_if = \"{ em0, em1 }\"\nweb = \"{ 80 443 }\"\n")
	b.WriteString("table <peers> persist { 192.0.2.0/24 198.51.100.7 }\n")
	b.WriteString("set block-policy drop\nscrub in all\n")
	b.WriteString("nat on $ext_if from 10.0.0.0/8 to any -> ($ext_if)\n")
	b.WriteString("block log all\n")
	for i := 0; i < n-4; i++ {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "pass in quick on $ext_if proto tcp from <peers> to 10.%d.%d.%d port %d keep state (max-src-conn-rate 100/10)\n", i>>16&255, i>>8&255, i&255, 1024+i%60000)
		case 1:
			fmt.Fprintf(&b, "pass out on $ext_if inet proto udp from any to 192.0.2.%d port 53\n", i&255)
		case 2:
			fmt.Fprintf(&b, "block in quick on $ext_if from 203.0.%d.0/24 to any label \"deny-%d\"\n", i&255, i)
		case 3:
			fmt.Fprintf(&b, "pass in on $ext_if proto tcp to port %d flags S/SA modulate state\n", 2000+i%1000)
		}
	}
	return []byte(b.String())
}

func BenchmarkParse5000(b *testing.B) {
	src := genRules(5000)
	rs, err := Parse("bench.conf", src, Options{})
	if err != nil {
		b.Fatal(err)
	}
	rules := len(rs.Rules)
	b.SetBytes(int64(len(src)))
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before) //nolint:errcheck // a metric only
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Parse("bench.conf", src, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after) //nolint:errcheck // a metric only
	b.ReportMetric(float64(rules)*float64(b.N)/b.Elapsed().Seconds(), "rules/s")
	// On a shared machine wall time hides the parser's cost: also report
	// rules per second of CPU time the process used.
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	if cpu > 0 {
		b.ReportMetric(float64(rules)*float64(b.N)/cpu.Seconds(), "rules/cpu-s")
	}
}

func TestGeneratedRules(t *testing.T) {
	rs, err := Parse("gen.conf", genRules(5000), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) < 5000 {
		t.Errorf("%d rules, want at least 5000", len(rs.Rules))
	}
}
