package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// Addr is the address of the git source's server, for the live plan's
// management guard (apply.Config.ManagementSource): the steps that touch
// the interface or route carrying traffic to it are confirmed by the
// source answering, or undone. A local path has no address.
func (s *Source) Addr(ctx context.Context) (netip.Addr, error) {
	host, err := sourceHost(s.cfg.URL)
	if err != nil {
		return netip.Addr{}, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("source %s: %w", s.url(), err)
	}
	if len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("source %s: %s has no address", s.url(), host)
	}
	return addrs[0].Unmap(), nil
}

// sourceHost is the server of a git URL: scheme URLs (https, ssh, git)
// and scp-like user@host:path; a local path is an error.
func sourceHost(raw string) (string, error) {
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return "", fmt.Errorf("source url: %w", err)
		}
		if u.Scheme == "file" || u.Hostname() == "" {
			return "", errors.New("source is a local path: no server address")
		}
		return u.Hostname(), nil
	}
	if at := strings.Index(raw, "@"); at >= 0 {
		rest := raw[at+1:]
		if c := strings.Index(rest, ":"); c > 0 && !strings.HasPrefix(raw, "/") {
			return strings.Trim(rest[:c], "[]"), nil
		}
	}
	return "", errors.New("source is a local path: no server address")
}
