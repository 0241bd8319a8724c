package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rigger-bsd/rigger/bundler/fleet"
	"github.com/rigger-bsd/rigger/bundler/gitauth"
)

type statusOptions struct {
	URL       string
	StatusURL string
	Branch    string
	Pub       []string
	Threshold int
	Stale     time.Duration
	JSON      bool
	gitauth.Config
}

func (o *statusOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.URL, "url", "", "git server of the bundles branch and the status refs")
	f.StringVar(&o.StatusURL, "status-url", "", "git server of the status refs when not --url (a separate status repository)")
	f.StringVar(&o.Branch, "branch", "bundles", "bundles branch")
	f.StringArrayVar(&o.Pub, "pub", nil, "CI public key to verify the published manifests with (repeatable)")
	f.IntVar(&o.Threshold, "threshold", 1, "signatures required with --pub")
	f.DurationVar(&o.Stale, "stale", 15*time.Minute, "a host whose last report is older is stale")
	f.StringVar(&o.TokenFile, "token-file", "", `https: file holding a read token ("TOKEN" or "USER:TOKEN")`)
	f.StringVar(&o.SSHKey, "ssh-key", "", "ssh: private key file")
	f.StringVar(&o.KnownHosts, "known-hosts", "", "ssh: known_hosts (default: ssh's)")
}

func (o *statusOptions) fleetOptions(cmd string) (fleet.Options, error) {
	if o.URL == "" {
		return fleet.Options{}, usageError{fmt.Errorf("%s: --url is required", cmd)}
	}
	o.Config.URL = o.URL
	auth, err := gitauth.Auth(o.Config)
	if fe, ok := errors.AsType[*gitauth.FieldError](err); ok {
		return fleet.Options{}, usageError{fmt.Errorf("%s: --%s: %w", cmd, strings.ReplaceAll(fe.Field, "_", "-"), fe.Err)}
	}
	if err != nil {
		return fleet.Options{}, err
	}
	fo := fleet.Options{URL: o.URL, StatusURL: o.StatusURL, Branch: o.Branch, Auth: auth, Stale: o.Stale, Threshold: o.Threshold}
	if len(o.Pub) > 0 {
		keys, _, err := loadPubKeys(o.Pub)
		if err != nil {
			return fleet.Options{}, err
		}
		fo.Keys = keys
	}
	return fo, nil
}

const statusJSONHelp = `JSON (--json): one object
  url, branch, bundles_commit   where it was read
  manifests_verified            the manifests were checked with --pub keys
  ok                            every host is ok
  hosts[]                       one per host folder or status ref, sorted:
    host                        name
    published {serial, commit, error}
                                its bundle on the bundles branch
    serial, commit              what it runs (from its last report)
    outcome, reason             its last outcome worth telling (applied,
                                rolled-back, rejected, degraded, held,
                                waiting, drift) and why
    healthy                     a generation runs, its checks passed, no drift
    health[] {name, kind, ok, error}
    report_time, age_seconds    when the last report was made, how long ago
    hold                        why applies are held, if they are
    pending {serial, commit, reason}
                                a verified bundle not applied (wave, gate)
    failed[] {serial, commit, outcome, reason, at}
                                serials it rolled back or refused
    gate {state, reason}        its published bundle's gate now: open,
                                closed or failed
    problems[]                  why it is not ok: no report, report
                                ignored, unhealthy, stale, degraded, ...
    ok                          no problems
Reports are checked against the status key each host's own published
manifest pins (status_key in the topology); use --pub so that those
manifests are verified too.`

func newStatusCommand() *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status --url URL [--json] [--pub KEY]",
		Short: "Show what every host runs and whether it is healthy",
		Long: `status reads the bundles branch and every host's signed status report
(refs/rigger/status/HOST) from URL and prints one line per host: the
published serial, the running serial and commit, the last outcome, health,
the age of the last report and the gate of its published bundle.

` + statusJSONHelp + `

EXIT STATUS
  0  every host is healthy, fresh and not degraded
  1  some host is not (or the server could not be read)
  2  bad flags or arguments`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fo, err := o.fleetOptions("status")
			if err != nil {
				return err
			}
			f, err := fleet.Read(cmd.Context(), fo)
			if err != nil {
				return fmt.Errorf("status: %s: %w", gitauth.Redact(o.URL), err)
			}
			if o.JSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(f); err != nil {
					return err
				}
			} else {
				printFleet(cmd.OutOrStdout(), f)
			}
			if !f.OK {
				return silentError{errors.New("some hosts are not ok")}
			}
			return nil
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON (fields below)")
	return cmd
}

