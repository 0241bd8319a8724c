// Package topology owns the infra repo format: it loads topology.yaml
// strictly, validates the fleet as a whole, and renders each host's files
// (rc.conf, jail.conf, the jails' rc.conf, pf.conf and table files,
// sysctl.conf, WireGuard configs, templates and verbatim files), each with
// its target path, mode, owner and activation unit. Rendering is a pure
// function of the repo content: no clock, no environment, sorted maps.
//
// # Repo layout
//
//	topology.yaml      hosts, roles, jails, links, tunnels, pf, files, checks
//	templates/...      Go text/template files (any path; referenced by name)
//	files/...          verbatim files (any path; referenced by name)
//
// # topology.yaml
//
// Top level: domain (jail hostnames default to NAME.DOMAIN), release (the
// fleet's FreeBSD release, 14 or 15, default 15; a role or host may set its
// own: pf.conf, jail.conf and WireGuard configs are checked as that
// release's tools would), vars (template values), roles and hosts. Unknown
// keys, wrong types and duplicate keys are errors naming topology.yaml:LINE.
// (policy.roots is gone: see agent_roots.)
//
// A role holds what several hosts share; a host names it with role: and
// adds its own facts beside it. Merge rules, host over role:
//
//   - scalars (hostname, gateway, a pf template, ...) the host sets replace
//     the role's;
//   - lists (bridges, epairs, laggs, vlans, files, checks, agent_roots,
//     serves) are concatenated, names staying unique;
//   - maps (addrs, vars, rc, sysctl, loader, routes, pf tables) are merged
//     key by key, the host winning; NICs are merged field by field;
//   - services are appended, skipping names already there; "-NAME" drops
//     an inherited NAME (services: [-sshd, node]);
//   - a host jail named like a role jail extends it in place (boot order
//     kept): scalars replaced, interfaces and exec hooks appended, services
//     as above, rc, params and netif merged, a pipe with the same name
//     replaces the role's, other pipes are appended; other host jails
//     follow the role's;
//   - a host WireGuard interface named like a role interface extends it
//     the same way: scalars (listen_port, keys, endpoint, mtu, table, fib)
//     replaced, fib_routes, post_up and post_down appended; a peer naming
//     the same host and interface as a role peer (or the same public key)
//     overrides its fields, routes appended and allowed_ips replaced when
//     given; other peers are appended;
//   - a pf table with add: [...] is the role's table of that name plus
//     these entries (entries: or source: replace it).
//
// Host-only keys: role, peer (the host "peer/IF" refers to), wave (rollout
// delay, e.g. 10m: the host's bundle is not applied before created+wave)
// and netif_restart (interfaces the agent may restart one by one).
//
// Keys of a host or role:
//
//	hostname, domain, gateway (defaultrouter: address or interface ref),
//	gateway_enable, services ([sshd, pflog] → NAME_enable="YES"),
//	serves (service names, e.g. [www.example.com], the host answers behind
//	with others: hosts sharing one must be in different waves), rc (more
//	rc.conf variables, always quoted as data), routes (static_routes),
//	sysctl, loader (/boot/loader.conf.d/rigger.conf; needs agent_roots),
//	vars, agent_roots (target roots this host's agent is configured to
//	accept beyond /etc, /usr/local/etc, /jails/*/etc, /jails/*/usr/local/etc:
//	the topology states the agent's configuration, it never widens it;
//	render, check and build enforce it per host, HostRender.Paths),
//	addrs:  the one place for addresses: interface → "A/N" or a list, or DHCP
//	nics:   NAME: {driver: igb0, vlanhwtag: true, mtu: 9000, options: [...]}
//	laggs:  - {name: lagg0, proto: failover|lacp|loadbalance|roundrobin, ports: [em0, em1]}
//	vlans:  - {name: vlan0, tag: 22, parent: lagg0}
//	bridges: - {name: xbridge, members: [ngx_a, ...]}   (order: bridge0, bridge1, ...)
//	epairs: - [ngx_a, ngx_b]                           (order: epair0, epair1, ...)
//	jail_defaults: jail parameters every jail starts from
//	jails:  - name, hostname, path (default /jails/NAME; $name expands),
//	          devfs_ruleset, mount_devfs, exec_clean, exec_start, exec_stop,
//	          exec_prestart/created/poststart/prestop/poststop (lists),
//	          sysvshm/sysvsem/sysvmsg (new|inherit|disable), params (any
//	          other jail.conf parameter; "true" renders a bare flag),
//	          interfaces (vnet.interface, in order), vnet (default: when it
//	          has interfaces; vnet: true alone is a vnet jail with only lo0),
//	          gateway, services, rc, pipes (spiped, below),
//	          netif: {IF: {fib, mtu, routes: ["NET" | "NET GATEWAY"]}} for
//	          the jail's interfaces and the host's ends of its epairs: fib
//	          and mtu become exec.prestart ifconfig commands, routes through
//	          a host end exec.poststart/poststop route add/delete (in that
//	          FIB), routes through a jail interface its rc.conf static
//	          routes. List order is the boot order.
//	wireguard: - {name: wg0, listen_port, public_key, private_key (path on the
//	          host; default /usr/local/etc/wireguard/NAME.key), endpoint
//	          (address or interface ref peers dial), mtu, table: off, fib,
//	          fib_routes, post_up, post_down, peers: [{host, interface,
//	          allowed_ips | routes, preshared_key (path), keepalive,
//	          public_key (optional; must match the peer interface's)}]}
//	pf:     {template: templates/pf.conf.tmpl, tables: {NAME: {entries: [...] | source: FILE | add: [...], path}}}
//	files:  - {target: /abs/path, template: T | source: F, mode: "0644", owner, group, unit}
//	checks: - {name, kind: tcp|http|exec, addr (endpoint), url, status, command, jail, timeout}
//	          (an http check with addr may give url as a path: http://ADDR/path)
//
// Interface refs name an interface and resolve to its address: "ipg_b" (this
// host), "peer/ipg_b" (the host's peer), "serverB/ipg_b" (any host), or a
// literal address. Endpoints add a port: "peer/ipg_b:5433", "10.0.0.1:53".
// pf table entries are addresses, networks, refs or "net:REF" (the
// interface's network), optionally negated with "!". So a fact is typed
// once: serverA's pipe target "peer/ipg_b:5434" is serverB's ipg_b address.
//
// A pipe is {name, mode: encrypt|decrypt, source, target, key (path in the
// jail, default /etc/spiped.key), probe: pg-ssl|send-expect|banner|none,
// send, expect, clients: one|many|external}. It renders the spiped port's variables in the jail's
// rc.conf (spiped_pipes, spiped_pipe_NAME_mode/source/target/key). An
// encrypt pipe must name a probe; it becomes a tunnel health check named
// "<pipe>-to-<host>". Its target must be a decrypt pipe's source. A
// decrypt pipe must have a client: encrypt pipes of one host target it
// (clients: one, the default), of several hosts (clients: many), or its
// clients are outside the topology (clients: external).
//
// # Rendered files and units
//
//	/etc/rc.conf                 reboot-required: interface creation and
//	                             renames cannot be applied live without
//	                             cutting vnet jails off (netif restart
//	                             destroys cloned interfaces); enable lines
//	                             only matter at boot, the units below
//	                             activate the services themselves
//	/etc/jail.conf               none: .include lines in boot order
//	/etc/jail.conf.d/J.conf      jail:J (self-contained: service jail
//	                             restart J reads this file alone)
//	/jails/J/etc/rc.conf         jail:J
//	/etc/pf.conf                 pf (mode 0600)
//	/etc/pf/T.table              pf-table:T
//	/etc/sysctl.conf             sysctl
//	/boot/loader.conf.d/rigger.conf  reboot-required
//	/usr/local/etc/wireguard/W.conf  wireguard:W (mode 0600; keys loaded
//	                             by PostUp = wg set %i private-key PATH)
//	files:                       their own unit (default none)
//
// # Templates
//
// Templates see a [View], the derived model, so pf rules are written from
// facts stated once: .Host, .Hostname, .Domain, .Peer, .Vars, .Jails (Name,
// Hostname, Path, Addr, Addrs, Interfaces), .Tables, .TunnelPorts, .Pipes
// (Name, Jail, Mode, SourceAddr/Port/If, HostIf, TargetAddr/Port, Peer,
// Remote, Clients, ClientAddrs), .WireGuard (Name, Addrs, ListenPort,
// Peers: Host, Interface, Endpoint, EndpointAddr/Port, AllowedIPs), and
// the methods .Addr REF, .CIDR REF, .Net REF, .Jail NAME, .Table NAME, .Var
// NAME, .WG NAME, .RoleAddrs ROLE IF (that interface's address on every
// host of the role), plus the functions join, fields, lower, upper, quote,
// ports, sorted. HostRender.TunnelPorts (spiped ports crossing hosts, WireGuard
// listen ports and the peers' ports dialled) and FleetTunnelPorts feed the
// pf lint: a tunnel port not passed, or a port passed that only other
// hosts' tunnels use, is a warning.
// Template errors name the template file and line.
//
// # Validation
//
// Load reports every problem at once (a [Problems] error): interfaces
// claimed twice (jails, bridges, laggs), epair ends never used, vnet
// interfaces the host never creates, duplicate addresses on a host, pipes
// with no decrypt listener on the target host, unknown hosts, jails,
// bridges, tables or interfaces, bad units, template errors, target paths
// outside the policy roots, targets rendered twice.
//
// Then the fleet as a whole, each problem naming the hosts involved:
//
//   - an address on a shared network (NICs, laggs, vlans, WireGuard, bridges
//     with one of those as a member and the epairs plugged into them) is
//     held by one host only; host-only bridges and jail-to-jail epairs may
//     repeat the same addresses on every host;
//   - every decrypt pipe has a client, and the clients of one listener are
//     on one host unless it says clients: many;
//   - a WireGuard peering is declared on both sides, public keys are
//     WireGuard keys, unique, and match where a peer names one; at least
//     one side of each pair has an endpoint and a listen_port; the peers of
//     one interface have disjoint AllowedIPs;
//   - hosts serving one name (serves) are in different waves;
//   - a warning (the repo still loads; Repo.Warnings) for a gateway or a
//     static route's gateway that is neither an address nor in a network of
//     any host in the topology.
//
// # Secrets
//
// Keys never sit in the repo: HostRender.Secrets lists the host paths the
// render relies on (spiped keys under each jail's path, WireGuard private
// and preshared keys).
package topology
