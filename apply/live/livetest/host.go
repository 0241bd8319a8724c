// Package livetest models the kernel state that live host steps change
// (interfaces, epair units, bridge members, addresses, mtu, routes per
// FIB, services, jails), for tests of the live plan and of the engine
// that runs it. It fails like FreeBSD on what does not exist.
package livetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/rigger-bsd/rigger/policy/hostdesc"
)

// Host is a small model of the kernel state the steps change, enough to
// tell the old state from the new one: interfaces (by name, with the
// epair unit behind them), members, addresses, mtu, routes, services and
// running jails. It fails like FreeBSD on what does not exist.
type Host struct {
	ifaces   map[string]string // name → unit ("epair3a", "bridge0")
	members  map[string]bool   // "bridge member"
	addrs    map[string]bool   // "if addr"
	mtu      map[string]string
	Routes   map[string]string // "fib dest" → gateway
	services map[string]bool
	jails    map[string]bool
	Next     int // the next epair unit
	mu       sync.Mutex
	Log      []string // every command, in order
	Fail     string   // a command line that fails
}

// New models the state d describes.
func New(d *hostdesc.Host) *Host {
	h := &Host{ifaces: map[string]string{}, members: map[string]bool{}, addrs: map[string]bool{}, mtu: map[string]string{},
		Routes: map[string]string{}, services: map[string]bool{}, jails: map[string]bool{}, Next: 5}
	for _, i := range d.Interfaces {
		h.ifaces[i.Name] = i.CloneName()
		for _, m := range i.Members {
			h.members[i.Name+" "+m] = true
		}
		if i.Jail == "" {
			for _, a := range i.Addrs {
				h.addrs[i.Name+" "+a] = true
			}
		}
		if i.MTU != 0 && i.MTU != 1500 {
			h.mtu[i.Name] = fmt.Sprint(i.MTU)
		}
	}
	for _, r := range d.Routes {
		h.Routes[fmt.Sprint(r.FIB)+" "+r.Dest] = r.Gateway
	}
	for _, s := range d.Services {
		h.services[s.Name] = true
	}
	for _, j := range d.Jails {
		h.jails[j.Name] = true
	}
	return h
}

// Same compares the observable state; epair units may differ.
func (h *Host) Same(o *Host) string {
	names := func(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
	switch {
	case !slices.Equal(names(h.ifaces), names(o.ifaces)):
		return fmt.Sprintf("interfaces %v vs %v", names(h.ifaces), names(o.ifaces))
	case !maps.Equal(h.members, o.members):
		return fmt.Sprintf("members %v vs %v", h.members, o.members)
	case !maps.Equal(h.addrs, o.addrs):
		return fmt.Sprintf("addrs %v vs %v", h.addrs, o.addrs)
	case !maps.Equal(h.mtu, o.mtu):
		return fmt.Sprintf("mtu %v vs %v", h.mtu, o.mtu)
	case !maps.Equal(h.Routes, o.Routes):
		return fmt.Sprintf("routes %v vs %v", h.Routes, o.Routes)
	case !maps.Equal(h.services, o.services):
		return fmt.Sprintf("services %v vs %v", h.services, o.services)
	case !maps.Equal(h.jails, o.jails):
		return fmt.Sprintf("jails %v vs %v", h.jails, o.jails)
	}
	return ""
}

// RunLive applies one command to the model.
func (h *Host) RunLive(_ context.Context, argv ...string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	line := strings.Join(argv, " ")
	h.Log = append(h.Log, line)
	if line == h.Fail {
		return nil, errors.New("exit 1: injected")
	}
	bad := func() ([]byte, error) { return nil, fmt.Errorf("%s: exit 1", line) }
	has := func(n string) bool { _, ok := h.ifaces[n]; return ok }
	switch {
	case line == "ifconfig epair create":
		u := fmt.Sprintf("epair%d", h.Next)
		h.Next++
		h.ifaces[u+"a"], h.ifaces[u+"b"] = u+"a", u+"b"
		return []byte(u + "a\n"), nil
	case argv[0] == "ifconfig" && len(argv) >= 3 && argv[2] == "create":
		if has(argv[4]) {
			return bad()
		}
		h.ifaces[argv[4]] = argv[1]
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 3 && argv[2] == "destroy":
		u, ok := h.ifaces[argv[1]]
		if !ok {
			return bad()
		}
		for n, v := range h.ifaces {
			if v == u || strings.HasPrefix(u, "epair") && strings.TrimRight(v, "ab") == strings.TrimRight(u, "ab") {
				delete(h.ifaces, n)
				for k := range h.members {
					if strings.HasSuffix(k, " "+n) || strings.HasPrefix(k, n+" ") {
						delete(h.members, k)
					}
				}
				for k := range h.addrs {
					if strings.HasPrefix(k, n+" ") {
						delete(h.addrs, k)
					}
				}
				delete(h.mtu, n)
			}
		}
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 4 && argv[2] == "name":
		u, ok := h.ifaces[argv[1]]
		if !ok || has(argv[3]) {
			return bad()
		}
		delete(h.ifaces, argv[1])
		h.ifaces[argv[3]] = u
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 4 && (argv[2] == "addm" || argv[2] == "deletem"):
		k := argv[1] + " " + argv[3]
		if !has(argv[1]) || !has(argv[3]) || h.members[k] == (argv[2] == "addm") {
			return bad()
		}
		h.members[k] = argv[2] == "addm"
		if !h.members[k] {
			delete(h.members, k)
		}
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 5 && (argv[4] == "alias" || argv[4] == "-alias"):
		k := argv[1] + " " + argv[3]
		if !has(argv[1]) || h.addrs[k] == (argv[4] == "alias") {
			return bad()
		}
		h.addrs[k] = true
		if argv[4] == "-alias" {
			delete(h.addrs, k)
		}
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 4 && argv[2] == "mtu":
		h.mtu[argv[1]] = argv[3]
		if argv[3] == "1500" {
			delete(h.mtu, argv[1])
		}
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 3 && argv[2] == "up":
		if !has(argv[1]) {
			return bad()
		}
		return nil, nil
	case argv[0] == "route":
		r, _ := hostdesc.ParseRoute("x", strings.Join(argv[3:], " "))
		k := fmt.Sprint(r.FIB) + " " + r.Dest
		_, exists := h.Routes[k]
		switch argv[2] {
		case "add":
			if exists {
				return bad()
			}
			h.Routes[k] = r.Gateway
		case "change":
			if !exists {
				return bad()
			}
			h.Routes[k] = r.Gateway
		case "delete":
			if !exists {
				return bad()
			}
			delete(h.Routes, k)
		}
		return nil, nil
	case line == "service jail start "+argv[len(argv)-1]:
		h.jails[argv[3]] = true
		return nil, nil
	case line == "service jail stop "+argv[len(argv)-1]:
		delete(h.jails, argv[3])
		return nil, nil
	case argv[0] == "service":
		switch argv[2] {
		case "start":
			h.services[argv[1]] = true
		case "stop":
			delete(h.services, argv[1])
		}
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 2:
		if !has(argv[1]) {
			return bad()
		}
		return nil, nil
	case argv[0] == "sysctl" || argv[0] == "hostname":
		return nil, nil
	}
	return nil, fmt.Errorf("fake host: unknown command %q", line)
}
