package agent

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// DefaultConfigPath is where the agent reads its config unless --config
// says otherwise.
const DefaultConfigPath = "/usr/local/etc/rigger/agent.yaml"

// Config is the agent's configuration (DESIGN.md "Agent", a contract).
// Every key can come from the file, most from a flag, and all but trust.*
// from a RIGGER_* environment variable (RIGGER_SOURCE_URL, RIGGER_INTERVAL,
// …): trust anchors come from the root-owned file only.
type Config struct {
	Host       string
	Source     SourceConfig
	Trust      TrustConfig
	Interval   time.Duration // between polls, ±10% jitter
	MaxBackoff time.Duration // cap of the exponential backoff after errors
	Root       string        // prefix of every target path
	StateDir   string
	Driver     string // freebsd | sim
	Health     HealthConfig
	Drift      string // report | correct
	Log        LogConfig
	Status     StatusConfig
	Policy     PolicyConfig

	// File is the config file this was read from.
	File string
	// IgnoredEnv lists environment variables that were set but never
	// consulted (RIGGER_TRUST_*), so the caller can warn.
	IgnoredEnv []string
}

// SourceConfig says where the bundles branch lives and how to reach it.
type SourceConfig struct {
	URL        string        // https://…, ssh://…, user@host:path, or a local path
	Branch     string        // default "bundles"
	SSHKey     string        // deploy key file (ssh URLs)
	KnownHosts string        // known_hosts file (ssh URLs); default: ~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts
	TokenFile  string        // file holding an HTTPS token ("TOKEN" or "USER:TOKEN")
	Timeout    time.Duration // deadline of every network step
	// Budget bounds every response of the server (source.max_*_bytes).
	Budget Budget
}

// TrustConfig pins the keys bundles must be signed with.
type TrustConfig struct {
	Keys      []string // PEM public key files
	Threshold int      // distinct keys that must have signed, 1 ≤ k ≤ len(Keys)
}

// StatusConfig is what the agent tells others: a signed status report
// pushed to its own ref on the git server (status.push), a Prometheus
// textfile and a hook command run on every outcome. The gates of this
// host's bundles read other hosts' reports from the same server.
type StatusConfig struct {
	Push bool   // push a signed report after every outcome
	Key  string // the host's private key (agent keygen); required with push
	// URL is the git server of the status refs; empty: source.url, with
	// the source's credentials unless the status ones are set.
	URL        string
	TokenFile  string
	SSHKey     string
	KnownHosts string
	// Heartbeat re-pushes an unchanged report this often, so gates can
	// see a serial stay healthy through their bake time and fleet views
	// can tell a silent host from a quiet one.
	Heartbeat time.Duration
	Textfile  string // node_exporter textfile (…/rigger.prom); empty: none
	Hook      string // executable run with the report on stdin; empty: none
}

// PolicyConfig is what a bundle may install on this host, on top of the
// default path policy (policy.DefaultPaths): like trust.*, it comes from
// the root-owned file only, never from the environment.
type PolicyConfig struct {
	// Roots are target roots beyond policy.DefaultRoots this host allows
	// (a topology's agent_roots); the deny-list does not apply below them.
	Roots []string
	// MaxFiles bounds the files of one bundle.
	MaxFiles int
}

// HealthConfig bounds the health checks after an apply.
type HealthConfig struct {
	Timeout time.Duration
}

// LogConfig selects the log handler.
type LogConfig struct {
	Level  string // debug | info | warn | error
	Format string // text | json
}

// ConfigError names the config key (or file) that is wrong.
type ConfigError struct {
	File string
	Key  string
	Err  error
}

