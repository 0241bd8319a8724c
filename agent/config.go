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

// configKey is one config key: its default, where it may come from, the
// field it fills, how it is checked and what the documentation says. The
// table below drives loading (viper defaults, environment, flags), decoding,
// validation and the README's table (TestConfigDoc keeps it in sync).
type configKey struct {
	name string
	def  any // viper default; nil: none (required or empty)
	// field points at what the key fills: *string, *time.Duration, *int,
	// *int64, *bool or *[]string (each decoded with its own message).
	field func(c *Config) any
	// fileOnly keys never come from the environment (trust anchors, what a
	// bundle may touch, the host's signing key, the root hook).
	fileOnly bool
	// flag overrides the key from the command line; "" = none.
	flag, usage string
	// check validates the decoded value; the error names the key unless it
	// is a *ConfigError naming an element (trust.keys[1]).
	check func(c *Config) error
	item  string // a list's elements, for messages ("file path")
	doc   string // README: what the key is for
	shown string // README: the default if def does not say it well
}

// keys is every config key. Order matters for messages (the first failing
// check is reported) and for the README's table.
var keys = []configKey{
	{name: "host", field: func(c *Config) any { return &c.Host }, flag: "host", usage: "host name",
		check: func(c *Config) error {
			if c.Host == "" {
				return errors.New("required")
			}
			if !validHost(c.Host) {
				return fmt.Errorf("%q: want letters, digits, '.', '-' or '_'", c.Host)
			}
			return nil
		}, doc: "this host's name; bundles for others are rejected", shown: "required"},
	{name: "source.url", field: func(c *Config) any { return &c.Source.URL },
		check: func(c *Config) error {
			if c.Source.URL == "" {
				return errors.New("required")
			}
			return noPassword(c.Source.URL, "source.token_file")
		}, doc: "`https://…`, `ssh://…`, `user@host:path`, or a local path; no password in it", shown: "required"},
	{name: "source.branch", def: "bundles", field: func(c *Config) any { return &c.Source.Branch },
		check: func(c *Config) error {
			if b := c.Source.Branch; b == "" || strings.ContainsAny(b, " \t\n~^:?*[\\") || strings.Contains(b, "..") {
				return fmt.Errorf("%q is not a branch name", b)
			}
			return nil
		}, doc: "the bundles branch"},
	{name: "source.ssh_key", field: func(c *Config) any { return &c.Source.SSHKey }, check: absPath(func(c *Config) string { return c.Source.SSHKey }),
		doc: "deploy key (ssh URLs)"},
	{name: "source.known_hosts", field: func(c *Config) any { return &c.Source.KnownHosts },
		doc: "host keys, always checked (default `~/.ssh/known_hosts`, `/etc/ssh/ssh_known_hosts`)"},
	{name: "source.token_file", field: func(c *Config) any { return &c.Source.TokenFile }, check: absPath(func(c *Config) string { return c.Source.TokenFile }),
		doc: "HTTPS token, `TOKEN` or `USER:TOKEN`; never logged"},
	{name: "source.timeout", def: "60s", field: func(c *Config) any { return &c.Source.Timeout }, check: positive(func(c *Config) time.Duration { return c.Source.Timeout }),
		doc: "deadline of every network step"},
	{name: "source.max_refs_bytes", def: int(DefaultBudget.Refs), field: func(c *Config) any { return &c.Source.Budget.Refs },
		check: atLeast(1024, func(c *Config) int64 { return c.Source.Budget.Refs }),
		doc:   "most bytes of one ref advertisement (HTTP(S): the response; ssh: the session's output up to the advertisement's end)"},
	{name: "source.max_pack_bytes", def: int(DefaultBudget.Pack), field: func(c *Config) any { return &c.Source.Budget.Pack },
		check: atLeast(1024, func(c *Config) int64 { return c.Source.Budget.Pack }),
		doc:   "most bytes of one fetch response (HTTP(S): the response, on the wire; ssh: the session's output after the advertisement)"},
	{name: "source.max_object_bytes", def: int(DefaultBudget.MaxObject), field: func(c *Config) any { return &c.Source.Budget.MaxObject },
		check: atLeast(1024, func(c *Config) int64 { return c.Source.Budget.MaxObject }),
		doc:   "most bytes one object of a pack inflates to (a delta: its result); checked from the object's header as the pack streams in, before go-git inflates it (HTTP(S) and ssh)"},
	{name: "trust.keys", field: func(c *Config) any { return &c.Trust.Keys }, fileOnly: true, item: "file path",
		check: func(c *Config) error {
			if len(c.Trust.Keys) == 0 {
				return errors.New("at least one public key file is required")
			}
			for i, k := range c.Trust.Keys {
				if !filepath.IsAbs(k) {
					return &ConfigError{Key: fmt.Sprintf("trust.keys[%d]", i), Err: fmt.Errorf("%q: want an absolute path", k)}
				}
			}
			return nil
		}, doc: "pinned PEM public key files (absolute paths)", shown: "required"},
	{name: "trust.threshold", def: 1, field: func(c *Config) any { return &c.Trust.Threshold }, fileOnly: true,
		check: func(c *Config) error {
			if c.Trust.Threshold < 1 {
				return fmt.Errorf("%d: must be at least 1", c.Trust.Threshold)
			}
			if c.Trust.Threshold > len(c.Trust.Keys) {
				return fmt.Errorf("%d: more than the %d key(s) in trust.keys", c.Trust.Threshold, len(c.Trust.Keys))
			}
			return nil
		}, doc: "k distinct signatures, 1 ≤ k ≤ len(keys)"},
	{name: "interval", def: "60s", field: func(c *Config) any { return &c.Interval }, flag: "interval", usage: "poll interval",
		check: positive(func(c *Config) time.Duration { return c.Interval }),
		doc:   "between polls, ±10% jitter; after errors the wait doubles up to `max_backoff`"},
	{name: "max_backoff", def: "15m", field: func(c *Config) any { return &c.MaxBackoff },
		check: func(c *Config) error {
			if c.MaxBackoff < c.Interval {
				return fmt.Errorf("%s: must be at least interval (%s)", c.MaxBackoff, c.Interval)
			}
			return nil
		}, doc: "cap of the backoff after errors"},
	{name: "root", def: "/", field: func(c *Config) any { return &c.Root }, flag: "root", usage: "prefix of every target path",
		check: func(c *Config) error { return wantAbs(c.Root) }, doc: "prefix of every target path"},
	{name: "state_dir", def: "/var/db/rigger", field: func(c *Config) any { return &c.StateDir }, flag: "state-dir", usage: "state directory",
		check: func(c *Config) error { return wantAbs(c.StateDir) }, doc: "the agent's records (below)"},
	{name: "driver", def: "freebsd", field: func(c *Config) any { return &c.Driver }, flag: "driver", usage: "host driver: freebsd or sim",
		check: oneOf(func(c *Config) string { return c.Driver }, "freebsd", "sim"), doc: "`freebsd` or `sim`"},
	{name: "health.timeout", def: "90s", field: func(c *Config) any { return &c.Health.Timeout },
		check: positive(func(c *Config) time.Duration { return c.Health.Timeout }), doc: "how long the health checks after an apply may take to pass"},
	{name: "drift", def: "report", field: func(c *Config) any { return &c.Drift },
		check: oneOf(func(c *Config) string { return c.Drift }, "report", "correct"),
		doc:   "`correct` reinstalls the current generation when managed files change"},
	{name: "log.level", def: "info", field: func(c *Config) any { return &c.Log.Level }, flag: "log-level", usage: "debug, info, warn or error",
		check: oneOf(func(c *Config) string { return c.Log.Level }, "debug", "info", "warn", "error"),
		doc:   "`debug`, `info`, `warn` or `error`; slog to stderr, one line per poll, more on change"},
	{name: "log.format", def: "text", field: func(c *Config) any { return &c.Log.Format },
		check: oneOf(func(c *Config) string { return c.Log.Format }, "text", "json"), doc: "`text` or `json`"},
	{name: "status.push", def: false, field: func(c *Config) any { return &c.Status.Push },
		doc: "push a signed status report to the host's ref on the git server after every outcome"},
	{name: "status.key", field: func(c *Config) any { return &c.Status.Key }, fileOnly: true,
		check: func(c *Config) error {
			if c.Status.Push && c.Status.Key == "" {
				return errors.New("required with status.push (make one with `agent keygen`)")
			}
			return absPath(func(c *Config) string { return c.Status.Key })(c)
		}, doc: "the host's private key (`agent keygen`); required with `status.push`"},
	{name: "status.url", field: func(c *Config) any { return &c.Status.URL },
		check: func(c *Config) error { return noPassword(c.Status.URL, "status.token_file") },
		doc:   "git server of the status refs; empty: `source.url`, with the source's credentials unless the status ones are set"},
	{name: "status.token_file", field: func(c *Config) any { return &c.Status.TokenFile }, check: absPath(func(c *Config) string { return c.Status.TokenFile }),
		doc: "HTTPS token for `status.url`"},
	{name: "status.ssh_key", field: func(c *Config) any { return &c.Status.SSHKey }, check: absPath(func(c *Config) string { return c.Status.SSHKey }),
		doc: "deploy key for `status.url`"},
	{name: "status.known_hosts", field: func(c *Config) any { return &c.Status.KnownHosts }, check: absPath(func(c *Config) string { return c.Status.KnownHosts }),
		doc: "host keys for `status.url`"},
	{name: "status.heartbeat", def: "5m", field: func(c *Config) any { return &c.Status.Heartbeat },
		check: positive(func(c *Config) time.Duration { return c.Status.Heartbeat }),
		doc:   "an unchanged report is pushed again this often (gates see a serial stay healthy)"},
	{name: "status.textfile", field: func(c *Config) any { return &c.Status.Textfile }, check: absPath(func(c *Config) string { return c.Status.Textfile }),
		doc: "node_exporter textfile (`…/rigger.prom`)"},
	{name: "status.hook", field: func(c *Config) any { return &c.Status.Hook }, fileOnly: true, check: absPath(func(c *Config) string { return c.Status.Hook }),
		doc: "executable run with the report on stdin after every outcome"},
	{name: "policy.roots", field: func(c *Config) any { return &c.Policy.Roots }, fileOnly: true, item: "directory",
		check: func(c *Config) error {
			for i, r := range c.Policy.Roots {
				if !strings.HasPrefix(r, "/") || path.Clean(r) != r || r == "/" || strings.ContainsAny(r, "*?[\\") {
					return &ConfigError{Key: fmt.Sprintf("policy.roots[%d]", i), Err: fmt.Errorf("%q: want a clean absolute directory below /", r)}
				}
			}
			return nil
		}, doc: "target roots beyond the defaults (a topology's `agent_roots`), e.g. `[/boot/loader.conf.d]`; the deny-list does not apply below them", shown: "none"},
	{name: "policy.max_files", def: 1000, field: func(c *Config) any { return &c.Policy.MaxFiles }, fileOnly: true,
		check: func(c *Config) error {
			if c.Policy.MaxFiles < 1 {
				return fmt.Errorf("%d: must be at least 1", c.Policy.MaxFiles)
			}
			return nil
		}, doc: "most files one bundle may carry"},
}

