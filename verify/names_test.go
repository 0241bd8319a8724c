package verify

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// grammarRegexps are the regular expressions the name grammars replace
// (the ones verify used before): a grammar must accept exactly what its
// regexp matches.
var grammarRegexps = []struct {
	name string
	g    *grammar
	re   *regexp.Regexp
}{
	{"host", &hostName, regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$`)},
	{"owner", &ownerName, regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)},
	{"iface", &ifaceName, regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)},
	{"unit", &unitName, regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)},
	{"service", &serviceName, regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)},
	{"sysctl", &sysctlName, regexp.MustCompile(`^[A-Za-z0-9_.%-]{1,128}$`)},
	{"negated", &negatedOpt, regexp.MustCompile(`^-[a-z0-9]+$`)},
}

func checkGrammars(t *testing.T, s string) {
	t.Helper()
	for _, g := range grammarRegexps {
		if got, want := g.g.match(s), g.re.MatchString(s); got != want {
			t.Fatalf("%s grammar on %q: %v, its regexp says %v", g.name, s, got, want)
		}
	}
}

// Every string of up to two bytes, and random strings around each length
// bound made of the bytes the grammars care about (their edges, a
// newline before the end, non-ASCII and invalid UTF-8).
func TestNameGrammars(t *testing.T) {
	checkGrammars(t, "")
	for a := range 256 {
		checkGrammars(t, string([]byte{byte(a)}))
		for b := range 256 {
			checkGrammars(t, string([]byte{byte(a), byte(b)}))
		}
	}
	alphabet := []string{"a", "z", "A", "Z", "0", "9", "_", ".", "-", "%", "/", " ", "\n", "\x00", "@", "[", "`", "{", "é", "\xff", "\u212a"}
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 31, 32, 33, 62, 63, 64, 65, 127, 128, 129} {
		for range 2000 {
			var sb strings.Builder
			for range n {
				// Mostly name bytes, so long strings can still match.
				if r.IntN(8) == 0 {
					sb.WriteString(alphabet[r.IntN(len(alphabet))])
				} else {
					sb.WriteString(alphabet[r.IntN(9)])
				}
			}
			checkGrammars(t, sb.String())
			checkGrammars(t, sb.String()+"\n")
		}
	}
}

func FuzzNameGrammars(f *testing.F) {
	f.Add("serverA")
	f.Add("-vlanhwtag")
	f.Add("net.inet.ip.forwarding")
	f.Add("a\n")
	f.Fuzz(func(t *testing.T, s string) { checkGrammars(t, s) })
}

func TestIsSHA256(t *testing.T) {
	ok := strings.Repeat("0123456789abcdef", 4)
	if !isSHA256(ok) {
		t.Fatalf("%s refused", ok)
	}
	for _, bad := range []string{"", ok[:63], ok + "0", strings.ToUpper(ok), ok[:63] + "g", ok[:63] + "\x00", " " + ok[1:]} {
		if isSHA256(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
