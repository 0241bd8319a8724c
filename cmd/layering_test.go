// Package cmd_test holds the layering rules of ../shared/DESIGN.md
// ("Layering (held by a test)") as a test over `go list`, so that an import
// that crosses a layer fails CI and names the import, instead of living on
// in prose. The rules cover production code only: tests may reach across
// layers (apply's tests render topologies with the bundler).
package cmd_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/rigger-bsd/rigger"

// under reports whether pkg is dir or a package below it (dir relative to
// the module, "" meaning any of ours).
func under(pkg, dir string) bool {
	if dir == "" {
		return pkg == module || strings.HasPrefix(pkg, module+"/")
	}
	p := module + "/" + dir
	return pkg == p || strings.HasPrefix(pkg, p+"/")
}

// shared are the bundler packages the agent may import too: what both
// sides need lives where both may import it (DESIGN.md).
func shared(pkg string) bool {
	return under(pkg, "bundler/gitauth") || under(pkg, "bundler/clicontract")
}

// policyTypes are policy's small type packages verify may use (the
// manifest carries a host description); parsers and linters are not.
var policyTypes = map[string]bool{module + "/policy": true, module + "/policy/hostdesc": true}

// rule says what a group of our packages must not import from ours.
type rule struct {
	name string
	from string                // packages the rule binds (dir, with subpackages)
	deny func(imp string) bool // an import of ours that breaks it
	why  string
}

var rules = []rule{
	{
		name: "verify imports only policy's small types",
		from: "verify",
		deny: func(imp string) bool { return !policyTypes[imp] && !under(imp, "verify") },
		why:  "verify is the trust boundary: pure functions over bytes and keys",
	},
	{
		name: "policy imports nothing of ours",
		from: "policy",
		deny: func(imp string) bool { return !under(imp, "policy") },
		why:  "policy is the leaf every layer may consult",
	},
	{
		name: "apply knows no agent",
		from: "apply",
		deny: func(imp string) bool { return under(imp, "agent") || under(imp, "bundler") },
		why:  "apply installs a verified bundle; the loop and the compiler are above it",
	},
	{
		name: "bundler imports neither agent nor apply",
		from: "bundler",
		deny: func(imp string) bool { return under(imp, "agent") || under(imp, "apply") },
		why:  "what both sides need (git credentials) lives in bundler/gitauth",
	},
	{
		name: "agent links no bundler code but the shared packages",
		from: "agent",
		deny: func(imp string) bool { return under(imp, "bundler") && !shared(imp) },
		why:  "the agent binary must not carry the topology compiler",
	},
	{
		name: "the shared packages import nothing of ours",
		from: "bundler/gitauth",
		deny: func(string) bool { return true },
		why:  "the agent links it",
	},
	{
		name: "the shared packages import nothing of ours",
		from: "bundler/clicontract",
		deny: func(string) bool { return true },
		why:  "the agent links it",
	},
	{
		name: "the FreeBSD driver does not import the emulated userland",
		from: "apply/freebsd",
		deny: func(imp string) bool { return under(imp, "apply/sim") },
		why:  "drivers do not import each other",
	},
	{
		name: "nothing imports a command",
		from: "",
		deny: func(imp string) bool { return under(imp, "cmd") && !under(imp, "cmd/internal") },
		why:  "cmd/* are mains (cmd/internal: what the mains share); cmd/rigger-sim may import everything and nothing imports it",
	},
}

