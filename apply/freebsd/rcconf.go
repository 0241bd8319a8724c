package freebsd

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/rigger-bsd/rigger/apply/freebsd/layout"
	"github.com/rigger-bsd/rigger/policy/rcconf"
)

// pfSettings are rc.d/pf's pf_rules and pf_flags.
type pfSettings struct {
	Rules string   // absolute host path
	Flags []string // split on blanks, as rc.d/pf's unquoted $pf_flags
}

// pfRCFiles are the files load_rc_config pf reads after
// /etc/defaults/rc.conf, in order, later values winning
// (libexec/rc/rc.subr load_rc_config; rc_conf_files' default).
var pfRCFiles = []string{layout.RCConf, "/etc/rc.conf.local", "/etc/rc.conf.d/pf"}

// readPFSettings reads pf_rules (default /etc/pf.conf, as in
// /etc/defaults/rc.conf) and pf_flags (default empty) the way rc.d/pf
// gets them, through read (absolute host paths). Missing files are
// skipped. Values are read, never evaluated: one that needs the shell
// ($var, `cmd`, $(cmd)) is an error naming the file.
func readPFSettings(read func(string) ([]byte, error)) (pfSettings, error) {
	vals := map[string]string{"pf_rules": layout.PFConf, "pf_flags": ""}
	from := map[string]string{}
	for _, f := range pfRCFiles {
		src, err := read(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return pfSettings{}, fmt.Errorf("pf settings: %w", err)
		}
		vars, err := rcconf.Parse(f, src)
		if err != nil {
			return pfSettings{}, fmt.Errorf("pf settings: %w", err)
		}
		for _, k := range []string{"pf_rules", "pf_flags"} {
			if v, ok := vars[k]; ok {
				vals[k], from[k] = v, f
			}
		}
	}
	for k, v := range vals {
		if strings.ContainsAny(v, "$`") {
			return pfSettings{}, fmt.Errorf("pf settings: %s: %s=%q needs the shell to evaluate; rigger reads rc.conf values literally", from[k], k, v)
		}
	}
	rules := vals["pf_rules"]
	if !strings.HasPrefix(rules, "/") {
		return pfSettings{}, fmt.Errorf("pf settings: %s: pf_rules=%q is not an absolute path", from["pf_rules"], rules)
	}
	return pfSettings{Rules: rules, Flags: strings.Fields(vals["pf_flags"])}, nil
}