func (e *ConfigError) Error() string {
	where := e.File
	if where == "" {
		where = "config"
	}
	if e.Key == "" {
		return where + ": " + e.Err.Error()
	}
	return where + ": " + e.Key + ": " + e.Err.Error()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// keys is every config key with its default ("" = required or empty).
// Order matters only for messages.
var keys = []struct {
	name string
	def  any
}{
	{"host", ""},
	{"source.url", ""},
	{"source.branch", "bundles"},
	{"source.ssh_key", ""},
	{"source.known_hosts", ""},
	{"source.token_file", ""},
	{"source.timeout", "60s"},
	{"source.max_refs_bytes", int(DefaultBudget.Refs)},
	{"source.max_pack_bytes", int(DefaultBudget.Pack)},
	{"source.max_object_bytes", int(DefaultBudget.MaxObject)},
	{"trust.keys", nil},
	{"trust.threshold", 1},
	{"interval", "60s"},
	{"max_backoff", "15m"},
	{"root", "/"},
	{"state_dir", "/var/db/rigger"},
	{"driver", "freebsd"},
	{"health.timeout", "90s"},
	{"drift", "report"},
	{"log.level", "info"},
	{"log.format", "text"},
	{"status.push", false},
	{"status.key", ""},
	{"status.url", ""},
	{"status.token_file", ""},
	{"status.ssh_key", ""},
	{"status.known_hosts", ""},
	{"status.heartbeat", "5m"},
	{"status.textfile", ""},
	{"status.hook", ""},
	{"policy.roots", nil},
	{"policy.max_files", 1000},
}

// fileOnly are keys besides trust.* that only the root-owned file may
// set: the host's signing key and the command run as root on every outcome.
var fileOnly = map[string]bool{"RIGGER_STATUS_KEY": true, "RIGGER_STATUS_HOOK": true}

// isFileOnly reports whether key is never taken from the environment:
// trust anchors, what a bundle may touch (policy.*), and fileOnly.
func isFileOnly(key string) bool {
	return strings.HasPrefix(key, "trust.") || strings.HasPrefix(key, "policy.") || fileOnly[EnvName(key)]
}

// flagKeys maps command-line flags to config keys. Flags win over the
// environment, which wins over the file.
var flagKeys = map[string]string{
	"host":      "host",
	"root":      "root",
	"state-dir": "state_dir",
	"driver":    "driver",
	"interval":  "interval",
	"log-level": "log.level",
}

// AddConfigFlags registers the flags that override config keys.
func AddConfigFlags(f *pflag.FlagSet) {
	f.String("host", "", "host name (overrides host)")
	f.String("root", "", "prefix of every target path (overrides root)")
	f.String("state-dir", "", "state directory (overrides state_dir)")
	f.String("driver", "", "host driver: freebsd or sim (overrides driver)")
	f.Duration("interval", 0, "poll interval (overrides interval)")
	f.String("log-level", "", "debug, info, warn or error (overrides log.level)")
}

// EnvName is the environment variable for a config key
// ("source.token_file" → RIGGER_SOURCE_TOKEN_FILE).
func EnvName(key string) string {
	return "RIGGER_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// LoadConfig reads the config file at path, applies RIGGER_* variables from
// environ (never for trust.*) and the changed flags of fs (may be nil), and
// validates the result. Errors are *ConfigError naming the key.
func LoadConfig(path string, fs *pflag.FlagSet, environ []string) (*Config, error) {
	if path == "" {
		path = DefaultConfigPath
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &ConfigError{File: path, Err: err}
	}
	if err := checkPrivate(abs); err != nil {
		return nil, &ConfigError{File: abs, Err: err}
	}
	v := viper.New()
	v.SetConfigFile(abs)
	v.SetConfigType("yaml")
	for _, k := range keys {
		if k.def != nil {
			v.SetDefault(k.name, k.def)
		}
	}
	if err := v.ReadInConfig(); err != nil {
		return nil, &ConfigError{File: abs, Err: err}
	}
	if err := checkKnownKeys(v); err != nil {
		err.File = abs
		return nil, err
	}

	cfg := &Config{File: abs}
	env := map[string]string{}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "RIGGER_") {
			continue
		}
		if strings.HasPrefix(name, "RIGGER_TRUST") || strings.HasPrefix(name, "RIGGER_POLICY") || fileOnly[name] {
			cfg.IgnoredEnv = append(cfg.IgnoredEnv, name)
			continue
		}
		env[name] = val
	}
	for _, k := range keys {
		if isFileOnly(k.name) {
			continue
		}
		if val, ok := env[EnvName(k.name)]; ok && val != "" { // empty = unset
			v.Set(k.name, val)
		}
	}
	if fs != nil {
		// VisitAll + Changed: cobra parses persistent flags through the
		// subcommand's set, so fs itself never records them as actual.
		fs.VisitAll(func(f *pflag.Flag) {
			if key, ok := flagKeys[f.Name]; ok && f.Changed {
				v.Set(key, f.Value.String())
			}
		})
	}
	if err := decode(v, cfg); err != nil {
		err.File = abs
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.File = abs
		}
		return nil, err
	}
	return cfg, nil
}

// checkPrivate refuses a config or key file that anyone but its owner may
// change, and, when we run as root, one that root does not own.
func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("writable by group or others (mode %04o); chmod go-w", fi.Mode().Perm())
	}
	if os.Geteuid() == 0 {
		if uid, ok := fileUID(fi); ok && uid != 0 {
			return fmt.Errorf("owned by uid %d, not root", uid)
		}
	}
	return nil
}

