package freebsd

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// wgSessionLife is WireGuard's REJECT_AFTER_TIME: a session whose last
// handshake is older has expired (a live one re-handshakes every 2 min).
const wgSessionLife = 180 * time.Second

// WireGuardUp is the wireguard health check: `wg show IF
// latest-handshakes` prints "PUBKEY<TAB>EPOCH" per peer, 0 for never
// (wg(8)); every peer must have a handshake within wgSessionLife. A TCP
// connect or the exit status of wg show prove nothing: it exits 0 for an
// interface whose peers never answered.
func (d *Driver) WireGuardUp(ctx context.Context, iface string) error {
	r, err := d.exec(ctx, "wg", "show", iface, "latest-handshakes")
	if err != nil {
		return err
	}
	return checkHandshakes(iface, string(r.Stdout), time.Now())
}

func checkHandshakes(iface, out string, now time.Time) error {
	var bad []string
	peers := 0
	for _, ln := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(ln)
		if len(f) != 2 {
			continue
		}
		peers++
		sec, err := strconv.ParseInt(f[1], 10, 64)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("peer %s: handshake %q", short(f[0]), f[1]))
		case sec == 0:
			bad = append(bad, fmt.Sprintf("peer %s: no handshake", short(f[0])))
		case now.Sub(time.Unix(sec, 0)) > wgSessionLife:
			bad = append(bad, fmt.Sprintf("peer %s: last handshake %s ago", short(f[0]), now.Sub(time.Unix(sec, 0)).Round(time.Second)))
		}
	}
	if peers == 0 {
		return fmt.Errorf("%s: no peers", iface)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: %s", iface, strings.Join(bad, "; "))
	}
	return nil
}

func short(key string) string {
	if len(key) > 8 {
		return key[:8] + "…"
	}
	return key
}
