// Package live runs the live host steps that policy/hostplan plans: each
// step through the host driver, journaled (StateDir/live.json) before and
// after it runs, undone newest first on failure, on a lost management
// path or after a crash.
package live

import (
	"github.com/rigger-bsd/rigger/policy/hostdesc"
	"github.com/rigger-bsd/rigger/policy/hostplan"
)

// The plan's types, from the pure planner.
type (
	Step           = hostplan.Step
	Plan           = hostplan.Plan
	Phase          = hostplan.Phase
	Management     = hostplan.Management
	ForbiddenError = hostplan.ForbiddenError
)

const (
	Before = hostplan.Before
	After  = hostplan.After
)

// Compute is hostplan.Compute.
func Compute(old, new *hostdesc.Host, mgmt *Management) (*Plan, error) {
	return hostplan.Compute(old, new, mgmt)
}
