package sim

import (
	"bufio"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/policy/atomicfile"
)

// WireGuard model. No kernel WireGuard is available, so a link is
// emulated: interface I of this host and its peer P are "up" (wg show
// latest-handshakes prints a non-zero time) when some other host of the
// same fleet has an interface whose public key is P's, which lists I's
// public key as a peer with the same preshared key (or none on both
// sides), and at least one side's Endpoint is an address:port where the
// other listens (an address of one of its host interfaces and its
// ListenPort). Hosts of a fleet publish their interfaces in the fleet
// directory (JoinFleet); a host in no fleet has no peers to reach.

// WGState is a WireGuard interface's configuration (wg setconf).
type WGState struct {
	PrivateKey string   `json:"private_key,omitempty"` // base64
	ListenPort int      `json:"listen_port,omitempty"`
	Peers      []WGPeer `json:"peers,omitempty"`
	Conf       string   `json:"conf,omitempty"` // the wg-quick file it came up from
}

// WGPeer is one [Peer].
type WGPeer struct {
	PublicKey    string   `json:"public_key"`
	PresharedKey string   `json:"preshared_key,omitempty"` // base64
	Endpoint     string   `json:"endpoint,omitempty"`
	AllowedIPs   []string `json:"allowed_ips,omitempty"`
	Keepalive    int      `json:"keepalive,omitempty"`
}

const fleetFile = "fleet"

// JoinFleet makes the sandbox at root a member of the fleet whose hosts
// publish their WireGuard interfaces in dir.
func JoinFleet(root, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, StateDir), 0o755); err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, StateDir, fleetFile), []byte(abs), 0o644)
}

