package cli

import (
	"context"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
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
		Dir: "testdata/script",
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