func absPath(get func(*Config) string) func(*Config) error {
	return func(c *Config) error {
		if p := get(c); p != "" && !filepath.IsAbs(p) {
			return fmt.Errorf("%q: want an absolute path", p)
		}
		return nil
	}
}

func wantAbs(p string) error {
	if p == "" || !filepath.IsAbs(p) {
		return fmt.Errorf("%q: want an absolute path", p)
	}
	return nil
}

func positive(get func(*Config) time.Duration) func(*Config) error {
	return func(c *Config) error {
		if get(c) <= 0 {
			return errors.New("must be positive")
		}
		return nil
	}
}

func atLeast(n int64, get func(*Config) int64) func(*Config) error {
	return func(c *Config) error {
		if v := get(c); v < n {
			return fmt.Errorf("%d: must be at least %d", v, n)
		}
		return nil
	}
}

func oneOf(get func(*Config) string, allowed ...string) func(*Config) error {
	return func(c *Config) error {
		if v := get(c); !slices.Contains(allowed, v) {
			return fmt.Errorf("%q: want %s or %s", v, strings.Join(allowed[:len(allowed)-1], ", "), allowed[len(allowed)-1])
		}
		return nil
	}
}

func noPassword(raw, instead string) error {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			return fmt.Errorf("must not carry a password; use %s", instead)
		}
	}
	return nil
}

