package freebsd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/agent"
)

func TestRCScriptSyntax(t *testing.T) {
	sh, err := exec.LookPath("dash")
	if err != nil {
		// FreeBSD's /bin/sh is also a POSIX shell without bashisms.
		if sh, err = exec.LookPath("sh"); err != nil {
			t.Skip("no dash or sh to check the rc.d script with")
		}
	}
	out, err := exec.Command(sh, "-n", "rigger_agent").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -n rigger_agent: %v\n%s", sh, err, out)
	}
	// A broken copy must fail, or the check proves nothing.
	bad := filepath.Join(t.TempDir(), "bad")
	src, _ := os.ReadFile("rigger_agent")
	os.WriteFile(bad, append(src, []byte("\nif then\n")...), 0o644)
	if err := exec.Command(sh, "-n", bad).Run(); err == nil {
		t.Fatalf("%s -n accepted a broken script", sh)
	}
}

func TestRCScriptContract(t *testing.T) {
	b, err := os.ReadFile("rigger_agent")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		`rcvar="rigger_agent_enable"`,
		`${rigger_agent_config:="/usr/local/etc/rigger/agent.yaml"}`,
		`${rigger_agent_args:=""}`,
		`command="/usr/sbin/daemon"`,
		"-P ${pidfile} -p ${child_pidfile}",
		`procname="${command}"`,
		"${agent} --config ${rigger_agent_config} run ${rigger_agent_args}",
		`_pid=$(check_pidfile "${child_pidfile}" "${agent}")`,
		"kill -HUP ${_pid}",
		"run_rc_command",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("rigger_agent lacks %q", want)
		}
	}
}

func TestSampleConfigLoads(t *testing.T) {
	// The sample names absolute paths of a real host; load it as is and
	// expect only the key file to be missing at verification time.
	dir := t.TempDir()
	b, err := os.ReadFile("agent.yaml.sample")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.LoadConfig(p, nil, nil)
	if err != nil {
		t.Fatalf("sample config: %v", err)
	}
	if cfg.Host != "serverA" || cfg.Source.Branch != "bundles" || cfg.Driver != "freebsd" || cfg.StateDir != "/var/db/rigger" {
		t.Fatalf("sample config decoded as %+v", cfg)
	}
}

// TestPortGoVersion: the port's USES=go:VERSION must be one the ports
// tree accepts (Mk/Uses/go.mk GO_VALID_VERSIONS, December 2026: 1.20 to
// 1.25 and 1.26-devel; anything else sets IGNORE) and cover go.mod's go
// line.
func TestPortGoVersion(t *testing.T) {
	mk, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^USES=\s+go:([^,\s]+)(,modules)?\s*$`).FindSubmatch(mk)
	if m == nil || len(m[2]) == 0 {
		t.Fatalf("Makefile has no USES=go:VERSION,modules line")
	}
	valid := map[string]bool{"1.20": true, "1.21": true, "1.22": true, "1.23": true, "1.24": true, "1.25": true, "1.26-devel": true}
	if !valid[string(m[1])] {
		t.Errorf("USES=go:%s: not in go.mk's GO_VALID_VERSIONS", m[1])
	}
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	g := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if g == nil {
		t.Fatal("go.mod has no go line")
	}
	if !strings.HasPrefix(string(m[1]), string(g[1])) {
		t.Errorf("USES=go:%s does not provide go.mod's go %s", m[1], g[1])
	}
}
