// Package cli is the agent's command line: one constructor per command
// returning a cobra command whose RunE forwards to a plain function. Main
// maps errors to the documented exit codes; cmd/agent only calls Main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/bundler/clicontract"
	"github.com/rigger-bsd/rigger/verify"

	// The FreeBSD driver registers itself with package apply. The sim
	// driver is not in the agent binary: `rigger-sim agent` is the agent
	// with it (cmd/rigger-sim), and tests import apply/sim.
	_ "github.com/rigger-bsd/rigger/apply/freebsd"
)

// Exit codes of the agent; each command's help lists the ones it uses.
const (
	ExitOK         = clicontract.ExitOK
	ExitError      = clicontract.ExitFail  // any other failure: source unreachable, bad config, lock held, I/O
	ExitUsage      = clicontract.ExitUsage // bad flags, arguments or command
	ExitRejected   = 3                     // the bundle was rejected (signature, host, serial, expiry, pre-check) and quarantined
	ExitRolledBack = 4                     // the bundle was applied, failed, and the previous generation was restored
	ExitDegraded   = 5                     // the restore failed too: applies are held, a person must look
)

// Lines of the EXIT STATUS sections; a command's help lists its own.
const (
	exitLineError      = "  1  other error (source unreachable, bad config, state dir locked, I/O)"
	exitLineRejected   = "  3  bundle rejected (signature, host, serial, expiry or pre-check); quarantined"
	exitLineRolledBack = "  4  bundle applied, then rolled back (activation or health failed); quarantined"
	exitLineDegraded   = "  5  degraded: the rollback failed too; applies held until \"agent resume\""
)

// exitStatus is the EXIT STATUS section of a command's help: ok says what
// 0 means, the lines are the other codes it uses; 2 is always there.
func exitStatus(ok string, lines ...string) string {
	all := append([]string{"  0  " + ok}, lines...)
	all = append(all, clicontract.UsageLine)
	slices.Sort(all)
	return "EXIT STATUS\n" + strings.Join(all, "\n")
}

// onceExitStatus is the table of once (and of the root help).
var onceExitStatus = exitStatus("up to date, applied, waiting for a rollout wave (not_before), or held",
	exitLineError, exitLineRejected, exitLineRolledBack, exitLineDegraded)

// usageError marks errors in the command line itself.
func usageError(format string, a ...any) error { return clicontract.Usagef(format, a...) }

// Main runs the agent CLI with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return clicontract.Run(ctx, newRootCommand(stdout, stderr), args, stderr, nil)
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

` + onceExitStatus,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
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
	if errors.Is(err, fs.ErrNotExist) {
		where := g.config
		if abs, aerr := filepath.Abs(where); aerr == nil {
			where = abs
		}
		return nil, nil, clicontract.WithHint(err,
			fmt.Sprintf("the agent looked for its config at %s (--config PATH overrides; default %s)", where, agent.DefaultConfigPath),
			"make one from agent/freebsd/agent.yaml.sample (set host, source.url, trust.keys), owned by root, not writable by group or others")
	}
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
	if _, ok := errors.AsType[*agent.LockedError](err); ok {
		return nil, nil, clicontract.WithHint(err, `"agent status" reads the state without the lock`)
	}
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
		return clicontract.Exit(ExitRejected, err)
	case agent.OutcomeRolledBack:
		return clicontract.Exit(ExitRolledBack, err)
	case agent.OutcomeDegraded:
		return clicontract.Exit(ExitDegraded, err)
	case agent.OutcomeQuarantined:
		return nil // nothing new: the quarantined bundle is not retried
	}
	return err
}

func isReject(err error) bool {
	var rej *verify.RejectError
	return errors.As(err, &rej)
}
