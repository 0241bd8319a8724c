// Package wgconf checks WireGuard wg-quick(8) configuration files the way
// wg-quick and wg(8) read them on FreeBSD: sections, keys (matched
// case-insensitively, as wg-quick's parse_options does with nocasematch
// and wg's config.c with strcasecmp), 32-byte base64 keys, addresses and
// AllowedIPs, endpoints, numeric values and the shell hooks. It never runs
// wg or ifconfig. Errors are policy.FileError values, FILE:LINE: message.
package wgconf

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/rigger-bsd/rigger/policy"
)

// MaxSize is the largest configuration Check reads.
const MaxSize = 1 << 20

// Error is one problem at a file and line.
type Error = policy.FileError

// ErrorList is every problem of a check, in file order.
type ErrorList = policy.ErrorList

// Options say how Check runs the checks that need a tool.
type Options struct {
	// Shell checks a hook's syntax (PreUp, PostUp, PreDown, PostDown,
	// with %i replaced); nil means policy.ShellSyntax (sh -n).
	Shell func(cmd string) error
	// Interface replaces %i in hooks; "" means the file name without
	// its directory and .conf suffix, as wg-quick does.
	Interface string
}

// Entry is one key = value line.
type Entry struct {
	Key, Value string
	Line       int
}

// Section is [Interface] or one [Peer].
type Section struct {
	Name    string // "Interface" or "Peer"
	Line    int
	Entries []Entry
}

// Config is a parsed wg-quick file.
type Config struct {
	File     string
	Sections []Section
}

