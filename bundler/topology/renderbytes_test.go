package topology

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// ifconfigLinesByJoin is how ifconfigLines wrote its lines before it
// wrote them in place: the reference its output must equal.
func ifconfigLinesByJoin(name string, pre, post, addrs []string) string {
	var v4, v6 []string
	for _, a := range addrs {
		switch {
		case a == "DHCP" || a == "SYNCDHCP":
			v4 = append(v4, a)
		case strings.Contains(a, ":"):
			v6 = append(v6, "inet6 "+a)
		default:
			v4 = append(v4, "inet "+a)
		}
	}
	words := append([]string{}, pre...)
	if len(v4) > 0 {
		words = append(words, v4[0])
	}
	words = append(words, post...)
	if len(words) == 0 {
		words = []string{"up"}
	}
	var b strings.Builder
	line := func(k, v string) { b.WriteString(k + "=" + rcQuote(v) + "\n") }
	line("ifconfig_"+name, strings.Join(words, " "))
	if len(v6) > 0 {
		line("ifconfig_"+name+"_ipv6", v6[0])
	}
	n := 0
	for _, a := range append(v4[min(1, len(v4)):], v6[min(1, len(v6)):]...) {
		line("ifconfig_"+name+"_alias"+strconv.Itoa(n), a)
		n++
	}
	return b.String()
}

// TestIfconfigLinesAsJoined: written in place, the ifconfig lines and
// their quoting are the bytes they were (addresses of both families,
// DHCP among them, words needing escapes, bytes that are not UTF-8).
func TestIfconfigLinesAsJoined(t *testing.T) {
	addrSets := [][]string{
		nil,
		{"10.0.0.1/24"},
		{"DHCP"},
		{"fd00::1/64"},
		{"fd00::1/64", "10.0.0.1/24", "SYNCDHCP", "fd00::2/64", "10.0.0.2/24", "fe80::1%em0/64"},
		{"DHCP", "10.0.0.1/24", "fd00::1/64"},
		{"10.0.0.1/24\"$(reboot)`x`\\", "bad\xffutf8"},
	}
	wordSets := [][]string{nil, {"mtu", "9000"}, {"description", "a \"quoted\" $HOME `x` \\ word", "\xfe\xff"}}
	for _, addrs := range addrSets {
		for _, pre := range wordSets {
			for _, post := range wordSets {
				var b bytes.Buffer
				ifconfigLines(&b, "em0", pre, post, addrs)
				if want := ifconfigLinesByJoin("em0", pre, post, addrs); b.String() != want {
					t.Fatalf("pre %q post %q addrs %q:\n%s\nwant:\n%s", pre, post, addrs, b.String(), want)
				}
			}
		}
	}
	for _, s := range []string{"", "plain", `"\$` + "`", "ünï", "a\xffb", "\xc3", "$$\"\""} {
		var b bytes.Buffer
		writeRCQuoted(&b, s)
		if b.String() != rcQuote(s) {
			t.Fatalf("writeRCQuoted(%q) = %q, rcQuote: %q", s, b.String(), rcQuote(s))
		}
	}
}

// TestSortBy: sortBy sorts as a stable sort does, whatever the order in.
func TestSortBy(t *testing.T) {
	type item struct{ key, tag string }
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 40 {
		for range 20 {
			xs := make([]item, n)
			for i := range xs {
				xs[i] = item{key: string(rune('a' + rng.IntN(6))), tag: strconv.Itoa(i)}
			}
			want := slices.Clone(xs)
			slices.SortStableFunc(want, func(a, b item) int { return strings.Compare(a.key, b.key) })
			sortBy(xs, func(x *item) string { return x.key })
			if !slices.Equal(xs, want) {
				t.Fatalf("n %d: %v, want %v", n, xs, want)
			}
		}
	}
}
