package agent

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

const baseConfig = `host: serverA
source: {url: https://git.example.org/infra.git, branch: bundles, timeout: 30s}
trust: {keys: [/usr/local/etc/rigger/ci.pub, /usr/local/etc/rigger/ci2.pub], threshold: 1}
interval: 60s
root: /
state_dir: /var/db/rigger
driver: freebsd
health: {timeout: 90s}
drift: report
`

func writeConfig(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigDefaultsAndValues(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, "host: h1\nsource: {url: /srv/infra.git}\ntrust: {keys: [/k.pub]}\n", 0o600), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Host: "h1", Interval: time.Minute, MaxBackoff: 15 * time.Minute, Root: "/", StateDir: "/var/db/rigger",
		Driver: "freebsd", Drift: "report", Health: HealthConfig{Timeout: 90 * time.Second}, Log: LogConfig{Level: "info", Format: "text"}}
	if cfg.Host != want.Host || cfg.Interval != want.Interval || cfg.MaxBackoff != want.MaxBackoff || cfg.Root != want.Root ||
		cfg.StateDir != want.StateDir || cfg.Driver != want.Driver || cfg.Drift != want.Drift || cfg.Health != want.Health || cfg.Log != want.Log {
		t.Fatalf("defaults: got %+v", cfg)
	}
	if cfg.Source.Branch != "bundles" || cfg.Source.Timeout != time.Minute || cfg.Trust.Threshold != 1 || len(cfg.Trust.Keys) != 1 {
		t.Fatalf("source/trust defaults: %+v %+v", cfg.Source, cfg.Trust)
	}
}

func TestLoadConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, edit, key string
	}{
		{"unknown top", "colour: blue\n", "colour"},
		{"unknown nested", "health: {timeout: 90s, retries: 3}\n", "health.retries"},
		{"bad interval", "interval: soon\n", "interval"},
		{"interval without unit", "interval: 60\n", "interval"},
		{"bad driver", "driver: linux\n", "driver"},
		{"bad drift", "drift: fix\n", "drift"},
		{"threshold zero", "trust: {keys: [/a.pub], threshold: 0}\n", "trust.threshold"},
		{"threshold above keys", "trust: {keys: [/a.pub], threshold: 2}\n", "trust.threshold"},
		{"threshold not a number", "trust: {keys: [/a.pub], threshold: two}\n", "trust.threshold"},
		{"relative key", "trust: {keys: [ci.pub]}\n", "trust.keys[0]"},
		{"no keys", "trust: {threshold: 1}\n", "trust.keys"},
		{"relative state dir", "state_dir: var/db\n", "state_dir"},
		{"source scalar", "source: https://x\n", "source"},
		{"password in url", "source: {url: 'https://u:p@git.example.org/x.git'}\n", "source.url"},
		{"bad branch", "source: {url: /x, branch: 'a..b'}\n", "source.branch"},
		{"negative timeout", "source: {url: /x, timeout: -1s}\n", "source.timeout"},
		{"bad log level", "log: {level: loud}\n", "log.level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := baseConfig
			// A later key replaces the same key earlier in the YAML
			// mapping only if we drop the original line; do that.
			top := strings.SplitN(tc.edit, ":", 2)[0]
			var lines []string
			for _, l := range strings.Split(body, "\n") {
				if !strings.HasPrefix(l, top+":") {
					lines = append(lines, l)
				}
			}
			body = strings.Join(lines, "\n") + tc.edit
			p := writeConfig(t, body, 0o600)
			_, err := LoadConfig(p, nil, nil)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a ConfigError", err)
			}
			if ce.Key != tc.key {
				t.Fatalf("err = %v names key %q, want %q", err, ce.Key, tc.key)
			}
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v does not name the file", err)
			}
		})
	}
}

