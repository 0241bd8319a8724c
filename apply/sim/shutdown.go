package sim

import (
	"errors"
	"fmt"
)

// Shutdown stops every process the sim started under root (all jails and
// host services) and forgets those jails, as if the host powered off.
// Tests and the demo call it when they are done; Close does not.
func Shutdown(root string) error {
	unlock, err := lockState(root)
	if err != nil {
		return err
	}
	defer unlock()
	s, err := ReadState(root)
	if err != nil {
		return err
	}
	var errs []error
	var procs []Proc
	for _, j := range s.Jails {
		procs = append(procs, j.Procs...)
	}
	if s.Host != nil {
		procs = append(procs, s.Host.Procs...)
		s.Host = nil
	}
	if err := terminateAll(append(procs, strays(root, "", "")...)); err != nil {
		errs = append(errs, fmt.Errorf("sim shutdown: %w", err))
	}
	s.Jails = map[string]*JailState{}
	if err := writeState(root, s); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// TB is the part of testing.TB that ShutdownOnCleanup uses (so this
// package does not import testing).
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
}

// ShutdownOnCleanup stops the sim's processes under root when the test
// ends, and fails the test if some would not stop.
func ShutdownOnCleanup(t TB, root string) {
	t.Helper()
	t.Cleanup(func() {
		if err := Shutdown(root); err != nil {
			t.Errorf("sim shutdown %s: %v", root, err)
		}
	})
}
