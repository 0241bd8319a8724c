package bundle

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/rigger-bsd/rigger/policy/hostdesc"
	"github.com/rigger-bsd/rigger/verify"
)

// appendPayload appends json.Marshal(m) to dst: the manifest bytes the
// signatures cover, written by hand (encoding/json's reflection was most
// of a host's payload time). Every struct is written as encoding/json
// writes it: fields in declaration order, omitempty as it decides
// (isEmptyValue: zero numbers and bools, nil pointers, empty strings,
// slices and maps), nil slices without omitempty as null, map keys
// sorted, strings escaped (appendJSONString), and the types with their
// own marshalers (time.Time, verify.Mode, verify.Duration) in their
// form. TestPayloadSameBytesAsJSON and FuzzPayload hold the result
// byte-equal to json.Marshal; TestPayloadFields fails when a struct
// written here gains, loses or retypes a field. The only error is a
// time encoding/json refuses too (a year outside 0-9999).
func appendPayload(dst []byte, m *verify.Manifest) ([]byte, error) {
	dst = append(dst, `{"schema":`...)
	dst = strconv.AppendInt(dst, int64(m.Schema), 10)
	dst = append(dst, `,"host":`...)
	dst = appendJSONString(dst, m.Host)
	dst = append(dst, `,"serial":`...)
	dst = strconv.AppendUint(dst, m.Serial, 10)
	dst = append(dst, `,"source":{"repo":`...)
	dst = appendJSONString(dst, m.Source.Repo)
	dst = append(dst, `,"commit":`...)
	dst = appendJSONString(dst, m.Source.Commit)
	if m.Source.Dirty {
		dst = append(dst, `,"dirty":true`...)
	}
	dst = append(dst, '}')
	var err error
	for _, t := range [...]struct {
		key  string
		time time.Time
	}{{"created", m.Created}, {"expires", m.Expires}, {"not_before", m.NotBefore}} {
		if dst, err = appendTime(appendKey(dst, 0, t.key), t.time); err != nil {
			return nil, fmt.Errorf("manifest of %s: %s: %w", m.Host, t.key, err)
		}
	}
	dst = append(dst, `,"archive":{"sha256":`...)
	dst = appendJSONString(dst, m.Archive.SHA256)
	dst = append(dst, `,"size":`...)
	dst = strconv.AppendInt(dst, m.Archive.Size, 10)
	dst = append(dst, `},"files":`...)
	dst = appendList(dst, m.Files, appendFile)
	if len(m.Health) > 0 {
		dst = append(dst, `,"health":`...)
		dst = appendList(dst, m.Health, appendCheck)
	}
	if len(m.Secrets) > 0 {
		dst = append(dst, `,"secrets":`...)
		dst = appendStrings(dst, m.Secrets)
	}
	if len(m.NetifRestart) > 0 {
		dst = append(dst, `,"netif_restart":`...)
		dst = appendStrings(dst, m.NetifRestart)
	}
	if m.ReportKey != "" {
		dst = append(dst, `,"report_key":`...)
		dst = appendJSONString(dst, m.ReportKey)
	}
	if g := m.Gate; g != nil {
		dst = append(dst, `,"gate":{"hosts":`...)
		dst = appendList(dst, g.Hosts, appendGateHost)
		if g.Bake != 0 {
			dst = append(dst, `,"bake":`...)
			dst = appendDuration(dst, g.Bake)
		}
		dst = append(dst, '}')
	}
	if m.HostDesc != nil {
		dst = append(dst, `,"host_desc":`...)
		dst = appendHostDesc(dst, m.HostDesc)
	}
	return append(dst, '}'), nil
}

// appendTime appends t as time.Time.MarshalJSON writes it: RFC 3339 with
// nanoseconds, refused when the text would not be RFC 3339 (the checks
// of time's appendStrictRFC3339: a four-digit year, a zone hour below
// 24). A refused time gets MarshalJSON's own error.
func appendTime(dst []byte, t time.Time) ([]byte, error) {
	n := len(dst)
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	if s := dst[n+1:]; len(s) > 4 && s[4] == '-' && (s[len(s)-1] == 'Z' || zoneHourOK(s)) {
		return append(dst, '"'), nil
	}
	b, err := t.MarshalJSON()
	if err != nil {
		return dst[:n], err
	}
	return append(dst[:n], b...), nil // not reached: the checks above are MarshalJSON's
}

// zoneHourOK reports whether RFC 3339 text ending in a numeric zone
// ("+07:00") has a zone hour time.Time.MarshalJSON accepts: two digits
// below 24.
func zoneHourOK(s []byte) bool {
	z := s[len(s)-len("Z07:00"):]
	return !(z[0] >= '0' && z[0] <= '9') && z[1] >= '0' && z[1] <= '9' && z[2] >= '0' && z[2] <= '9' && 10*(z[1]-'0')+z[2]-'0' < 24
}

// appendDuration appends d as its MarshalText.
func appendDuration(dst []byte, d verify.Duration) []byte {
	text, _ := d.MarshalText() // cannot fail
	return appendJSONString(dst, string(text))
}