func checkKnownKeys(v *viper.Viper) *ConfigError {
	known := map[string]bool{}
	sections := map[string]bool{}
	for _, k := range keys {
		known[k.name] = true
		if sec, _, ok := strings.Cut(k.name, "."); ok {
			sections[sec] = true
		}
	}
	var unknown []string
	for _, k := range v.AllKeys() {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	// A section given as a scalar ("source: x") shows up as a known
	// section name without its subkeys.
	for sec := range sections {
		if v.IsSet(sec) {
			if _, ok := v.Get(sec).(map[string]any); !ok {
				return &ConfigError{Key: sec, Err: errors.New("want a mapping")}
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return &ConfigError{Key: unknown[0], Err: fmt.Errorf("unknown key (known: %s)", knownList())}
	}
	return nil
}

func knownList() string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.name
	}
	return strings.Join(names, ", ")
}

// decode converts each key by hand so a bad value names its key.
func decode(v *viper.Viper, c *Config) *ConfigError {
	var first *ConfigError
	str := func(key string) string {
		val := v.Get(key)
		switch x := val.(type) {
		case nil:
			return ""
		case string:
			return x
		case map[string]any, []any:
			if first == nil {
				first = &ConfigError{Key: key, Err: fmt.Errorf("want a string, got %T", val)}
			}
			return ""
		}
		return fmt.Sprint(val)
	}
	dur := func(key string) time.Duration {
		s := str(key)
		d, err := time.ParseDuration(s)
		if err != nil && first == nil {
			first = &ConfigError{Key: key, Err: fmt.Errorf("%q is not a duration (want e.g. 60s, 5m)", s)}
		}
		return d
	}
	c.Host = str("host")
	c.Source.URL = str("source.url")
	c.Source.Branch = str("source.branch")
	c.Source.SSHKey = str("source.ssh_key")
	c.Source.KnownHosts = str("source.known_hosts")
	c.Source.TokenFile = str("source.token_file")
	c.Source.Timeout = dur("source.timeout")
	c.Interval = dur("interval")
	c.MaxBackoff = dur("max_backoff")
	c.Root = str("root")
	c.StateDir = str("state_dir")
	c.Driver = str("driver")
	c.Health.Timeout = dur("health.timeout")
	c.Drift = str("drift")
	c.Log.Level = str("log.level")
	c.Log.Format = str("log.format")
	c.Status.Key = str("status.key")
	c.Status.URL = str("status.url")
	c.Status.TokenFile = str("status.token_file")
	c.Status.SSHKey = str("status.ssh_key")
	c.Status.KnownHosts = str("status.known_hosts")
	c.Status.Heartbeat = dur("status.heartbeat")
	c.Status.Textfile = str("status.textfile")
	c.Status.Hook = str("status.hook")
	switch p := v.Get("status.push").(type) {
	case bool:
		c.Status.Push = p
	case string:
		b, err := strconv.ParseBool(p)
		if err != nil && first == nil {
			first = &ConfigError{Key: "status.push", Err: fmt.Errorf("%q: want true or false", p)}
		}
		c.Status.Push = b
	default:
		if first == nil {
			first = &ConfigError{Key: "status.push", Err: fmt.Errorf("want true or false, got %v", p)}
		}
	}

	list := func(key, what string) []string {
		var out []string
		switch ks := v.Get(key).(type) {
		case nil:
		case []any:
			for i, k := range ks {
				s, ok := k.(string)
				if !ok && first == nil {
					first = &ConfigError{Key: fmt.Sprintf("%s[%d]", key, i), Err: fmt.Errorf("want %s, got %v", what, k)}
				}
				out = append(out, s)
			}
		case string:
			out = []string{ks}
		default:
			if first == nil {
				first = &ConfigError{Key: key, Err: fmt.Errorf("want a list of %ss, got %v", what, ks)}
			}
		}
		return out
	}
	integer := func(key string) int {
		t, ok := v.Get(key).(int)
		if s, isStr := v.Get(key).(string); isStr {
			n, err := strconv.Atoi(s)
			t, ok = n, err == nil
		}
		if !ok && first == nil {
			first = &ConfigError{Key: key, Err: fmt.Errorf("want an integer, got %v", v.Get(key))}
		}
		return t
	}
	c.Trust.Keys = list("trust.keys", "file path")
	c.Trust.Threshold = integer("trust.threshold")
	c.Policy.Roots = list("policy.roots", "directory")
	c.Policy.MaxFiles = integer("policy.max_files")
	c.Source.Budget = Budget{
		Refs:      int64(integer("source.max_refs_bytes")),
		Pack:      int64(integer("source.max_pack_bytes")),
		MaxObject: int64(integer("source.max_object_bytes")),
	}
	return first
}

// Validate checks every value; the error names the key.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{File: c.File, Key: key, Err: fmt.Errorf(format, args...)}
	}
	switch {
	case c.Host == "":
		return bad("host", "required")
	case !validHost(c.Host):
		return bad("host", "%q: want letters, digits, '.', '-' or '_'", c.Host)
	case c.Source.URL == "":
		return bad("source.url", "required")
	case c.Source.Branch == "" || strings.ContainsAny(c.Source.Branch, " \t\n~^:?*[\\") || strings.Contains(c.Source.Branch, ".."):
		return bad("source.branch", "%q is not a branch name", c.Source.Branch)
	case c.Source.Timeout <= 0:
		return bad("source.timeout", "must be positive")
	case c.Source.Budget.Refs < 1024:
		return bad("source.max_refs_bytes", "%d: must be at least 1024", c.Source.Budget.Refs)
	case c.Source.Budget.Pack < 1024:
		return bad("source.max_pack_bytes", "%d: must be at least 1024", c.Source.Budget.Pack)
	case c.Source.Budget.MaxObject < 1024:
		return bad("source.max_object_bytes", "%d: must be at least 1024", c.Source.Budget.MaxObject)
	case len(c.Trust.Keys) == 0:
		return bad("trust.keys", "at least one public key file is required")
	case c.Trust.Threshold < 1:
		return bad("trust.threshold", "%d: must be at least 1", c.Trust.Threshold)
	case c.Trust.Threshold > len(c.Trust.Keys):
		return bad("trust.threshold", "%d: more than the %d key(s) in trust.keys", c.Trust.Threshold, len(c.Trust.Keys))
	case c.Interval <= 0:
		return bad("interval", "must be positive")
	case c.MaxBackoff < c.Interval:
		return bad("max_backoff", "%s: must be at least interval (%s)", c.MaxBackoff, c.Interval)
	case c.Root == "" || !filepath.IsAbs(c.Root):
		return bad("root", "%q: want an absolute path", c.Root)
	case c.StateDir == "" || !filepath.IsAbs(c.StateDir):
		return bad("state_dir", "%q: want an absolute path", c.StateDir)
	case !slices.Contains([]string{"freebsd", "sim"}, c.Driver):
		return bad("driver", "%q: want freebsd or sim", c.Driver)
	case c.Health.Timeout <= 0:
		return bad("health.timeout", "must be positive")
	case c.Drift != "report" && c.Drift != "correct":
		return bad("drift", "%q: want report or correct", c.Drift)
	case !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level):
		return bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	case c.Log.Format != "text" && c.Log.Format != "json":
		return bad("log.format", "%q: want text or json", c.Log.Format)
	}
	if u, err := url.Parse(c.Source.URL); err == nil && u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			return bad("source.url", "must not carry a password; use source.token_file")
		}
	}
	if c.Source.TokenFile != "" && !filepath.IsAbs(c.Source.TokenFile) {
		return bad("source.token_file", "%q: want an absolute path", c.Source.TokenFile)
	}
	if c.Source.SSHKey != "" && !filepath.IsAbs(c.Source.SSHKey) {
		return bad("source.ssh_key", "%q: want an absolute path", c.Source.SSHKey)
	}
	for i, k := range c.Trust.Keys {
		if !filepath.IsAbs(k) {
			return bad(fmt.Sprintf("trust.keys[%d]", i), "%q: want an absolute path", k)
		}
	}
	for i, r := range c.Policy.Roots {
		if !strings.HasPrefix(r, "/") || path.Clean(r) != r || r == "/" || strings.ContainsAny(r, "*?[\\") {
			return bad(fmt.Sprintf("policy.roots[%d]", i), "%q: want a clean absolute directory below /", r)
		}
	}
	if c.Policy.MaxFiles < 1 {
		return bad("policy.max_files", "%d: must be at least 1", c.Policy.MaxFiles)
	}
	return c.Status.validate(bad)
}

func (s *StatusConfig) validate(bad func(key, format string, args ...any) error) error {
	switch {
	case s.Push && s.Key == "":
		return bad("status.key", "required with status.push (make one with `agent keygen`)")
	case s.Heartbeat <= 0:
		return bad("status.heartbeat", "must be positive")
	}
	for key, p := range map[string]string{"status.key": s.Key, "status.token_file": s.TokenFile, "status.ssh_key": s.SSHKey,
		"status.known_hosts": s.KnownHosts, "status.textfile": s.Textfile, "status.hook": s.Hook} {
		if p != "" && !filepath.IsAbs(p) {
			return bad(key, "%q: want an absolute path", p)
		}
	}
	if u, err := url.Parse(s.URL); err == nil && u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			return bad("status.url", "must not carry a password; use status.token_file")
		}
	}
	return nil
}

func validHost(h string) bool {
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return h != "." && h != ".."
}
