package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatusConfig: the status keys decode and validate; the host key and
// the hook (run as root) come from the file only, never the environment.
func TestStatusConfig(t *testing.T) {
	p := writeConfig(t, baseConfig+"status: {push: true, key: /k/host.key, heartbeat: 1m, textfile: /var/tmp/r.prom, hook: /usr/local/bin/notify}\n", 0o600)
	cfg, err := LoadConfig(p, nil, []string{"RIGGER_STATUS_HOOK=/tmp/evil", "RIGGER_STATUS_KEY=/tmp/evil.key", "RIGGER_STATUS_URL=https://other/status.git"})
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Status
	if !s.Push || s.Key != "/k/host.key" || s.Hook != "/usr/local/bin/notify" || s.URL != "https://other/status.git" || s.Textfile != "/var/tmp/r.prom" {
		t.Fatalf("status config %+v", s)
	}
	if got := strings.Join(cfg.IgnoredEnv, ","); got != "RIGGER_STATUS_HOOK,RIGGER_STATUS_KEY" {
		t.Errorf("ignored env = %q", got)
	}
	for body, want := range map[string]string{
		"status: {push: true}\n":                  "status.key: required with status.push",
		"status: {push: maybe, key: /k}\n":        "status.push",
		"status: {hook: notify}\n":                "status.hook: \"notify\": want an absolute path",
		"status: {heartbeat: 0s}\n":               "status.heartbeat: must be positive",
		"status: {url: 'https://u:pw@h/s.git'}\n": "status.url: must not carry a password",
	} {
		if _, err := LoadConfig(writeConfig(t, baseConfig+body, 0o600), nil, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", body, err, want)
		}
	}
}

// TestStatusFilesGuarded: Open refuses a host key others may read and a
// hook others may change.
func TestStatusFilesGuarded(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "host.key")
	hook := filepath.Join(dir, "hook")
	os.WriteFile(key, []byte("x"), 0o644)
	os.WriteFile(hook, []byte("#!/bin/sh\n"), 0o777)
	os.Chmod(hook, 0o777)
	for _, c := range []struct {
		status StatusConfig
		want   string
	}{
		{StatusConfig{Push: true, Key: key}, "readable by group or others"},
		{StatusConfig{Hook: hook}, "writable by group or others"},
	} {
		cfg := &Config{Source: SourceConfig{URL: "/srv/infra.git"}, Status: c.status}
		if _, err := openReporter(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.status, err, c.want)
		}
	}
}
