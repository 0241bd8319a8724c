package pf

import (
	"net/netip"
	"strconv"
	"strings"
)

// Fixed name tables. pfctl reads /etc/services, /etc/protocols, passwd
// and group on the host; offline we use FreeBSD's stock values so that
// output does not depend on the machine running the check. The services
// and protocols come from FreeBSD's own files (services.txt,
// services_table.go, protocols.txt, protocols_table.go).

//go:generate go run gen_tables.go

// lookupService is pfctl's getservice (sbin/pfctl/pfctl_parser.c): a
// name or alias from FreeBSD's /etc/services, tcp first, then udp.
func lookupService(name string) (int, bool) {
	if n, ok := servicesTCP[name]; ok {
		return n, true
	}
	n, ok := servicesUDP[name]
	return n, ok
}

// serviceName is the name pfctl prints for port under proto
// (getservbyport; tcp when the rule has no protocol), else the number.
func serviceName(port int, proto string) string {
	tab := portsTCP
	if proto == "udp" {
		tab = portsUDP
	} else if proto != "" && proto != "tcp" {
		return strconv.Itoa(port)
	}
	if n, ok := tab[port]; ok {
		return n
	}
	return strconv.Itoa(port)
}

// icmpName is one ICMP type or code name pfctl knows, with its number.
type icmpName struct {
	name string
	n    int
}

var icmpTypes = []icmpName{
	{"echorep", 0}, {"unreach", 3}, {"squench", 4}, {"redir", 5}, {"althost", 6}, {"echoreq", 8},
	{"routeradv", 9}, {"routersol", 10}, {"timex", 11}, {"paramprob", 12}, {"timereq", 13},
	{"timerep", 14}, {"inforeq", 15}, {"inforep", 16}, {"maskreq", 17}, {"maskrep", 18}, {"trace", 30},
	{"dataconv", 31}, {"mobredir", 32}, {"ipv6-where", 33}, {"ipv6-here", 34}, {"mobregreq", 35},
	{"mobregrep", 36}, {"skip", 39}, {"photuris", 40},
}

var icmp6Types = []icmpName{
	{"unreach", 1}, {"toobig", 2}, {"timex", 3}, {"paramprob", 4}, {"echoreq", 128}, {"echorep", 129},
	{"groupqry", 130}, {"listqry", 130}, {"grouprep", 131}, {"listenrep", 131}, {"groupterm", 132},
	{"listendone", 132}, {"routersol", 133}, {"routeradv", 134}, {"neighbrsol", 135},
	{"neighbradv", 136}, {"redir", 137}, {"routrrenum", 138}, {"wrureq", 139}, {"wrurep", 140},
	{"fqdnreq", 139}, {"fqdnrep", 140}, {"niqry", 139}, {"nirep", 140}, {"mtraceresp", 200}, {"mtrace", 201},
}

func icmpTypeName(s string, v6 bool) (string, bool) {
	if v6 {
		return icmpLookup(icmp6Types, s)
	}
	return icmpLookup(icmpTypes, s)
}

var icmpCodes = []icmpName{
	{"net-unr", 0}, {"host-unr", 1}, {"proto-unr", 2}, {"port-unr", 3}, {"needfrag", 4}, {"srcfail", 5},
	{"net-unk", 6}, {"host-unk", 7}, {"isolate", 8}, {"net-prohib", 9}, {"host-prohib", 10},
	{"net-tos", 11}, {"host-tos", 12}, {"filter-prohib", 13}, {"host-preced", 14}, {"cutoff-preced", 15},
	{"redir-net", 0}, {"redir-host", 1}, {"redir-tos-net", 2}, {"redir-tos-host", 3},
	{"normal-adv", 0}, {"common-adv", 16}, {"transit", 0}, {"reassemb", 1}, {"badhead", 0},
	{"optmiss", 1}, {"badlen", 2}, {"unknown-ind", 1}, {"auth-fail", 2}, {"decrypt-fail", 3},
}

var icmp6Codes = []icmpName{
	{"noroute-unr", 0}, {"admin-unr", 1}, {"notnbr-unr", 2}, {"beyond-unr", 2}, {"addr-unr", 3},
	{"port-unr", 4}, {"transit", 0}, {"reassemb", 1}, {"badhead", 0}, {"nxthdr", 1}, {"redironlink", 0},
	{"redirrouter", 1},
}

// icmpCodeName maps a code (number or name) to the name pfctl prints for
// return-icmp; numbers without a name print as numbers.
func icmpCodeName(s string, v6 bool) (string, bool) {
	if v6 {
		return icmpLookup(icmp6Codes, s)
	}
	return icmpLookup(icmpCodes, s)
}

