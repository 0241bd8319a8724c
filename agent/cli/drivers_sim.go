//go:build !freebsd

package cli

// The emulated host ("driver: sim") is for CI and the demo on Linux; the
// FreeBSD build of the agent carries no simulation code (DESIGN.md,
// layering; cmd/layering_test.go).
import _ "github.com/rigger-bsd/rigger/apply/sim"