// listImports runs go list over the whole module for GOOS and returns, per
// package of ours, its production imports of ours.
func listImports(t *testing.T, goos string, pattern ...string) map[string][]string {
	t.Helper()
	args := append([]string{"list", "-e", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`}, pattern...)
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(pattern, " "), err, stderr.Bytes())
	}
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var ours []string
		for _, imp := range f[1:] {
			if under(imp, "") {
				ours = append(ours, imp)
			}
		}
		m[f[0]] = ours
	}
	return m
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return dir
}

// violations applies the rules to one import graph.
func violations(graph map[string][]string) map[string][]string {
	bad := map[string][]string{}
	for pkg, imps := range graph {
		for _, r := range rules {
			if r.from != "" && !under(pkg, r.from) {
				continue
			}
			for _, imp := range imps {
				if r.deny(imp) {
					bad[r.name] = append(bad[r.name], pkg+" imports "+imp+" ("+r.why+")")
				}
			}
		}
	}
	return bad
}

func TestLayering(t *testing.T) {
	for _, goos := range []string{"linux", "freebsd"} {
		graph := listImports(t, goos, "./...")
		if len(graph) < 10 {
			t.Fatalf("%s: go list found %d packages; is this the module root?", goos, len(graph))
		}
		bad := violations(graph)
		for _, r := range rules {
			list := bad[r.name]
			sort.Strings(list)
			for _, v := range list {
				t.Errorf("%s (GOOS=%s): %s", r.name, goos, v)
			}
		}
	}
}

// TestRulesBite proves each rule catches the import it is written for, so
// a rule that matches nothing (a typo in a path) cannot pass silently.
func TestRulesBite(t *testing.T) {
	for _, r := range rules {
		from := module + "/" + r.from + "/x"
		if r.from == "" {
			from = module + "/agent"
		}
		var imp string
		switch r.from {
		case "verify", "policy":
			imp = module + "/apply"
		case "apply", "bundler", "":
			imp = module + "/agent"
			if r.from == "" {
				imp = module + "/cmd/agent"
			}
		case "agent":
			imp = module + "/bundler/topology"
		case "apply/freebsd":
			imp = module + "/apply/sim"
		case "bundler/gitauth", "bundler/clicontract":
			imp = module + "/policy"
		default:
			t.Fatalf("rule %q: no test import for %q", r.name, r.from)
		}
		if len(violations(map[string][]string{from: {imp}})[r.name]) != 1 {
			t.Errorf("rule %q does not catch %s importing %s", r.name, from, imp)
		}
	}
	if v := violations(map[string][]string{module + "/agent": {module + "/bundler/gitauth", module + "/bundler/clicontract", module + "/apply"}}); len(v) != 0 {
		t.Errorf("allowed imports flagged: %v", v)
	}
}

// TestAgentCarriesNoSim: the production agent binary, for FreeBSD and for
// Linux alike, links neither the emulated FreeBSD userland nor its
// stand-in services (`rigger-sim agent` is the agent with them).
func TestAgentCarriesNoSim(t *testing.T) {
	for _, goos := range []string{"freebsd", "linux"} {
		cmd := exec.Command("go", "list", "-deps", "./cmd/agent")
		cmd.Dir = moduleRoot(t)
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOFLAGS=-mod=mod")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps ./cmd/agent (GOOS=%s): %v", goos, err)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, module+"/apply/freebsd") {
			t.Fatalf("GOOS=%s: cmd/agent does not link apply/freebsd; is the listing right?", goos)
		}
		for _, d := range deps {
			if under(d, "apply/sim") || under(d, "cmd/internal") {
				t.Errorf("GOOS=%s: cmd/agent links %s (simulation code in the production agent)", goos, d)
			}
		}
	}
}

// topLevel are the module's top-level folders DESIGN.md fixes; a package
// anywhere else (a new internal/, pkg/) breaks the layout users and
// reviewers rely on.
var topLevel = []string{"agent", "apply", "bundler", "cmd", "policy", "testdata", "verify"}

// TestTopLevelLayout: every package of ours lies in one of DESIGN.md's
// top-level folders.
func TestTopLevelLayout(t *testing.T) {
	for pkg := range listImports(t, "linux", "./...") {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		top, _, _ := strings.Cut(rel, "/")
		if !slices.Contains(topLevel, top) {
			t.Errorf("package %s is outside the top-level folders of DESIGN.md (%s)", pkg, strings.Join(topLevel, ", "))
		}
	}
}
