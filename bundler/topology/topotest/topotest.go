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
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/rigger-bsd/rigger/bundler/topology"
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
// already on loopback are left alone, and so is IPv6.
//
// Addresses a role shares between hosts (uirig's jail nets, the same on
// both servers) would land on one loopback address for every host, where
// only one process can bind them. So each host using a role gets its own
// copy of the role's addrs in its addrs block (host values win), mapped
// per host and /24: serverA's 10.0.2.20 and serverB's 10.0.2.20 differ.
// Lines are inserted, never rewritten, so text edits of the copy (the
// demo's) keep matching.
//
// The returned map sends each rewritten address (without prefix) to its
// new address; per-host copies are keyed "HOST/ADDR".
//
// The /24s are allocated from 127.B.16.0 on, with B a block no other
// Loopback call on this machine holds (see reserveBlock), so test packages
// that run at once (go test runs packages in parallel) do not fight over
// the same addresses and ports.
func Loopback(src, dst string) (map[string]string, error) {
	b, err := reserveBlock()
	if err != nil {
		return nil, err
	}
	return LoopbackAt(src, dst, b)
}

// reservePort is where a process holds a block: a listener on
// 127.B.0.2:reservePort, kept open until the process exits.
const reservePort = 47017

var (
	reserveMu sync.Mutex
	reserved  []net.Listener // never closed: the block is ours until exit
)

// reserveBlock picks a free second octet B for 127.B.0.0/16. The kernel is
// the lock: a bind on 127.B.0.2 fails while any process on this machine
// (this one included) holds that block.
func reserveBlock() (byte, error) {
	reserveMu.Lock()
	defer reserveMu.Unlock()
	for range 1000 {
		b := byte(1 + rand.IntN(250))
		l, err := net.Listen("tcp4", fmt.Sprintf("127.%d.0.2:%d", b, reservePort))
		if err != nil {
			continue
		}
		reserved = append(reserved, l)
		return b, nil
	}
	return 0, fmt.Errorf("topotest: no free 127.B.0.0/16 block (port %d taken on all of them?)", reservePort)
}

// LoopbackAt is Loopback with the second octet B of every new address
// chosen by the caller (B ≥ 1: 127.0.0.0/16 holds 127.0.0.1 and 127.0.1.1).
func LoopbackAt(src, dst string, b byte) (map[string]string, error) {
	nets := map[[3]byte][2]byte{}
	hostNets := map[string][2]byte{}
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
			orig := data
			data = rewrite(data)
			if rel == topology.TopologyFile {
				if data, err = perHostAddrs(orig, data, func(host, addr string) string {
					a, err := netip.ParseAddr(addr)
					if err != nil || !a.Is4() {
						return addr
					}
					b := a.As4()
					key := host + "/" + addr
					hk := host + "/" + netip.AddrFrom4([4]byte{b[0], b[1], b[2], 0}).String()
					xy, ok := hostNets[hk]
					if !ok {
						xy = [2]byte{byte(next >> 8), byte(next)}
						next++
						hostNets[hk] = xy
					}
					na := netip.AddrFrom4([4]byte{127, xy[0], xy[1], b[3]}).String()
					addrs[key] = na
					return na
				}); err != nil {
					return fmt.Errorf("%s: %w", rel, err)
				}
			}
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

// perHostAddrs adds, to each host with a role, a copy of the role's addrs
// that the host does not set itself, with addresses from mapAddr(host,
// original address). orig is the file before the global rewrite (for the
// original addresses), text after it (same lines); lines are inserted so
// comments and layout, which other tools edit by text, stay as they were.
func perHostAddrs(orig, text []byte, mapAddr func(host, addr string) string) ([]byte, error) {
	f, err := topology.Decode(topology.TopologyFile, orig)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(text, &root); err != nil {
		return nil, err
	}
	if len(root.Content) == 0 {
		return text, nil
	}
	hostsNode := mapGet(root.Content[0], "hosts")
	if hostsNode == nil {
		return text, nil
	}
	type insertion struct {
		after int // 1-based line to insert after
		lines []string
	}
	var ins []insertion
	for i := 0; i+1 < len(hostsNode.Content); i += 2 {
		name, hn := hostsNode.Content[i].Value, hostsNode.Content[i+1]
		spec := f.Hosts[name]
		if spec == nil || spec.Role == "" || f.Roles[spec.Role] == nil || len(f.Roles[spec.Role].Addrs) == 0 {
			continue
		}
		if hn.Kind != yaml.MappingNode || hn.Style&yaml.FlowStyle != 0 || len(hn.Content) == 0 {
			return nil, fmt.Errorf("host %s: want a block mapping to add per-host addresses", name)
		}
		role := f.Roles[spec.Role]
		var keys []string
		for k := range role.Addrs {
			if _, own := spec.Addrs[k]; !own {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		if len(keys) == 0 {
			continue
		}
		entry := func(indent int, k string) string {
			vals := make([]string, len(role.Addrs[k]))
			for j, v := range role.Addrs[k] {
				addr, plen, _ := strings.Cut(v, "/")
				if plen != "" {
					plen = "/" + plen
				}
				vals[j] = strconv.Quote(mapAddr(name, addr) + plen)
			}
			return strings.Repeat(" ", indent) + k + ": [" + strings.Join(vals, ", ") + "] # per-host loopback copy"
		}
		if an := mapGet(hn, "addrs"); an != nil {
			if an.Kind != yaml.MappingNode || an.Style&yaml.FlowStyle != 0 || len(an.Content) == 0 {
				return nil, fmt.Errorf("host %s: want addrs as a block mapping", name)
			}
			indent := an.Content[0].Column - 1
			var lines []string
			for _, k := range keys {
				lines = append(lines, entry(indent, k))
			}
			ins = append(ins, insertion{lastLine(an), lines})
			continue
		}
		indent := hn.Content[0].Column - 1
		lines := []string{strings.Repeat(" ", indent) + "addrs:"}
		for _, k := range keys {
			lines = append(lines, entry(indent+2, k))
		}
		ins = append(ins, insertion{lastLine(hn), lines})
	}
	sort.Slice(ins, func(i, j int) bool { return ins[i].after > ins[j].after })
	lines := strings.SplitAfter(string(text), "\n")
	for _, in := range ins {
		add := make([]string, len(in.lines))
		for i, l := range in.lines {
			add[i] = l + "\n"
		}
		at := min(in.after, len(lines))
		if at > 0 && !strings.HasSuffix(lines[at-1], "\n") {
			lines[at-1] += "\n"
		}
		lines = append(lines[:at], append(add, lines[at:]...)...)
	}
	return []byte(strings.Join(lines, "")), nil
}

func mapGet(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// lastLine is the last line a node's content reaches.
func lastLine(n *yaml.Node) int {
	l := n.Line
	for _, c := range n.Content {
		l = max(l, lastLine(c))
	}
	return l
}
