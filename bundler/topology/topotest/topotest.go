// Package topotest holds test helpers around infra repos for other
// packages' tests: Loopback makes a copy of an example repo whose addresses
// are all on 127.0.0.0/8, so the sim driver can run its spiped pipes and
// fake services as real processes on Linux.
package topotest

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// ipv4RE matches dotted quads with an optional prefix length; the
// surrounding checks keep it off version strings like 1.2.3.4.5.
var ipv4RE = regexp.MustCompile(`(^|[^0-9.])((?:[0-9]{1,3}\.){3}[0-9]{1,3})(/[0-9]{1,2})?`)

// Loopback copies the infra repo at src to dst (created if needed) with
// every IPv4 address rewritten onto 127.0.0.0/8. Each /24 a.b.c is mapped to
// a fresh 127.X.Y (first seen, first allocated, walking files in lexical
// order) and the last octet is kept, so subnets, peers and validation still
// hold and two hosts' distinct addresses stay distinct. Networks shorter
// than /24 (10.0.0.0/8 in a bogon list), 0.0.0.0, 255.x and addresses
// already on loopback are left alone, and so is IPv6. The returned map
// sends each rewritten address (without prefix) to its new address.
//
// The /24s are allocated from 127.B.16.0 on, with B drawn at random, so
// test packages that run at once (go test runs packages in parallel) do not
// fight over the same addresses and ports.
func Loopback(src, dst string) (map[string]string, error) {
	return LoopbackAt(src, dst, byte(1+rand.IntN(250)))
}

// LoopbackAt is Loopback with the second octet B of every new address
// chosen by the caller (B ≥ 1: 127.0.0.0/16 holds 127.0.0.1 and 127.0.1.1).
func LoopbackAt(src, dst string, b byte) (map[string]string, error) {
	nets := map[[3]byte][2]byte{}
	addrs := map[string]string{}
	next := int(b)<<8 | 16
	rewrite := func(data []byte) []byte {
		var out []byte
		last := 0
		for _, ix := range ipv4RE.FindAllSubmatchIndex(data, -1) {
			start, end := ix[4], ix[5] // the address
			pend := end
			if ix[6] >= 0 {
				pend = ix[7]
			}
			// Not part of a longer dotted run (1.2.3.4.5).
			if end < len(data) && data[end] == '.' && end+1 < len(data) && data[end+1] >= '0' && data[end+1] <= '9' {
				continue
			}
			addr := string(data[start:end])
			a, err := netip.ParseAddr(addr)
			if err != nil || !a.Is4() {
				continue
			}
			if ix[6] >= 0 {
				if n, _ := strconv.Atoi(string(data[ix[6]+1 : ix[7]])); n < 24 {
					continue
				}
			}
			b := a.As4()
			if b[0] == 0 || b[0] == 127 || b[0] >= 224 {
				continue
			}
			key := [3]byte{b[0], b[1], b[2]}
			xy, ok := nets[key]
			if !ok {
				xy = [2]byte{byte(next >> 8), byte(next)}
				next++
				nets[key] = xy
			}
			na := netip.AddrFrom4([4]byte{127, xy[0], xy[1], b[3]}).String()
			addrs[addr] = na
			out = append(out, data[last:start]...)
			out = append(out, na...)
			out = append(out, data[end:pend]...)
			last = pend
		}
		return append(out, data[last:]...)
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Contains(data, []byte{0}) {
			data = rewrite(data)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		return nil, fmt.Errorf("loopback copy of %s: %w", src, err)
	}
	return addrs, nil
}
