// Package cli is the agent's command line: one constructor per command
// returning a cobra command whose RunE forwards to a plain function. Main
// maps errors to the documented exit codes; cmd/agent only calls Main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/verify"

	// The FreeBSD driver registers itself with package apply; the sim
	// driver is added off FreeBSD only (drivers_sim.go).
	_ "github.com/rigger-bsd/rigger/apply/freebsd"
)

// Exit codes of the agent (documented in the root command's help).
const (
	ExitOK         = 0 // up to date, applied, waiting for a rollout wave, or held
	ExitError      = 1 // any other failure: source unreachable, bad config, lock held, I/O
	ExitUsage      = 2 // bad flags or arguments
	ExitRejected   = 3 // the bundle was rejected (signature, host, serial, expiry, pre-check) and quarantined
	ExitRolledBack = 4 // the bundle was applied, failed, and the previous generation was restored
	ExitDegraded   = 5 // the restore failed too: applies are held, a person must look
)

const exitStatusHelp = `EXIT STATUS
  0  up to date, applied, waiting for a rollout wave (not_before), or held
  1  other error (source unreachable, bad config, state dir locked, I/O)
  2  bad flags or arguments
  3  bundle rejected (signature, host, serial, expiry or pre-check); quarantined
  4  bundle applied, then rolled back (activation or health failed); quarantined
  5  degraded: the rollback failed too; applies held until "agent resume"`

// usageError marks errors in the command line itself.
type usageError struct{ error }

// exitError carries an exit code chosen by a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Main runs the agent CLI with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "agent: error: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var le *agent.LockedError
	if errors.As(err, &le) {
		fmt.Fprintf(stderr, "agent: hint: %q reads the state without the lock\n", "agent status")
	}
	return ExitError
}

// globals are the flags every command shares.
type globals struct {
	config string
	flags  *pflag.FlagSet
	stdout io.Writer
	stderr io.Writer
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "agent",
		Short: "Apply this host's signed bundles from git",
		Long: `agent follows the bundles branch of the infra repo, verifies this host's signed
bundle, installs it atomically, activates what changed, health-checks the
result and rolls back by itself when anything fails.

Config: ` + agent.DefaultConfigPath + ` (--config overrides). Every key
except trust.* may be overridden by RIGGER_<KEY> (RIGGER_SOURCE_URL,
RIGGER_INTERVAL, …) and the flags below.

` + exitStatusHelp,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.config, "config", agent.DefaultConfigPath, "config file")
	agent.AddConfigFlags(pf)
	g.flags = pf
	root.AddCommand(
		newRunCommand(g),
		newOnceCommand(g),
		newPlanCommand(g),
		newStatusCommand(g),
		newRollbackCommand(g),
		newHoldCommand(g),
		newResumeCommand(g),
		newKeygenCommand(g),
	)
	return root
}

// load reads the config and builds the logger it asks for.
func (g *globals) load() (*agent.Config, *slog.Logger, error) {
	cfg, err := agent.LoadConfig(g.config, g.flags, os.Environ())
	if err != nil {
		return nil, nil, err
	}
	log := newLogger(cfg, g.stderr)
	if len(cfg.IgnoredEnv) > 0 {
		log.Warn("ignored: trust keys and threshold come from the config file only", "env", strings.Join(cfg.IgnoredEnv, ","))
	}
	return cfg, log, nil
}

func newLogger(cfg *agent.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// open loads the config, takes the state dir lock and opens the agent.
func (g *globals) open() (*agent.Agent, func(), error) {
	cfg, log, err := g.load()
	if err != nil {
		return nil, nil, err
	}
	unlock, err := agent.Store{Dir: cfg.StateDir}.Lock()
	if err != nil {
		return nil, nil, err
	}
	a, err := agent.Open(cfg, agent.Options{Logger: log})
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return a, func() { a.Close(); unlock() }, nil
}

// exitFor maps a poll outcome to the exit code of once.
func exitFor(out agent.Outcome, err error) error {
	switch out {
	case agent.OutcomeRejected:
		return &exitError{ExitRejected, err}
	case agent.OutcomeRolledBack:
		return &exitError{ExitRolledBack, err}
	case agent.OutcomeDegraded:
		return &exitError{ExitDegraded, err}
	case agent.OutcomeQuarantined:
		var rej *verify.RejectError
		if errors.As(err, &rej) {
			return &exitError{ExitRejected, err}
		}
		return nil // nothing new: the quarantined bundle is not retried
	}
	return err
}

func isReject(err error) bool {
	var rej *verify.RejectError
	return errors.As(err, &rej)
}
