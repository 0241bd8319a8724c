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
	for name, j := range s.Jails {
		for _, p := range j.Procs {
			if err := terminate(p); err != nil {
				errs = append(errs, fmt.Errorf("jail %s: %w", name, err))
			}
		}
	}
	if s.Host != nil {
		for _, p := range s.Host.Procs {
			if err := terminate(p); err != nil {
				errs = append(errs, fmt.Errorf("host: %w", err))
			}
		}
		s.Host = nil
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
