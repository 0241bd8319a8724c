package agent

import "github.com/rigger-bsd/rigger/bundler/gitauth"

// The response budget of the git source lives with the git credentials in
// bundler/gitauth, so that the bundler's status and wait share it; these
// names keep the agent's config and errors readable.
type Budget = gitauth.Budget

var (
	// DefaultBudget is the budget when source.max_*_bytes are not set.
	DefaultBudget = gitauth.DefaultBudget
	// ErrBudget: a git response went over its budget.
	ErrBudget = gitauth.ErrBudget
)
