// Package freebsd holds the agent's FreeBSD packaging: the rc.d script
// rigger_agent (daemon(8) supervision with a supervisor pidfile and a
// child pidfile, procname = daemon so rc.subr's status/stop/restart find
// the supervisor, reload by SIGHUP to the agent itself;
// rigger_agent_enable, rigger_agent_config, rigger_agent_args),
// agent.yaml.sample and a ports-style Makefile sketch. Its tests check the
// script's syntax with a POSIX shell (dash), run it against a stand-in for
// rc.subr with a fake ps table to show which pid each command reaches,
// check the port's Go version against the ports tree and load the sample
// config with the agent's loader.
package freebsd
