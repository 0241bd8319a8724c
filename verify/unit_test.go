package verify

import (
	"bytes"
	"errors"
	"testing"
)

// TestUnitGrammar (issue 14, item 5): unit strings are a closed grammar.
// Shell metacharacters and a leading "-" (an option to service(8) or
// jail(8)) are refused in a signed manifest, not left for a driver.
func TestUnitGrammar(t *testing.T) {
	bad := []string{
		"jail:-a", "jail:pg_j;touch x;#", "service:$(id)", "jail:{a,b}", "jail:a b",
		"jail:..", "jail:.", "pf-table:a/b", "jail-service:pg_j:-f", "service:x`y`",
		"jail:" + string(bytes.Repeat([]byte("a"), 65)), "jail:a\nb", "netif:em0#", "JAIL:x",
	}
	for _, s := range bad {
		if u, err := ParseUnit(s); err == nil {
			t.Errorf("ParseUnit(%q) = %+v, want an error", s, u)
		}
	}
	good := []string{"none", "pf", "jail:pg_j", "jail-service:nginx_j:nginx", "service:sshd", "pf-table:blocked.v4", "netif:em0", "wireguard:wg0", "jail:a-b"}
	for _, s := range good {
		u, err := ParseUnit(s)
		if err != nil || u.String() != s {
			t.Errorf("ParseUnit(%q) = %v, %v", s, u, err)
		}
	}
	// A Unit built by hand is held to the same grammar.
	for _, u := range []Unit{{Kind: UnitJail, Jail: "-r"}, {Kind: UnitService, Name: "x;y"}, {Kind: "shell", Name: "x"}, {Kind: UnitPF, Name: "x"}} {
		if err := u.Check(); err == nil {
			t.Errorf("%+v passes Check", u)
		}
	}

	ec, _ := testKeys(t)
	for _, unit := range []string{"jail:-a", "jail:pg_j;touch x;#"} {
		f := newFixture(t)
		f.m.Files[2].Unit = unit
		_, err := Verify(f.sign(t, ec[0]), bytes.NewReader(f.archive), f.opts(ec[0]))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("signed bundle with unit %q: %v, want ErrMalformed", unit, err)
		}
	}
	f := newFixture(t)
	f.m.Health[0].Jail = "-a"
	if _, err := Verify(f.sign(t, ec[0]), bytes.NewReader(f.archive), f.opts(ec[0])); !errors.Is(err, ErrMalformed) {
		t.Errorf("health check of jail -a: %v, want ErrMalformed", err)
	}
}

// ParseUnit counts arguments as strings.Split did: empty ones too, and
// every one past the two a unit can take.
func TestParseUnitArgumentCount(t *testing.T) {
	for s, ok := range map[string]bool{
		"pf": true, "pf:": false, ":": false, "": false, "jail:": false, "jail:a": true, "jail:a:": false,
		"jail-service:a:b": true, "jail-service:a:b:": false, "jail-service:a::b": false, "jail-service:a": false,
		"service:a:b:c:d": false,
	} {
		if _, err := ParseUnit(s); (err == nil) != ok {
			t.Errorf("ParseUnit(%q): %v, want ok %v", s, err, ok)
		}
	}
}
