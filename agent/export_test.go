package agent

import "github.com/rigger-bsd/rigger/agent/gittest"

func gittestSetBranch(repo, commit string) error { return gittest.SetBranch(repo, "bundles", commit) }

func (s Store) LastSerialOrZero() uint64 {
	n, _, _ := s.LastSerial()
	return n
}