func TestLoadConfigEnvAndFlags(t *testing.T) {
	p := writeConfig(t, baseConfig, 0o600)
	env := []string{
		"RIGGER_INTERVAL=5m",
		"RIGGER_SOURCE_BRANCH=staging",
		"RIGGER_TRUST_KEYS=/tmp/evil.pub",
		"RIGGER_TRUST_THRESHOLD=0",
		"RIGGER_KEY_PASSWORD=unrelated",
		"HOME=/root",
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	AddConfigFlags(fs)
	if err := fs.Parse([]string{"--state-dir", "/tmp/state", "--interval", "2m"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p, fs, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source.Branch != "staging" {
		t.Errorf("env RIGGER_SOURCE_BRANCH not applied: %q", cfg.Source.Branch)
	}
	if cfg.Interval != 2*time.Minute {
		t.Errorf("interval = %s, want the flag's 2m over the env's 5m", cfg.Interval)
	}
	if cfg.StateDir != "/tmp/state" {
		t.Errorf("state dir = %s", cfg.StateDir)
	}
	if len(cfg.Trust.Keys) != 2 || cfg.Trust.Keys[0] != "/usr/local/etc/rigger/ci.pub" || cfg.Trust.Threshold != 1 {
		t.Errorf("trust taken from the environment: %+v", cfg.Trust)
	}
	if strings.Join(cfg.IgnoredEnv, ",") != "RIGGER_TRUST_KEYS,RIGGER_TRUST_THRESHOLD" {
		t.Errorf("ignored env = %v", cfg.IgnoredEnv)
	}
	// Bad env values are rejected naming the key.
	if _, err := LoadConfig(p, nil, []string{"RIGGER_DRIVER=docker"}); err == nil || !strings.Contains(err.Error(), "driver") {
		t.Errorf("RIGGER_DRIVER=docker: %v", err)
	}
}

func TestLoadConfigRefusesWritableFile(t *testing.T) {
	p := writeConfig(t, baseConfig, 0o666)
	_, err := LoadConfig(p, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("group/world-writable config: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml"), nil, nil); err == nil {
		t.Fatal("missing config loaded")
	}
}

// FuzzLoadConfig feeds arbitrary YAML to the loader: it must return a
// config that validates or an error, never panic.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(baseConfig))
	f.Add([]byte("host: [a, b]\n"))
	f.Add([]byte("source: {url: {x: 1}}\ntrust: {keys: {a: b}}\n"))
	f.Add([]byte("interval: 1e9\ntrust: {threshold: 1.5}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body []byte) {
		p := filepath.Join(dir, "agent.yaml")
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(p, nil, nil)
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("loaded a config that does not validate: %v", verr)
			}
		}
	})
}

// TestPolicyConfig: policy.roots are clean directories, and, like
// trust.*, never comes from the environment.
func TestPolicyConfig(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, baseConfig, 0o600), nil, []string{"RIGGER_POLICY_ROOTS=/etc/rc.d", "RIGGER_POLICY_MAX_FILES=100000"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Policy.Roots) != 0 || cfg.Policy.MaxFiles != 1000 || len(cfg.IgnoredEnv) != 2 {
		t.Fatalf("policy from the environment: %+v, ignored %v", cfg.Policy, cfg.IgnoredEnv)
	}
	cfg, err = LoadConfig(writeConfig(t, baseConfig+"policy: {roots: [/usr/local/etc/rc.d], max_files: 50}\n", 0o600), nil, nil)
	if err != nil || len(cfg.Policy.Roots) != 1 || cfg.Policy.MaxFiles != 50 {
		t.Fatalf("policy = %+v, %v", cfg.Policy, err)
	}
	for _, edit := range []string{"policy: {roots: [/]}\n", "policy: {roots: [etc]}\n", "policy: {roots: [/jails/*/x]}\n", "policy: {max_files: 0}\n", "policy: {max_files: many}\n"} {
		_, err := LoadConfig(writeConfig(t, baseConfig+edit, 0o600), nil, nil)
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.HasPrefix(ce.Key, "policy.") {
			t.Errorf("%q: %v, want an error naming policy.*", edit, err)
		}
	}
}

var updateConfigDoc = flag.Bool("update-config-doc", false, "rewrite the config table of README.md from the keys")

// TestConfigDoc holds README.md's config table to the table of keys that
// drives loading, flags and validation.
func TestConfigDoc(t *testing.T) {
	const begin, end = "<!-- config keys: generated from agent/config.go (keys); go test ./agent -run TestConfigDoc -update-config-doc -->\n", "<!-- end config keys -->\n"
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the markers %q and %q", begin, end)
	}
	want := configDoc()
	if got := s[i+len(begin) : j]; got != want {
		if *updateConfigDoc {
			if err := os.WriteFile("README.md", []byte(s[:i+len(begin)]+want+s[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("README.md's config table is not the keys' (go test ./agent -run TestConfigDoc -update-config-doc):\n%s", want)
	}
	for _, k := range keys {
		if k.doc == "" {
			t.Errorf("key %s has no doc", k.name)
		}
	}
}
