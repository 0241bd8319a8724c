// Package policy decides what a bundle may touch and checks configuration
// files offline: which target paths are allowed, and (in subpackages) the
// pf.conf, jail.conf and rc.conf linters.
package policy

import (
	"fmt"
	"path"
	"strings"
)

// DefaultRoots are the trees a bundle may write to. A "*" segment matches
// exactly one path segment (a jail name).
var DefaultRoots = []string{
	"/etc",
	"/usr/local/etc",
	"/jails/*/etc",
	"/jails/*/usr/local/etc",
}

// Paths is a path policy: the roots under which targets are allowed.
type Paths struct {
	Roots []string
}

// DefaultPaths is the policy used when none is configured.
func DefaultPaths() Paths { return Paths{Roots: DefaultRoots} }

// Check reports whether target may be written. The path must be absolute,
// clean, and strictly below one of the roots.
func (p Paths) Check(target string) error {
	if !path.IsAbs(target) {
		return fmt.Errorf("target path %q: not absolute", target)
	}
	if path.Clean(target) != target {
		return fmt.Errorf("target path %q: not clean (want %q)", target, path.Clean(target))
	}
	segs := strings.Split(target[1:], "/")
	for _, root := range p.Roots {
		rs := strings.Split(strings.TrimPrefix(root, "/"), "/")
		if len(segs) <= len(rs) {
			continue
		}
		ok := true
		for i, r := range rs {
			if r == "*" {
				if segs[i] == "" || segs[i] == "." || segs[i] == ".." {
					ok = false
				}
				continue
			}
			if r != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("target path %q: outside the allowed roots %s", target, strings.Join(p.Roots, ", "))
}
