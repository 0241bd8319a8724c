package policy

import (
	"fmt"
	"strconv"
)

// Release is a FreeBSD major release the offline checkers emulate: each
// checker accepts what that release's tool (pfctl, jail, wg-quick)
// accepts. The zero value means DefaultRelease.
type Release int

// Supported releases.
const (
	Release14 Release = 14
	Release15 Release = 15
	// DefaultRelease is the newest supported release.
	DefaultRelease = Release15
)

// Releases lists the supported releases, oldest first.
var Releases = []Release{Release14, Release15}

// Or returns r, or DefaultRelease when r is zero.
func (r Release) Or() Release {
	if r == 0 {
		return DefaultRelease
	}
	return r
}

func (r Release) String() string { return strconv.Itoa(int(r)) }

// ParseRelease parses "14", "15" (or "14.1", "15.0-RELEASE": the major
// number decides) into a supported Release.
func ParseRelease(s string) (Release, error) {
	major := s
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			major = s[:i]
			break
		}
	}
	n, err := strconv.Atoi(major)
	if err == nil {
		for _, r := range Releases {
			if Release(n) == r {
				return r, nil
			}
		}
	}
	return 0, fmt.Errorf("release %q: want one of 14, 15", s)
}