// fileOnlyEnv reports whether name is the variable of a file-only key.
func fileOnlyEnv(name string) bool {
	for _, k := range keys {
		if k.fileOnly && EnvName(k.name) == name {
			return true
		}
	}
	return false
}

// AddConfigFlags registers the flags that override config keys. Flags win
// over the environment, which wins over the file.
func AddConfigFlags(f *pflag.FlagSet) {
	for _, k := range keys {
		if k.flag == "" {
			continue
		}
		usage := fmt.Sprintf("%s (overrides %s)", k.usage, k.name)
		if _, ok := k.field(&Config{}).(*time.Duration); ok {
			f.Duration(k.flag, 0, usage)
		} else {
			f.String(k.flag, "", usage)
		}
	}
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
		// trust.* and policy.* as sections: RIGGER_TRUST_ANYTHING too.
		if strings.HasPrefix(name, "RIGGER_TRUST") || strings.HasPrefix(name, "RIGGER_POLICY") || fileOnlyEnv(name) {
			cfg.IgnoredEnv = append(cfg.IgnoredEnv, name)
			continue
		}
		env[name] = val
	}
	for _, k := range keys {
		if k.fileOnly {
			continue
		}
		if val, ok := env[EnvName(k.name)]; ok && val != "" { // empty = unset
			v.Set(k.name, val)
		}
	}
	if fs != nil {
		// VisitAll + Changed: cobra parses persistent flags through the
		// subcommand's set, so fs itself never records them as actual.
		for _, k := range keys {
			if f := fs.Lookup(k.flag); k.flag != "" && f != nil && f.Changed {
				v.Set(k.name, f.Value.String())
			}
		}
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
	boolean := func(key string) bool {
		switch p := v.Get(key).(type) {
		case bool:
			return p
		case string:
			b, err := strconv.ParseBool(p)
			if err != nil && first == nil {
				first = &ConfigError{Key: key, Err: fmt.Errorf("%q: want true or false", p)}
			}
			return b
		default:
			if first == nil {
				first = &ConfigError{Key: key, Err: fmt.Errorf("want true or false, got %v", p)}
			}
			return false
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
	for _, k := range keys {
		switch f := k.field(c).(type) {
		case *string:
			*f = str(k.name)
		case *time.Duration:
			*f = dur(k.name)
		case *int:
			*f = integer(k.name)
		case *int64:
			*f = int64(integer(k.name))
		case *bool:
			*f = boolean(k.name)
		case *[]string:
			*f = list(k.name, k.item)
		default:
			panic(fmt.Sprintf("config key %s: field of type %T", k.name, f))
		}
	}
	return first
}

// Validate checks every value in the order of the keys; the error names
// the key.
func (c *Config) Validate() error {
	for _, k := range keys {
		if k.check == nil {
			continue
		}
		if err := k.check(c); err != nil {
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok {
				ce = &ConfigError{Key: k.name, Err: err}
			}
			ce.File = c.File
			return ce
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

// configDoc is the README's table of config keys, made from keys.
func configDoc() string {
	var b strings.Builder
	b.WriteString("| key | default | environment | flag | |\n|---|---|---|---|---|\n")
	for _, k := range keys {
		def := k.shown
		if def == "" && k.def != nil {
			def = fmt.Sprintf("`%v`", k.def)
		}
		env := "`" + EnvName(k.name) + "`"
		if k.fileOnly {
			env = "file only"
		}
		flag := ""
		if k.flag != "" {
			flag = "`--" + k.flag + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", k.name, def, env, flag, k.doc)
	}
	return b.String()
}