// icmpLookup maps a number to the first name tab gives it (numbers
// without a name print as numbers) and accepts a name tab knows.
func icmpLookup(tab []icmpName, s string) (string, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 255 {
			return "", false
		}
		for _, t := range tab {
			if t.n == n {
				return t.name, true
			}
		}
		return s, true
	}
	for _, t := range tab {
		if t.name == s {
			return s, true
		}
	}
	return "", false
}

var userIDs = map[string]int{
	"root": 0, "toor": 0, "daemon": 1, "operator": 2, "bin": 3, "tty": 4, "kmem": 5, "games": 7,
	"news": 8, "man": 9, "sshd": 22, "smmsp": 25, "mailnull": 26, "bind": 53, "unbound": 59,
	"proxy": 62, "_pflogd": 64, "_dhcp": 65, "uucp": 66, "pop": 68, "auditdistd": 78, "www": 80,
	"ntpd": 123, "_ypldap": 160, "hast": 845, "nobody": 65534,
}

var groupIDs = map[string]int{
	"wheel": 0, "daemon": 1, "kmem": 2, "sys": 3, "tty": 4, "operator": 5, "mail": 6, "bin": 7,
	"news": 8, "man": 9, "games": 13, "ftp": 14, "staff": 20, "sshd": 22, "smmsp": 25, "mailnull": 26,
	"guest": 31, "video": 44, "bind": 53, "unbound": 59, "proxy": 62, "authpf": 63, "_pflogd": 64,
	"_dhcp": 65, "uucp": 66, "dialer": 68, "network": 69, "audit": 77, "www": 80, "ntpd": 123,
	"_ypldap": 160, "hast": 845, "nogroup": 65533, "nobody": 65534,
}

// maskText prints address a with prefix length bits, masked, as pfctl
// does (no /32 or /128 for a single host).
func maskText(a string, bits int) string {
	ip, err := netip.ParseAddr(a)
	if err != nil {
		return a + "/" + strconv.Itoa(bits)
	}
	if bits < 0 || bits >= ip.BitLen() {
		return ip.String()
	}
	pfx, err := ip.Prefix(bits)
	if err != nil {
		return a + "/" + strconv.Itoa(bits)
	}
	return pfx.String()
}

func isNumericDotted(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// parseAddr classifies one host word with an optional mask (-1: none).
func parseAddr(w string, mask int) (hostItem, bool) {
	h := hostItem{mask: mask}
	if w == "" {
		return h, false
	}
	if w == "localhost" {
		h.kind, h.text = "localhost", "localhost"
		return h, true
	}
	// inet_net_pton accepts short IPv4 networks: 10/8, 10.0.2/24
	if mask >= 0 && isNumericDotted(w) && strings.Count(w, ".") < 3 {
		parts := strings.Split(w, ".")
		for len(parts) < 4 {
			parts = append(parts, "0")
		}
		w = strings.Join(parts, ".")
	}
	if ip, err := netip.ParseAddr(w); err == nil && ip.Zone() != "" {
		// fe80::1%em0: scoped, printed as written
		if mask > 128 {
			return h, false
		}
		h.kind, h.af, h.text = "addr", "inet6", w
		if mask >= 0 {
			h.text += "/" + strconv.Itoa(mask)
		}
		return h, true
	}
	if ip, err := netip.ParseAddr(w); err == nil && ip.Zone() == "" {
		if ip.Is4() && mask > 32 || mask > 128 {
			return h, false
		}
		h.kind = "addr"
		h.af = "inet"
		if ip.Is6() && !ip.Is4In6() {
			h.af = "inet6"
		}
		h.text = maskText(ip.String(), mask)
		return h, true
	}
	if isNumericDotted(w) {
		return h, false
	}
	base, mod, hasMod := strings.Cut(w, ":")
	if hasMod {
		switch mod {
		case "network", "broadcast", "peer", "0":
		default:
			return h, false
		}
		if !validIfName(base) {
			return h, false
		}
		h.kind, h.text = "if", w
	} else {
		for i := 0; i < len(w); i++ {
			c := w[i]
			if !isAlnum(int(c)) && c != '.' && c != '-' && c != '_' {
				return h, false
			}
		}
		if !isAlnum(int(w[0])) {
			return h, false
		}
		h.kind, h.text = "name", w
	}
	if mask >= 0 {
		h.text += "/" + strconv.Itoa(mask)
	}
	return h, true
}

// plausibleHost reports whether a table-file entry could be loaded.
func plausibleHost(s string) bool {
	w, m, hasMask := strings.Cut(s, "/")
	mask := -1
	if hasMask {
		n, err := strconv.Atoi(m)
		if err != nil || n < 0 || n > 128 {
			return false
		}
		mask = n
	}
	_, ok := parseAddr(w, mask)
	return ok
}
