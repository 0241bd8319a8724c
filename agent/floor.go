package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// The serial floor: no bundle at or below it is installed (SECURITY.md
// "Rollback", 3.2). last_serial is its durable record, but not the only
// one: the engine's current generation, the kept generations, status.json
// and a rollback pin all say which serials were accepted. A crash between
// the engine's commit and the write of last_serial, or a lost file, must
// never lower the floor, so it is the maximum of all of them, taken at
// start and written back to last_serial.

// NoFloorError: the state dir holds agent state, but every record of the
// serial floor is gone. Accepting any signed serial then would re-open
// replays, so the agent refuses to start until an operator re-initialises.
type NoFloorError struct {
	Dir   string
	Found []string // what the state dir still holds
}

func (e *NoFloorError) Error() string {
	return fmt.Sprintf("state dir %s holds agent state (%s) but no record of the serial floor "+
		"(last_serial, current, generations/ and status.json are all missing); refusing to accept any serial. "+
		"To re-initialise: write the highest serial this host ever applied to %s/last_serial, "+
		"or remove the whole state dir to start afresh (the next signed serial is then accepted)",
		e.Dir, strings.Join(e.Found, ", "), e.Dir)
}

// freshEntries may exist in a state dir that never accepted a bundle:
// what Open creates before the first poll, and what operator commands
// (hold, a rollback request) write before the agent ever ran.
var freshEntries = map[string]bool{fileLock: true, dirGit: true, "generations": true, "staging": true,
	fileHold: true, fileRequest: true, fileResponse: true}

// initFloor raises last_serial to the highest serial any record holds,
// statusSerial being status.json's current serial (0: none) and
// statusFound whether a readable status.json exists at all.
func (a *Agent) initFloor(statusSerial uint64, statusFound bool) error {
	last, ok, err := a.store.LastSerial()
	if err != nil {
		return err
	}
	floor, records := last, ok || statusFound
	var from []string
	raise := func(n uint64, what string) {
		records = true
		if n > floor {
			floor = n
			from = append(from, fmt.Sprintf("%s %d", what, n))
		}
	}
	if statusSerial > 0 {
		raise(statusSerial, "status.json")
	}
	gen, err := a.engine.Current()
	if err != nil {
		return fmt.Errorf("serial floor: %w", err)
	}
	if gen != nil {
		raise(gen.Serial, "current generation")
	}
	gens, err := a.engine.Generations()
	if err != nil {
		return fmt.Errorf("serial floor: %w", err)
	}
	for _, g := range gens {
		raise(g.Serial, "kept generation")
	}
	pin, err := a.store.Pin()
	if err != nil {
		return err
	}
	if pin != nil {
		raise(pin.Above, "rollback pin")
	}
	if !records {
		found, err := a.store.stateEntries()
		if err != nil {
			return err
		}
		if len(found) > 0 {
			return &NoFloorError{Dir: a.store.Dir, Found: found}
		}
		return nil // a new state dir (written to by the first poll or accept)
	}
	if floor > last || !ok {
		a.log.Warn("serial floor raised from the other state records", "last_serial", last, "floor", floor, "from", strings.Join(from, ", "))
		return a.store.SetLastSerial(floor)
	}
	return nil
}

// stateEntries lists what the state dir holds beyond what a new agent
// creates (an empty generations/ included).
func (s Store) stateEntries() ([]string, error) {
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue // temp files of an interrupted write
		}
		if freshEntries[name] {
			if name != "generations" {
				continue
			}
			sub, err := os.ReadDir(s.path(name))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("state dir: %w", err)
			}
			if len(sub) == 0 {
				continue
			}
		}
		out = append(out, name)
	}
	return out, nil
}

// raiseFloor records serial as accepted if it is above last_serial.
func (a *Agent) raiseFloor(serial uint64) error {
	n, _, err := a.store.LastSerial()
	if err != nil || n >= serial {
		return err
	}
	return a.store.SetLastSerial(serial)
}
