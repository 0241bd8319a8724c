package freebsd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
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
// not start the jail: rc.d/jail prints ` cannot start jail "NAME": `, then
// jail(8)'s output, then `.`, and exits 0 regardless.
func ServiceJailFailure(out []byte, name string) (reason string, failed bool) {
	s := string(out)
	marker := `cannot start jail "` + name + `":`
	i := strings.Index(s, marker)
	if i < 0 {
		return "", false
	}
	rest := strings.TrimSpace(s[i+len(marker):])
	var lines []string
	for _, ln := range strings.Split(rest, "\n") {
		if ln = strings.TrimSpace(ln); ln != "" && ln != "." {
			lines = append(lines, ln)
		}
	}
	return strings.Join(lines, "; "), true
}
