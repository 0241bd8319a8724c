// Package rcconf reads and checks rc.conf-style files (rc.conf, the jails'
// rc.conf, rc.conf.d snippets): sh -n, variable names, quoting.
package rcconf

// CONTRACT (shared with the sim driver and the bundler): names and
// signatures here are used elsewhere. Bodies are stubs until the checker lands.

// Vars are the assignments of an rc.conf in file order, later ones winning.
type Vars map[string]string

// Parse reads the assignments of an rc.conf (name="value" lines, comments).
// Errors name FILE:LINE.
func Parse(filename string, src []byte) (Vars, error) { return Vars{}, nil }

// Check runs every rc-file check (sh -n via dash or sh, names, quoting) and
// returns all problems as FILE:LINE: message errors.
func Check(filename string, src []byte) []error { return nil }
