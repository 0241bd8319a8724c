// Package freebsd holds the agent's FreeBSD packaging: the rc.d script
// rigger_agent (daemon(8) supervision, pidfile, rigger_agent_enable,
// rigger_agent_config, rigger_agent_args), agent.yaml.sample and a
// ports-style Makefile sketch. Its tests check the script's syntax with a
// POSIX shell (dash) and load the sample config with the agent's loader.
package freebsd