func (h *Host) fleetDir() string {
	b, err := os.ReadFile(filepath.Join(h.root, StateDir, fleetFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// wgPublished is what a host publishes about its WireGuard interfaces.
type wgPublished struct {
	Root   string        `json:"root"`
	Addrs  []string      `json:"addrs"`
	Ifaces []wgPublicIfc `json:"ifaces"`
}

type wgPublicIfc struct {
	Name       string   `json:"name"`
	PublicKey  string   `json:"public_key"`
	ListenPort int      `json:"listen_port"`
	Peers      []WGPeer `json:"peers"` // preshared keys hashed
}

func pskHash(b64 string) string {
	if b64 == "" {
		return ""
	}
	s := sha256.Sum256([]byte(b64))
	return hex.EncodeToString(s[:8])
}

// publishWG writes this host's interfaces to the fleet directory.
func (c *cmd) publishWG() {
	dir := c.h.fleetDir()
	if dir == "" {
		return
	}
	p := wgPublished{Root: c.h.root}
	for _, i := range c.ifacesHere() {
		for _, a := range i.Addrs {
			p.Addrs = append(p.Addrs, addrOnly(a))
		}
	}
	var names []string
	for k, i := range c.k.Ifaces {
		if i.WG != nil && i.Vnet == "" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		i := c.k.Ifaces[k]
		pub, err := wgPublic(i.WG.PrivateKey)
		if err != nil {
			continue
		}
		pi := wgPublicIfc{Name: i.Name, PublicKey: pub, ListenPort: i.WG.ListenPort}
		for _, pe := range i.WG.Peers {
			pe.PresharedKey = pskHash(pe.PresharedKey)
			pi.Peers = append(pi.Peers, pe)
		}
		p.Ifaces = append(p.Ifaces, pi)
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	sum := sha256.Sum256([]byte(c.h.root))
	name := filepath.Join(dir, hex.EncodeToString(sum[:8])+".json")
	atomicfile.WriteFile(name, b, 0o644, atomicfile.Volatile)
}

// fleetPeers reads every other host's published interfaces.
func (c *cmd) fleetPeers() []wgPublished {
	dir := c.h.fleetDir()
	if dir == "" {
		return nil
	}
	ents, _ := os.ReadDir(dir)
	var out []wgPublished
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var p wgPublished
		if json.Unmarshal(b, &p) == nil && p.Root != c.h.root {
			out = append(out, p)
		}
	}
	return out
}

// linkUp applies the model to our interface i and its peer pe.
func (c *cmd) linkUp(i *Iface, pe WGPeer, fleet []wgPublished) bool {
	mine, err := wgPublic(i.WG.PrivateKey)
	if err != nil {
		return false
	}
	var ours []string
	for _, x := range c.ifacesHere() {
		for _, a := range x.Addrs {
			ours = append(ours, addrOnly(a))
		}
	}
	listensAt := func(ep string, addrs []string, port int) bool {
		host, ps, err := net.SplitHostPort(ep)
		if err != nil || port == 0 {
			return false
		}
		n, _ := strconv.Atoi(ps)
		return n == port && slices.Contains(addrs, host)
	}
	for _, r := range fleet {
		for _, ri := range r.Ifaces {
			if ri.PublicKey != pe.PublicKey {
				continue
			}
			for _, rp := range ri.Peers {
				if rp.PublicKey != mine || rp.PresharedKey != pskHash(pe.PresharedKey) {
					continue
				}
				if listensAt(pe.Endpoint, r.Addrs, ri.ListenPort) || listensAt(rp.Endpoint, ours, i.WG.ListenPort) {
					return true
				}
			}
		}
	}
	return false
}

// wgPublic derives a base64 public key from a base64 private key.
func wgPublic(priv string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(priv)
	if err != nil || len(b) != 32 {
		return "", errors.New("Key is not the correct length or format")
	}
	k, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()), nil
}

// readKeyFile reads a base64 key from a file (wg's private-key,
// preshared-key arguments).
func (c *cmd) readKeyFile(p string) (string, error) {
	b, err := os.ReadFile(c.jailPath(p))
	if err != nil {
		return "", fmt.Errorf("%s: %s", p, errText(err))
	}
	s := strings.TrimSpace(string(b))
	if d, err := base64.StdEncoding.DecodeString(s); err != nil || len(d) != 32 {
		return "", errors.New("Key is not the correct length or format")
	}
	return s, nil
}

// wgConf is a parsed wg-quick / wg config file.
type wgConf struct {
	iface map[string][]string // [Interface] keys, repeated ones in order
	state WGState
}

func parseWGConf(src string) (*wgConf, error) {
	wc := &wgConf{iface: map[string][]string{}}
	section := ""
	var peer *WGPeer
	sc := bufio.NewScanner(strings.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		ln := sc.Text()
		if i := strings.IndexByte(ln, '#'); i >= 0 {
			ln = ln[:i]
		}
		ln = strings.TrimSpace(ln)
		if ln == "" {
			continue
		}
		if strings.HasPrefix(ln, "[") {
			section = strings.ToLower(strings.Trim(ln, "[]"))
			if section == "peer" {
				wc.state.Peers = append(wc.state.Peers, WGPeer{})
				peer = &wc.state.Peers[len(wc.state.Peers)-1]
			} else if section != "interface" {
				return nil, fmt.Errorf("Line unrecognized: `%s'", ln)
			}
			continue
		}
		k, v, ok := strings.Cut(ln, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("Line unrecognized: `%s'", ln)
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if section == "interface" {
			wc.iface[k] = append(wc.iface[k], v)
			switch k {
			case "privatekey":
				wc.state.PrivateKey = v
			case "listenport":
				wc.state.ListenPort, _ = strconv.Atoi(v)
			}
			continue
		}
		switch k {
		case "publickey":
			peer.PublicKey = v
		case "presharedkey":
			peer.PresharedKey = v
		case "endpoint":
			peer.Endpoint = v
		case "allowedips":
			for _, a := range strings.Split(v, ",") {
				peer.AllowedIPs = append(peer.AllowedIPs, strings.TrimSpace(a))
			}
		case "persistentkeepalive":
			peer.Keepalive, _ = strconv.Atoi(v)
		default:
			return nil, fmt.Errorf("Line unrecognized: `%s'", ln)
		}
	}
	return wc, nil
}

// wgQuickKeys are the [Interface] keys wg(8) does not know.
var wgQuickKeys = map[string]bool{"address": true, "dns": true, "mtu": true, "table": true, "preup": true, "postup": true, "predown": true, "postdown": true, "saveconfig": true}

func (c *cmd) wgConfPath(ifn string) string {
	return "/usr/local/etc/wireguard/" + ifn + ".conf"
}

// wgQuick implements wg-quick up|down|strip IF (FreeBSD flavour).
func (c *cmd) wgQuick(args []string) int {
	if len(args) != 2 {
		c.errf("Usage: wg-quick [ up | down | save | strip ] [ CONFIG_FILE | INTERFACE ]\n")
		return 1
	}
	verb, ifn := args[0], args[1]
	confPath := c.wgConfPath(ifn)
	src, err := os.ReadFile(c.jailPath(confPath))
	if err != nil && verb != "down" {
		c.errf("wg-quick: `%s' does not exist\n", confPath)
		return 1
	}
	wc, perr := parseWGConf(string(src))
	switch verb {
	case "strip":
		if perr != nil {
			c.errf("%v\n", perr)
			return 1
		}
		for _, ln := range strings.Split(string(src), "\n") {
			k, _, _ := strings.Cut(strings.TrimSpace(ln), "=")
			if wgQuickKeys[strings.ToLower(strings.TrimSpace(k))] {
				continue
			}
			c.out("%s\n", ln)
		}
		return 0
	case "up":
		if perr != nil {
			c.errf("%v\n", perr)
			return 1
		}
		if c.iface(ifn) != nil {
			c.errf("wg-quick: `%s' already exists\n", ifn)
			return 1
		}
		c.errf("[#] ifconfig wg create name %s\n", ifn)
		if c.run([]string{"kldload", "-n", "if_wg"}) != 0 {
			return 1
		}
		i, code := c.ifCreate("wg", nil)
		if code != 0 {
			return code
		}
		if i.Name != ifn && c.ifRename(i, ifn) != 0 {
			c.k.destroyIface(i)
			return 1
		}
		st := wc.state
		st.Conf = confPath
		i.WG = &st
		fail := func() int {
			c.k.destroyIface(i)
			c.publishWG()
			return 1
		}
		for _, a := range wc.iface["address"] {
			for _, addr := range strings.Split(a, ",") {
				addr = strings.TrimSpace(addr)
				af := "inet"
				if strings.Contains(addr, ":") {
					af = "inet6"
				}
				c.errf("[#] ifconfig %s %s %s alias\n", ifn, af, addr)
				if c.ifSet(i, []string{af, addr, "alias"}) != 0 {
					return fail()
				}
			}
		}
		if m := wc.iface["mtu"]; len(m) > 0 {
			if c.ifSet(i, []string{"mtu", m[0]}) != 0 {
				return fail()
			}
		}
		i.Up = true
		if t := wc.iface["table"]; len(t) == 0 || t[0] != "off" {
			for _, pe := range st.Peers {
				for _, a := range pe.AllowedIPs {
					c.routeQuiet("add", a, ifn)
				}
			}
		}
		for _, line := range wc.iface["postup"] {
			line = strings.ReplaceAll(line, "%i", ifn)
			c.errf("[#] %s\n", line)
			if c.runLine(line) != 0 {
				return fail()
			}
		}
		c.publishWG()
		return 0
	case "down":
		i := c.iface(ifn)
		if i == nil || i.Kind != "wg" {
			c.errf("wg-quick: `%s' is not a WireGuard interface\n", ifn)
			return 1
		}
		if wc != nil {
			for _, line := range wc.iface["postdown"] {
				c.runLine(strings.ReplaceAll(line, "%i", ifn))
			}
		}
		c.errf("[#] ifconfig %s destroy\n", ifn)
		c.k.destroyIface(i)
		c.publishWG()
		return 0
	}
	c.errf("Usage: wg-quick [ up | down | save | strip ] [ CONFIG_FILE | INTERFACE ]\n")
	return 1
}

// routeQuiet adds a route to an interface; errors are wg-quick's to show.
func (c *cmd) routeQuiet(verb, dest, ifn string) {
	fam := "-inet"
	if strings.Contains(dest, ":") {
		fam = "-inet6"
	}
	sub := &cmd{h: c.h, k: c.k, ctx: c.ctx, jail: c.jail, inRoot: true}
	sub.run([]string{"route", "-q", "-n", verb, fam, dest, "-interface", ifn})
}

// wgReload is rc.d/wireguard's reload: strip and syncconf.
func (c *cmd) wgReload(ifn string) int {
	src, err := os.ReadFile(c.jailPath(c.wgConfPath(ifn)))
	if err != nil {
		c.errf("wg-quick: `%s' does not exist\n", c.wgConfPath(ifn))
		return 1
	}
	wc, err := parseWGConf(string(src))
	if err != nil {
		c.errf("%v\n", err)
		return 1
	}
	i := c.iface(ifn)
	if i == nil || i.WG == nil {
		c.errf("Unable to access interface: No such file or directory\n")
		return 1
	}
	c.syncWG(i, wc.state)
	return 0
}

// syncWG replaces the wg configuration, keeping a private key set by
// `wg set` when the file has none (wg syncconf leaves unspecified keys).
func (c *cmd) syncWG(i *Iface, st WGState) {
	if st.PrivateKey == "" {
		st.PrivateKey = i.WG.PrivateKey
	}
	st.Conf = i.WG.Conf
	// Preshared keys from `wg set ... preshared-key FILE` survive as well.
	for n, pe := range st.Peers {
		if pe.PresharedKey != "" {
			continue
		}
		for _, old := range i.WG.Peers {
			if old.PublicKey == pe.PublicKey {
				st.Peers[n].PresharedKey = old.PresharedKey
			}
		}
	}
	i.WG = &st
	c.publishWG()
}

// wgStart is rc.d/wireguard's start: wg-quick up for each interface.
func (c *cmd) wireguardStart(x *rcCtx) int {
	code := 0
	for _, ifn := range strings.Fields(mustGet(x.vars, "wireguard_interfaces")) {
		if c.run([]string{"wg-quick", "up", ifn}) != 0 {
			code = 1
		}
	}
	return code
}

// wg implements wg(8): show [IF [latest-handshakes|peers|public-key]],
// showconf, setconf/syncconf IF FILE, set IF ....
func (c *cmd) wg(args []string) int {
	if len(args) == 0 {
		args = []string{"show"}
	}
	get := func(ifn string) *Iface {
		i := c.iface(ifn)
		if i == nil || i.WG == nil {
			c.errf("Unable to access interface: No such file or directory\n")
			return nil
		}
		return i
	}
	switch args[0] {
	case "show":
		var ifs []*Iface
		if len(args) >= 2 && args[1] != "all" && args[1] != "interfaces" {
			i := get(args[1])
			if i == nil {
				return 1
			}
			ifs = []*Iface{i}
		} else {
			for _, i := range c.ifacesHere() {
				if i.WG != nil {
					ifs = append(ifs, i)
				}
			}
		}
		what := ""
		if len(args) >= 3 {
			what = args[2]
		}
		if len(args) >= 2 && args[1] == "interfaces" {
			var names []string
			for _, i := range ifs {
				names = append(names, i.Name)
			}
			c.out("%s\n", strings.Join(names, " "))
			return 0
		}
		fleet := c.fleetPeers()
		for _, i := range ifs {
			switch what {
			case "latest-handshakes":
				for _, pe := range i.WG.Peers {
					t := int64(0)
					if c.linkUp(i, pe, fleet) {
						t = time.Now().Unix()
					}
					c.out("%s\t%d\n", pe.PublicKey, t)
				}
			case "public-key":
				pub, _ := wgPublic(i.WG.PrivateKey)
				c.out("%s\n", pub)
			case "peers":
				for _, pe := range i.WG.Peers {
					c.out("%s\n", pe.PublicKey)
				}
			case "listen-port":
				c.out("%d\n", i.WG.ListenPort)
			case "":
				pub, _ := wgPublic(i.WG.PrivateKey)
				c.out("interface: %s\n  public key: %s\n  private key: (hidden)\n", i.Name, pub)
				if i.WG.ListenPort != 0 {
					c.out("  listening port: %d\n", i.WG.ListenPort)
				}
				for _, pe := range i.WG.Peers {
					c.out("\npeer: %s\n", pe.PublicKey)
					if pe.Endpoint != "" {
						c.out("  endpoint: %s\n", pe.Endpoint)
					}
					c.out("  allowed ips: %s\n", strings.Join(pe.AllowedIPs, ", "))
					if c.linkUp(i, pe, fleet) {
						c.out("  latest handshake: 1 second ago\n")
					}
				}
			default:
				c.errf("Invalid parameter: `%s'\n", what)
				return 1
			}
		}
		return 0
	case "setconf", "syncconf", "addconf":
		if len(args) != 3 {
			c.errf("Usage: wg %s <interface> <configuration filename>\n", args[0])
			return 1
		}
		i := get(args[1])
		if i == nil {
			return 1
		}
		src, err := os.ReadFile(c.argPath(args[2]))
		if err != nil {
			c.errf("fopen: %s\n", errText(err))
			return 1
		}
		wc, err := parseWGConf(string(src))
		if err != nil {
			c.errf("%v\n", err)
			return 1
		}
		for k := range wc.iface {
			if wgQuickKeys[k] {
				c.errf("Line unrecognized: `%s'\nConfiguration parsing error\n", k)
				return 1
			}
		}
		c.syncWG(i, wc.state)
		return 0
	case "set":
		if len(args) < 2 {
			c.errf("Usage: wg set <interface> ...\n")
			return 1
		}
		i := get(args[1])
		if i == nil {
			return 1
		}
		st := *i.WG
		st.Peers = slices.Clone(st.Peers)
		var peer *WGPeer
		rest := args[2:]
		for n := 0; n < len(rest); n++ {
			k := rest[n]
			val := ""
			if k != "remove" {
				if n+1 >= len(rest) {
					c.errf("Invalid argument: %s\n", k)
					return 1
				}
				n++
				val = rest[n]
			}
			switch {
			case k == "private-key" && peer == nil:
				s, err := c.readKeyFile(val)
				if err != nil {
					c.errf("%v\n", err)
					return 1
				}
				st.PrivateKey = s
			case k == "listen-port" && peer == nil:
				st.ListenPort, _ = strconv.Atoi(val)
			case k == "peer":
				idx := slices.IndexFunc(st.Peers, func(p WGPeer) bool { return p.PublicKey == val })
				if idx < 0 {
					st.Peers = append(st.Peers, WGPeer{PublicKey: val})
					idx = len(st.Peers) - 1
				}
				peer = &st.Peers[idx]
			case k == "remove" && peer != nil:
				pk := peer.PublicKey
				st.Peers = slices.DeleteFunc(st.Peers, func(p WGPeer) bool { return p.PublicKey == pk })
				peer = nil
			case k == "preshared-key" && peer != nil:
				s, err := c.readKeyFile(val)
				if err != nil {
					c.errf("%v\n", err)
					return 1
				}
				peer.PresharedKey = s
			case k == "endpoint" && peer != nil:
				peer.Endpoint = val
			case k == "allowed-ips" && peer != nil:
				peer.AllowedIPs = strings.Split(val, ",")
			case k == "persistent-keepalive" && peer != nil:
				peer.Keepalive, _ = strconv.Atoi(val)
			default:
				c.errf("Invalid argument: %s\n", k)
				return 1
			}
		}
		i.WG = &st
		c.publishWG()
		return 0
	}
	c.errf("Invalid subcommand: `%s'\n", args[0])
	return 1
}
