package verify

// The closed grammars of the names a manifest carries. Each is an ASCII
// first byte, ASCII further bytes and a length bound, checked byte by byte
// as the regular expression beside it says (TestNameGrammars holds them
// equal) without running a regexp engine in every verification.
var (
	hostName    = grammarOf(alnum, alnum+"._-", 1, 63)          // ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$
	ownerName   = grammarOf(alpha+"_", alnum+"_.-", 1, 32)      // ^[A-Za-z_][A-Za-z0-9_.-]{0,31}$
	ifaceName   = grammarOf(alnum+"_.-", alnum+"_.-", 1, 32)    // ^[A-Za-z0-9_.-]{1,32}$
	unitName    = grammarOf(alnum+"_", alnum+"_.-", 1, 64)      // ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$
	serviceName = grammarOf(alnum+"_", alnum+"_", 1, 64)        // ^[A-Za-z0-9_]{1,64}$ (jail names too)
	sysctlName  = grammarOf(alnum+"_.%-", alnum+"_.%-", 1, 128) // ^[A-Za-z0-9_.%-]{1,128}$
	negatedOpt  = grammarOf("-", lower+digits, 2, -1)           // ^-[a-z0-9]+$
)

const (
	digits = "0123456789"
	lower  = "abcdefghijklmnopqrstuvwxyz"
	alpha  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + lower
	alnum  = alpha + digits
)

// grammar is a name of min (at least 1) to max bytes (max < 0: no bound)
// whose first byte is in first and every other byte in rest.
type grammar struct {
	first, rest byteSet
	min, max    int
}

func grammarOf(first, rest string, min, max int) grammar {
	return grammar{first: setOf(first), rest: setOf(rest), min: min, max: max}
}

func (g *grammar) match(s string) bool {
	if len(s) == 0 || len(s) < g.min || g.max >= 0 && len(s) > g.max || !g.first.has(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !g.rest.has(s[i]) {
			return false
		}
	}
	return true
}

// byteSet is a set of bytes, one bit each.
type byteSet [4]uint64

func setOf(s string) (b byteSet) {
	for i := 0; i < len(s); i++ {
		b[s[i]>>6] |= 1 << (s[i] & 63)
	}
	return b
}

func (b *byteSet) has(c byte) bool { return b[c>>6]&(1<<(c&63)) != 0 }

// isSHA256 reports whether s is 64 lowercase hex digits. It looks every
// byte up in a table and tests once at the end: a branch per byte between
// digits and letters would be mispredicted on random hex.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	var bad byte
	for i := 0; i < len(s); i++ {
		bad |= notHex[s[i]]
	}
	return bad == 0
}

// notHex is 1 for every byte but a lowercase hex digit.
var notHex = func() (t [256]byte) {
	for c := range t {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			t[c] = 1
		}
	}
	return t
}()

// nameSet is a set of names that stays a slice on the stack while small:
// a manifest or host description lists a few dozen names, which a scan
// finds faster than a map made for every check; an untrusted one with
// more gets a map, so the scan is never quadratic in a large list.
type nameSet struct {
	small [32]string
	n     int
	big   map[string]bool
}

// add adds s and reports whether it was new.
func (ns *nameSet) add(s string) bool {
	if ns.big != nil {
		if ns.big[s] {
			return false
		}
		ns.big[s] = true
		return true
	}
	for _, t := range ns.small[:ns.n] {
		if t == s {
			return false
		}
	}
	if ns.n < len(ns.small) {
		ns.small[ns.n] = s
		ns.n++
		return true
	}
	ns.big = make(map[string]bool, 2*len(ns.small))
	for _, t := range ns.small {
		ns.big[t] = true
	}
	ns.big[s] = true
	return true
}