// appendList appends list as encoding/json writes a slice: null when
// nil, else each element as elem writes it, in brackets.
func appendList[T any](dst []byte, list []T, elem func([]byte, *T) []byte) []byte {
	if list == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = elem(dst, &list[i])
	}
	return append(dst, ']')
}

// appendStrings appends a []string (nil is null).
func appendStrings(dst []byte, list []string) []byte {
	return appendList(dst, list, func(dst []byte, s *string) []byte { return appendJSONString(dst, *s) })
}

func appendGateHost(dst []byte, h *verify.GateHost) []byte {
	dst = append(dst, `{"host":`...)
	dst = appendJSONString(dst, h.Host)
	dst = append(dst, `,"key":`...)
	dst = appendJSONString(dst, h.Key)
	dst = append(dst, `,"serial":`...)
	dst = strconv.AppendUint(dst, h.Serial, 10)
	return append(dst, '}')
}

// appendStringMap appends a map[string]string, keys sorted as
// encoding/json sorts them (byte order of the keys).
func appendStringMap(dst []byte, m map[string]string) []byte {
	if m == nil {
		return append(dst, "null"...)
	}
	var buf [32]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSONString(dst, m[k])
	}
	return append(dst, '}')
}

// appendKey appends `,"key":` (`"key":` for the first field of an
// object, first being where the object's text starts).
func appendKey(dst []byte, first int, key string) []byte {
	if len(dst) > first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}

// appendOptString appends an omitempty string field.
func appendOptString(dst []byte, first int, key, s string) []byte {
	if s == "" {
		return dst
	}
	return appendJSONString(appendKey(dst, first, key), s)
}

// appendOptInt appends an omitempty int field.
func appendOptInt(dst []byte, first int, key string, n int) []byte {
	if n == 0 {
		return dst
	}
	return strconv.AppendInt(appendKey(dst, first, key), int64(n), 10)
}

// appendOptStrings appends an omitempty []string field.
func appendOptStrings(dst []byte, first int, key string, list []string) []byte {
	if len(list) == 0 {
		return dst
	}
	return appendStrings(appendKey(dst, first, key), list)
}

func appendCheck(dst []byte, c *verify.Check) []byte {
	dst = append(dst, `{"kind":`...)
	dst = appendJSONString(dst, string(c.Kind))
	dst = append(dst, `,"name":`...)
	dst = appendJSONString(dst, c.Name)
	dst = appendOptString(dst, 0, "jail", c.Jail)
	dst = appendOptString(dst, 0, "addr", c.Addr)
	dst = appendOptString(dst, 0, "probe", c.Probe)
	dst = appendOptString(dst, 0, "send", c.Send)
	dst = appendOptString(dst, 0, "expect", c.Expect)
	dst = appendOptString(dst, 0, "url", c.URL)
	dst = appendOptInt(dst, 0, "status", c.Status)
	dst = appendOptString(dst, 0, "iface", c.Iface)
	dst = appendOptStrings(dst, 0, "command", c.Command)
	if c.Timeout != 0 {
		dst = appendDuration(appendKey(dst, 0, "timeout"), c.Timeout)
	}
	return append(dst, '}')
}

// appendHostDesc appends a hostdesc.Host (not nil); every field is
// omitempty.
func appendHostDesc(dst []byte, h *hostdesc.Host) []byte {
	dst = append(dst, '{')
	first := len(dst)
	dst = appendOptString(dst, first, "hostname", h.Hostname)
	if len(h.Interfaces) > 0 {
		dst = appendList(appendKey(dst, first, "interfaces"), h.Interfaces, appendInterface)
	}
	if len(h.Routes) > 0 {
		dst = appendList(appendKey(dst, first, "routes"), h.Routes, appendRoute)
	}
	if h.Forwarding {
		dst = append(appendKey(dst, first, "forwarding"), "true"...)
	}
	if len(h.Sysctls) > 0 {
		dst = appendStringMap(appendKey(dst, first, "sysctls"), h.Sysctls)
	}
	if len(h.Services) > 0 {
		dst = appendList(appendKey(dst, first, "services"), h.Services, appendService)
	}
	if len(h.Jails) > 0 {
		dst = appendList(appendKey(dst, first, "jails"), h.Jails, appendJail)
	}
	if len(h.Loader) > 0 {
		dst = appendStringMap(appendKey(dst, first, "loader"), h.Loader)
	}
	dst = appendOptString(dst, first, "management", h.Management)
	return append(dst, '}')
}

func appendRoute(dst []byte, r *hostdesc.Route) []byte {
	dst = append(dst, `{"name":`...)
	dst = appendJSONString(dst, r.Name)
	dst = appendOptInt(dst, 0, "fib", r.FIB)
	dst = append(dst, `,"dest":`...)
	dst = appendJSONString(dst, r.Dest)
	dst = appendOptString(dst, 0, "gateway", r.Gateway)
	dst = append(dst, `,"args":`...)
	dst = appendStrings(dst, r.Args)
	return append(dst, '}')
}

