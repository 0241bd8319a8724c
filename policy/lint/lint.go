// Package lint runs every offline check on one host's rendered files:
// pf.conf (syntax and lints), jail.conf, rc files.
package lint

// CONTRACT (shared with bundler check): names and signatures here are used
// elsewhere. The body is a stub until the linters land.

// Severity of a finding.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Finding is one problem in a rendered file.
type Finding struct {
	File     string // target path, e.g. /etc/pf.conf
	Line     int
	Severity Severity
	Msg      string
}

func (f Finding) String() string { return "" }

// Options carry topology facts the linters cannot see in the files.
type Options struct {
	// TunnelPorts are ports of tunnels that pf must pass (a lint warns
	// when no rule passes one).
	TunnelPorts []int
}

// Host checks the rendered files of one host (target path → contents).
func Host(files map[string][]byte, opts Options) []Finding { return nil }
