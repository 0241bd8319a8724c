// Package jailconf parses jail.conf(5) and checks it the way jail(8) would.
package jailconf

// CONTRACT (shared with the sim driver and the bundler): names and
// signatures here are used elsewhere. Bodies are stubs until the parser lands.

// Config is a parsed jail.conf.
type Config struct {
	Global []Param // parameters outside any jail block, in order
	Jails  []Jail  // in file order
}

// Jail is one jail block.
type Jail struct {
	Name   string
	Line   int
	Params []Param
}

// Param is one parameter assignment: name = v1, v2; or name += v;
// A boolean parameter (persist;) has no values.
type Param struct {
	Name   string
	Values []string
	Append bool
	Line   int
}

// Parse parses src (named filename in errors, as FILE:LINE: message).
func Parse(filename string, src []byte) (*Config, error) { return &Config{}, nil }

// Jail returns the jail called name, or nil.
func (c *Config) Jail(name string) *Jail { return nil }

// Resolve returns the effective parameters of a jail: globals, then the
// jail's own, with += appending and $name / ${name} expanded as jail(8) does.
func (c *Config) Resolve(name string) (map[string][]string, error) { return nil, nil }
