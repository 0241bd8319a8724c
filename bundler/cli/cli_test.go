package cli

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/rigger-bsd/rigger/bundler/clicontract"
	"github.com/rigger-bsd/rigger/bundler/clicontract/clitest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"bundler": func() { os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScript runs the CLI end-to-end scripts in testdata/script. Scripts
// find the repo's example infra repos through $INFRA.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:  "testdata/script",
		Cmds: clitest.Cmds,
		Setup: func(env *testscript.Env) error {
			wd, err := os.Getwd()
			if err != nil {
				return err
			}
			env.Setenv("INFRA", wd+"/../../testdata/infra")
			env.Setenv("CORPUS", os.Getenv("RIGGER_PFCTL_CORPUS"))
			return nil
		},
	})
}

// Every command documents its own exit codes, 2 included (the contract).
func TestEveryCommandHasExitStatus(t *testing.T) {
	root := newRootCommand(io.Discard, io.Discard)
	clicontract.Prepare(root)
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if !strings.Contains(c.Long, "EXIT STATUS\n  0  ") || !strings.Contains(c.Long, "\n"+clicontract.UsageLine) {
			t.Errorf("bundler %s: help has no EXIT STATUS with 0 and %q:\n%s", c.Name(), clicontract.UsageLine, c.Long)
		}
	}
}
