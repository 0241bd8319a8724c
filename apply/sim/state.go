package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"
)

// State is what tests compare of a sim host before and after a change:
// the emulated kernel (interfaces, jails with their JIDs, routes,
// sysctls, running services) and the files under the agent's default
// roots. What the kernel picks by itself is left out: an epair's clone
// unit, process ids, WireGuard handshakes.
type State struct {
	Ifaces  map[string]Iface
	Jails   map[string]string // name -> "jid N vnet V dying D services S"
	Routes  map[int][]Route
	Sysctls map[string]string
	Host    string // the host's own running services
	Booted  time.Time
	Files   map[string]string // path -> sha256 prefix
}

// ReadState reads the state of the sim host at root.
func ReadState(root string) (*State, error) {
	k, err := ReadKernel(root)
	if err != nil {
		return nil, err
	}
	s := &State{Ifaces: map[string]Iface{}, Jails: map[string]string{}, Routes: map[int][]Route{},
		Sysctls: k.Sysctls, Booted: k.Booted, Files: map[string]string{}}
	for key, i := range k.Ifaces {
		c := *i
		c.Unit, c.WG = "", nil
		s.Ifaces[key] = c
	}
	for n, j := range k.Jails {
		s.Jails[n] = fmt.Sprintf("jid %d vnet %v dying %v services %s", j.JID, j.Vnet, j.Dying, serviceNames(j))
	}
	s.Host = serviceNames(k.Host)
	for fib, rs := range k.Routes {
		if len(rs) > 0 {
			s.Routes[fib] = rs
		}
	}
	for _, pat := range []string{"etc", "usr/local/etc", "jails/*/etc", "jails/*/usr/local/etc"} {
		dirs, _ := filepath.Glob(filepath.Join(root, pat))
		for _, d := range dirs {
			err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
				if err != nil || !e.Type().IsRegular() {
					return err
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(b)
				rel, _ := filepath.Rel(root, p)
				s.Files["/"+filepath.ToSlash(rel)] = hex.EncodeToString(sum[:8])
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

func serviceNames(j *Jail) string {
	if j == nil {
		return ""
	}
	names := make([]string, 0, len(j.Services))
	for n := range j.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// Diff lists every difference of s from want, one line each.
func (s *State) Diff(want *State) []string {
	var out []string
	for k, w := range want.Ifaces {
		if g, ok := s.Ifaces[k]; !ok {
			out = append(out, fmt.Sprintf("interface %s gone (was %+v)", k, w))
		} else if !reflect.DeepEqual(w, g) {
			out = append(out, fmt.Sprintf("interface %s: %+v, want %+v", k, g, w))
		}
	}
	for k, g := range s.Ifaces {
		if _, ok := want.Ifaces[k]; !ok {
			out = append(out, fmt.Sprintf("interface %s left over: %+v", k, g))
		}
	}
	if !reflect.DeepEqual(want.Jails, s.Jails) {
		out = append(out, fmt.Sprintf("jails %v, want %v", s.Jails, want.Jails))
	}
	if !reflect.DeepEqual(want.Routes, s.Routes) {
		out = append(out, fmt.Sprintf("routes %v, want %v", s.Routes, want.Routes))
	}
	if !reflect.DeepEqual(want.Sysctls, s.Sysctls) {
		out = append(out, fmt.Sprintf("sysctls %v, want %v", s.Sysctls, want.Sysctls))
	}
	if want.Host != s.Host {
		out = append(out, fmt.Sprintf("host services %q, want %q", s.Host, want.Host))
	}
	if !want.Booted.Equal(s.Booted) {
		out = append(out, fmt.Sprintf("booted %v, want %v (the host rebooted)", s.Booted, want.Booted))
	}
	for p, w := range want.Files {
		if g, ok := s.Files[p]; !ok {
			out = append(out, "file "+p+" gone")
		} else if g != w {
			out = append(out, "file "+p+" changed")
		}
	}
	for p := range s.Files {
		if _, ok := want.Files[p]; !ok {
			out = append(out, "file "+p+" left over")
		}
	}
	sort.Strings(out)
	return out
}
