package freebsd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/rigger-bsd/rigger/apply/freebsd/layout"
)

// JailInfo is one jail from `jls --libxo json -v`.
type JailInfo struct {
	JID      int
	Name     string
	Hostname string
	Path     string
	State    string // ACTIVE, DYING; empty without -v
	IPv4     []string
}

// ParseJLS reads `jls --libxo json [-v]` output (JLS_XO_VERSION 2). Values
// may be numbers or strings depending on the flags, so both are accepted.
func ParseJLS(out []byte) ([]JailInfo, error) {
	var doc struct {
		Version string `json:"__version"`
		Info    struct {
			Jail []map[string]json.RawMessage `json:"jail"`
		} `json:"jail-information"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("jls json: %w", err)
	}
	if doc.Version != "" && doc.Version != "2" {
		return nil, fmt.Errorf("jls json: version %q, want 2", doc.Version)
	}
	var res []JailInfo
	for _, j := range doc.Info.Jail {
		ji := JailInfo{
			Name:     scalar(j["name"]),
			Hostname: scalar(j["hostname"]),
			Path:     scalar(j["path"]),
			State:    scalar(j["state"]),
		}
		if s := scalar(j["jid"]); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return nil, fmt.Errorf("jls json: jid %q: %w", s, err)
			}
			ji.JID = n
		}
		for _, k := range []string{"ipv4_addrs", "ip4.addr"} {
			var l []string
			if json.Unmarshal(j[k], &l) == nil {
				ji.IPv4 = append(ji.IPv4, l...)
			}
		}
		if s := scalar(j["ipv4"]); s != "" {
			ji.IPv4 = append(ji.IPv4, s)
		}
		res = append(res, ji)
	}
	return res, nil
}

// scalar returns a JSON string or number as text ("" for anything else).
func scalar(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// ParsePFInfo reads the status line of `pfctl -s info`.
func ParsePFInfo(out []byte) (enabled bool, err error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "Status:" {
			switch f[1] {
			case "Enabled":
				return true, nil
			case "Disabled":
				return false, nil
			}
			return false, fmt.Errorf("pfctl -s info: unknown status %q", f[1])
		}
	}
	return false, fmt.Errorf("pfctl -s info: no Status line")
}

// ServiceJailFailure extracts why `service jail start|restart NAME` could
// not start the jail. rc.d/jail's jail_start (libexec/rc/rc.d/jail)
// prints `echo " cannot start jail " "\"NAME\": "`, and echo joins its arguments with a space: the
// line reads ` cannot start jail  "NAME": ` with two spaces (the errata
// of reference/FREEBSD.md quote the current script's startmsg with the
// same two arguments). jail(8)'s
// captured output follows, then `.`; the script exits 0 regardless. The
// words are matched with any run of blanks between them.
func ServiceJailFailure(out []byte, name string) (reason string, failed bool) {
	re := regexp.MustCompile(`cannot\s+start\s+jail\s+"` + regexp.QuoteMeta(name) + `":`)
	s := string(out)
	loc := re.FindStringIndex(s)
	if loc == nil {
		return "", false
	}
	var lines []string
	for _, ln := range strings.Split(s[loc[1]:], "\n") {
		if ln = strings.TrimSpace(ln); ln != "" && ln != "." {
			lines = append(lines, ln)
		}
	}
	return strings.Join(lines, "; "), true
}

// notEnabled matches run_rc_command's message (libexec/rc/rc.subr) when
// ${rcvar} is not YES: `Cannot 'restart' nginx. Set nginx_enable to YES
// in /etc/rc.conf or use 'onerestart' instead of 'restart'.` It is printed
// on stdout and run_rc_command returns 0: the command did nothing.
var notEnabled = regexp.MustCompile(`(?m)^Cannot '(\S+)' (\S+)\. Set (\S+) to YES`)

// ServiceNotEnabled reports whether service(8)'s output says it did
// nothing because the service's rcvar is not YES, and names the rcvar.
func ServiceNotEnabled(stdout []byte) (rcvar string, ok bool) {
	m := notEnabled.FindSubmatch(stdout)
	if m == nil {
		return "", false
	}
	return string(m[3]), true
}

// sysctlAtLine matches sysctl(8)'s per-line errors from `sysctl -f`:
// warnx("... at line %d") or warn(), which appends ": strerror"
// (sbin/sysctl/sysctl.c parse).
var sysctlAtLine = regexp.MustCompile(`^sysctl: (.*) at line (\d+)(?:: (.*))?$`)

// parseSysctlErrors turns `sysctl -f FILE` stderr into FileErrors on
// file (the host path); lines without a line number (`Tunable values are
// set in /boot/loader.conf`) are added to the message before them.
func parseSysctlErrors(stderr []byte, file string) []error {
	var errs []*layout.FileError
	for _, ln := range strings.Split(string(stderr), "\n") {
		ln = strings.TrimSpace(ln)
		if ln == "" {
			continue
		}
		if m := sysctlAtLine.FindStringSubmatch(ln); m != nil {
			n, _ := strconv.Atoi(m[2])
			msg := m[1]
			if m[3] != "" {
				msg += ": " + m[3]
			}
			errs = append(errs, &layout.FileError{File: file, Line: n, Msg: msg})
			continue
		}
		msg := strings.TrimPrefix(ln, "sysctl: ")
		if len(errs) > 0 {
			errs[len(errs)-1].Msg += " (" + msg + ")"
			continue
		}
		errs = append(errs, &layout.FileError{File: file, Msg: msg})
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return out
}