// Parse splits src into sections and entries as wg-quick's parse_options
// does: '#' starts a comment, "[Name]" starts a section, every other
// non-blank line is key = value with blanks trimmed.
func Parse(file string, src []byte) (*Config, ErrorList) {
	c := &Config{File: file}
	var errs ErrorList
	fail := func(line int, format string, a ...any) {
		errs = append(errs, &Error{File: file, Line: line, Msg: fmt.Sprintf(format, a...)})
	}
	if len(src) > MaxSize {
		fail(0, "file larger than %d bytes", MaxSize)
		return c, errs
	}
	for i, raw := range strings.Split(string(src), "\n") {
		line := i + 1
		s := raw
		if j := strings.IndexByte(s, '#'); j >= 0 {
			s = s[:j]
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.HasPrefix(s, "[") {
			name := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
			switch {
			case !strings.HasSuffix(s, "]"):
				fail(line, "line unrecognized: %q", s)
			case strings.EqualFold(name, "Interface"):
				c.Sections = append(c.Sections, Section{Name: "Interface", Line: line})
			case strings.EqualFold(name, "Peer"):
				c.Sections = append(c.Sections, Section{Name: "Peer", Line: line})
			default:
				fail(line, "unknown section [%s] (want [Interface] or [Peer])", name)
				c.Sections = append(c.Sections, Section{Name: name, Line: line})
			}
			continue
		}
		key, value, ok := strings.Cut(s, "=")
		if !ok {
			fail(line, "line unrecognized: %q (want Key = Value)", s)
			continue
		}
		if len(c.Sections) == 0 {
			fail(line, "%s outside a section: the file must start with [Interface]", strings.TrimSpace(key))
			continue
		}
		sec := &c.Sections[len(c.Sections)-1]
		sec.Entries = append(sec.Entries, Entry{Key: strings.TrimSpace(key), Value: strings.TrimSpace(value), Line: line})
	}
	return c, errs
}

// Check parses and checks a wg-quick file.
func Check(file string, src []byte, opts Options) ErrorList {
	c, errs := Parse(file, src)
	if len(src) > MaxSize {
		return errs
	}
	if opts.Shell == nil {
		opts.Shell = policy.ShellSyntax
	}
	if opts.Interface == "" {
		base := file[strings.LastIndexByte(file, '/')+1:]
		opts.Interface = strings.TrimSuffix(base, ".conf")
	}
	fail := func(line int, format string, a ...any) {
		errs = append(errs, &Error{File: file, Line: line, Msg: fmt.Sprintf(format, a...)})
	}
	ifaces := 0
	for i, sec := range c.Sections {
		switch sec.Name {
		case "Interface":
			ifaces++
			if i != 0 || ifaces > 1 {
				fail(sec.Line, "[Interface] must be the first and only interface section")
			}
			checkInterface(sec, opts, fail)
		case "Peer":
			checkPeer(sec, fail)
		}
	}
	if ifaces == 0 && len(src) <= MaxSize {
		fail(0, "no [Interface] section")
	}
	return sortErrs(errs)
}

func sortErrs(errs ErrorList) ErrorList {
	for i := 1; i < len(errs); i++ {
		for j := i; j > 0 && errs[j].Line < errs[j-1].Line; j-- {
			errs[j], errs[j-1] = errs[j-1], errs[j]
		}
	}
	return errs
}

type failFunc func(line int, format string, a ...any)

func checkInterface(sec Section, opts Options, fail failFunc) {
	hasKey := false
	for _, e := range sec.Entries {
		switch strings.ToLower(e.Key) {
		case "address":
			for _, a := range list(e.Value) {
				if !isAddrOrPrefix(a) {
					fail(e.Line, "Address %q: want an address or address/prefix", a)
				}
			}
		case "dns":
			// addresses or search domains: wg-quick sorts them by shape
			for _, d := range list(e.Value) {
				if strings.ContainsAny(d, "/ ") {
					fail(e.Line, "DNS %q: want an address or a search domain", d)
				}
			}
		case "mtu":
			checkUint(e, 576, 65535, fail)
		case "table":
			if v := strings.ToLower(e.Value); v != "off" && v != "auto" {
				checkUint(e, 0, 1<<31-1, fail)
			}
		case "preup", "postup", "predown", "postdown":
			cmd := strings.ReplaceAll(e.Value, "%i", opts.Interface)
			if err := opts.Shell(cmd); err != nil {
				fail(e.Line, "%s: sh -n: %v", e.Key, err)
			}
			if isPrivateKeyHook(e) {
				hasKey = true
			}
		case "saveconfig":
			if v := strings.ToLower(e.Value); v != "true" && v != "false" {
				fail(e.Line, "SaveConfig %q: want true or false", e.Value)
			}
		case "privatekey":
			checkKey(e, fail)
			hasKey = true
		case "listenport":
			checkUint(e, 0, 65535, fail)
		case "fwmark":
			if strings.ToLower(e.Value) != "off" {
				checkUint(e, 0, 1<<32-1, fail)
			}
		default:
			fail(e.Line, "line unrecognized: unknown key %s in [Interface]", e.Key)
		}
	}
	if !hasKey {
		fail(sec.Line, "no private key: set PrivateKey, or load it with PostUp = wg set %%i private-key FILE")
	}
}

// isPrivateKeyHook reports a PostUp that loads the key from a file, the
// form bundler/topology renders so that keys stay on the host.
func isPrivateKeyHook(e Entry) bool {
	if !strings.EqualFold(e.Key, "PostUp") {
		return false
	}
	f := strings.Fields(e.Value)
	for i := 0; i+3 < len(f); i++ {
		if f[i] == "wg" && f[i+1] == "set" && f[i+3] == "private-key" && i+4 < len(f) {
			return true
		}
	}
	return false
}

func checkPeer(sec Section, fail failFunc) {
	hasPub := false
	for _, e := range sec.Entries {
		switch strings.ToLower(e.Key) {
		case "publickey":
			checkKey(e, fail)
			hasPub = true
		case "presharedkey":
			checkKey(e, fail)
		case "allowedips":
			for _, a := range list(e.Value) {
				if !isAddrOrPrefix(a) {
					fail(e.Line, "AllowedIPs %q: want an address or address/prefix", a)
				}
			}
		case "endpoint":
			if msg := checkEndpoint(e.Value); msg != "" {
				fail(e.Line, "Endpoint %q: %s", e.Value, msg)
			}
		case "persistentkeepalive":
			if strings.ToLower(e.Value) != "off" {
				checkUint(e, 0, 65535, fail)
			}
		default:
			fail(e.Line, "line unrecognized: unknown key %s in [Peer]", e.Key)
		}
	}
	if !hasPub {
		fail(sec.Line, "[Peer] without PublicKey")
	}
}

func list(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func isAddrOrPrefix(s string) bool {
	if strings.Contains(s, "/") {
		_, err := netip.ParsePrefix(s)
		return err == nil
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// checkKey: wg's key_from_base64 wants 44 characters of base64 that
// decode to 32 bytes.
func checkKey(e Entry, fail failFunc) {
	b, err := base64.StdEncoding.DecodeString(e.Value)
	if len(e.Value) != 44 || err != nil || len(b) != 32 {
		fail(e.Line, "%s: not a 32-byte base64 key", e.Key)
	}
}

func checkUint(e Entry, min, max uint64, fail failFunc) {
	n, err := strconv.ParseUint(e.Value, 0, 64)
	if err != nil || n < min || n > max {
		fail(e.Line, "%s %q: want a number from %d to %d", e.Key, e.Value, min, max)
	}
}

// checkEndpoint: host:port or [v6]:port, as wg's parse_endpoint splits it.
func checkEndpoint(v string) string {
	var host, port string
	if strings.HasPrefix(v, "[") {
		end := strings.Index(v, "]:")
		if end < 0 {
			return "want [address]:port"
		}
		host, port = v[1:end], v[end+2:]
		if _, err := netip.ParseAddr(host); err != nil {
			return "bad address in brackets"
		}
	} else {
		i := strings.LastIndexByte(v, ':')
		if i < 0 {
			return "want host:port"
		}
		host, port = v[:i], v[i+1:]
		if strings.Contains(host, ":") {
			return "an IPv6 address needs brackets: [address]:port"
		}
	}
	if host == "" {
		return "empty host"
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "port must be a number from 1 to 65535"
	}
	return ""
}