func appendService(dst []byte, s *hostdesc.Service) []byte {
	dst = append(dst, `{"name":`...)
	dst = appendJSONString(dst, s.Name)
	dst = appendOptString(dst, 0, "flags", s.Flags)
	return append(dst, '}')
}

func appendJail(dst []byte, j *hostdesc.Jail) []byte {
	dst = append(dst, `{"name":`...)
	dst = appendJSONString(dst, j.Name)
	dst = appendOptStrings(dst, 0, "interfaces", j.Interfaces)
	return append(dst, '}')
}

func appendInterface(dst []byte, i *hostdesc.Interface) []byte {
	dst = append(dst, `{"name":`...)
	dst = appendJSONString(dst, i.Name)
	dst = append(dst, `,"kind":`...)
	dst = appendJSONString(dst, string(i.Kind))
	dst = appendOptString(dst, 0, "clone", i.Clone)
	dst = appendOptString(dst, 0, "peer", i.Peer)
	dst = appendOptString(dst, 0, "jail", i.Jail)
	dst = appendOptStrings(dst, 0, "addrs", i.Addrs)
	dst = appendOptInt(dst, 0, "mtu", i.MTU)
	dst = appendOptInt(dst, 0, "fib", i.FIB)
	dst = appendOptStrings(dst, 0, "members", i.Members)
	dst = appendOptString(dst, 0, "proto", i.Proto)
	dst = appendOptStrings(dst, 0, "ports", i.Ports)
	dst = appendOptInt(dst, 0, "tag", i.Tag)
	dst = appendOptString(dst, 0, "parent", i.Parent)
	dst = appendOptStrings(dst, 0, "options", i.Options)
	return append(dst, '}')
}

// appendFile appends a verify.File, its mode as its text (Mode.MarshalText:
// octal, at least four digits).
func appendFile(dst []byte, f *verify.File) []byte {
	dst = append(dst, `{"path":`...)
	dst = appendJSONString(dst, f.Path)
	dst = append(dst, `,"mode":"`...)
	dst = appendMode(dst, f.Mode)
	dst = append(dst, `","owner":`...)
	dst = appendJSONString(dst, f.Owner)
	dst = append(dst, `,"group":`...)
	dst = appendJSONString(dst, f.Group)
	dst = append(dst, `,"sha256":`...)
	dst = appendJSONString(dst, f.SHA256)
	dst = append(dst, `,"size":`...)
	dst = strconv.AppendInt(dst, f.Size, 10)
	dst = append(dst, `,"unit":`...)
	dst = appendJSONString(dst, f.Unit)
	return append(dst, '}')
}

// appendMode is Mode.MarshalText ("%04o") without fmt.
func appendMode(dst []byte, m verify.Mode) []byte {
	var digits [11]byte
	d := strconv.AppendUint(digits[:0], uint64(uint32(m)), 8)
	for range 4 - len(d) {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}

// appendJSONString appends s quoted as json.Marshal quotes a string (its
// appendString with HTML escaping): printable ASCII other than the
// quote, the backslash and <, >, & is copied, and so is valid UTF-8
// other than U+2028 and U+2029; \b, \f, \n, \r, \t and the quote and
// backslash get their short escapes, other control bytes and <, >, &
// \u00XX (lower-case hex), U+2028 and U+2029 \u2028 and \u2029, each
// byte of invalid UTF-8 \ufffd.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// jsonSafe holds the ASCII bytes json.Marshal copies into a string as
// they are (its htmlSafeSet).
var jsonSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := range safe {
		safe[c] = c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return safe
}()

// paeReader reads verify.PAE(payloadType, payload) without copying the
// payload into it: signing only hashes the message (io.Copy into the
// hash, which takes WriteTo; io.MultiReader's WriteTo would allocate a
// 32 KiB buffer per signature).
func paeReader(payloadType string, payload []byte) io.Reader {
	head := make([]byte, 0, 64+len(payloadType))
	head = append(head, "DSSEv1 "...)
	head = strconv.AppendInt(head, int64(len(payloadType)), 10)
	head = append(head, ' ')
	head = append(head, payloadType...)
	head = append(head, ' ')
	head = strconv.AppendInt(head, int64(len(payload)), 10)
	head = append(head, ' ')
	return &pae{parts: [2][]byte{head, payload}}
}

// pae is a reader of two byte slices, one after the other.
type pae struct{ parts [2][]byte }

func (p *pae) Read(b []byte) (int, error) {
	for i := range p.parts {
		if len(p.parts[i]) > 0 {
			n := copy(b, p.parts[i])
			p.parts[i] = p.parts[i][n:]
			return n, nil
		}
	}
	return 0, io.EOF
}

func (p *pae) WriteTo(w io.Writer) (int64, error) {
	var sum int64
	for i := range p.parts {
		n, err := w.Write(p.parts[i])
		sum += int64(n)
		p.parts[i] = p.parts[i][n:]
		if err != nil {
			return sum, err
		}
	}
	return sum, nil
}