func printFleet(w io.Writer, f *fleet.Fleet) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tPUBLISHED\tRUNS\tCOMMIT\tOUTCOME\tHEALTH\tAGE\tGATE\tPROBLEMS")
	for _, h := range f.Hosts {
		pub := "-"
		if p := h.Published; p != nil && p.Error == "" {
			pub = fmt.Sprint(p.Serial)
		}
		runs, commit, age, health, gate := "-", "-", "-", "-", "-"
		if h.Serial != 0 {
			runs = fmt.Sprint(h.Serial)
		}
		if h.Commit != "" {
			commit = h.Commit[:min(len(h.Commit), 12)]
		}
		if !h.ReportTime.IsZero() {
			age = (time.Duration(h.AgeSeconds) * time.Second).String()
			health = "unhealthy"
			if h.Healthy {
				health = "healthy"
			}
		}
		if h.Gate != nil {
			gate = string(h.Gate.State)
		}
		problems := strings.Join(h.Problems, "; ")
		if problems == "" {
			problems = "ok"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Host, pub, runs, commit, orDash(h.Outcome), health, age, gate, problems)
	}
	tw.Flush()
	for _, h := range f.Hosts {
		if h.Reason != "" {
			fmt.Fprintf(w, "%s: %s: %s\n", h.Host, h.Outcome, h.Reason)
		}
		if h.Gate != nil && h.Gate.State != "open" {
			fmt.Fprintf(w, "%s: %s\n", h.Host, h.Gate.Reason)
		}
	}
	if !f.Verified {
		fmt.Fprintln(w, "(manifests not verified: give --pub to check the status keys they pin)")
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newWaitCommand() *cobra.Command {
	var (
		o       statusOptions
		commit  string
		timeout time.Duration
		every   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "wait --url URL --commit C [--timeout 30m]",
		Short: "Wait until every host reports commit C healthy (for CI)",
		Long: `wait polls the status reports on URL until every host with a published
bundle reports that it runs commit C (or the newer bundle published after
it) healthily. It fails at once when a host rolled back or refused the
bundle built from C, and after --timeout naming the hosts that are not
there.

EXIT STATUS
  0  every host runs C healthily
  1  a host rolled back or refused C, or the timeout passed
  2  bad flags or arguments`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if commit == "" {
				return usageError{errors.New("wait: --commit is required")}
			}
			fo, err := o.fleetOptions("wait")
			if err != nil {
				return err
			}
			return runWait(cmd.Context(), cmd.OutOrStdout(), fo, commit, timeout, every)
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&commit, "commit", "", "infra repo commit the hosts must run")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	cmd.Flags().DurationVar(&every, "every", 5*time.Second, "poll interval")
	return cmd
}

func runWait(ctx context.Context, w io.Writer, fo fleet.Options, commit string, timeout, every time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var waiting []string
	for {
		f, err := fleet.Read(ctx, fo)
		if err == nil {
			waiting = waiting[:0]
			var failed []string
			published := 0
			for i := range f.Hosts {
				h := &f.Hosts[i]
				if h.Published == nil {
					continue // a status ref without a bundle: not part of the rollout
				}
				published++
				done, fail := h.Done(commit)
				switch {
				case fail != "":
					failed = append(failed, fail)
				case !done:
					waiting = append(waiting, h.Host+" ("+waitReason(h)+")")
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("wait: %s", strings.Join(failed, "; "))
			}
			if published == 0 {
				waiting = []string{"no bundle published on " + f.Branch}
			}
			if len(waiting) == 0 {
				fmt.Fprintf(w, "every host runs %s healthily\n", commit)
				return nil
			}
		} else {
			waiting = []string{"server: " + err.Error()}
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait: %s not reached after %s: %s", commit, timeout, strings.Join(waiting, "; "))
		case <-t.C:
		}
	}
}

func waitReason(h *fleet.Host) string {
	switch {
	case h.ReportTime.IsZero():
		return strings.Join(h.Problems, "; ")
	case h.Pending != nil:
		return fmt.Sprintf("runs serial %d, pending: %s", h.Serial, h.Pending.Reason)
	case !h.Healthy:
		return fmt.Sprintf("runs serial %d, unhealthy", h.Serial)
	}
	return fmt.Sprintf("runs serial %d from %s", h.Serial, h.Commit[:min(len(h.Commit), 12)])
}
