package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/rigger-bsd/rigger/apply"
)

// journalUnreadable handles an apply journal that cannot be read after a
// crash (truncated, garbage): nobody knows which host files the
// interrupted install changed, so the agent goes degraded, says in status
// what `agent resume` will do, and keeps polling without applying.
func (a *Agent) journalUnreadable(je *apply.JournalError) error {
	serial := "none"
	if err := a.syncCurrent(); err == nil && a.st.Current != nil {
		serial = fmt.Sprint(a.st.Current.Serial)
	}
	reason := fmt.Sprintf("%v; the files of an interrupted install may be on disk. "+
		"`agent resume` will set the journal aside (%s.unreadable-TIME, kept for the record) "+
		"and reinstall the current generation (serial %s) over what is on disk", je, je.Path, serial)
	h := Hold{Since: a.now().UTC(), Reason: holdDegraded + reason}
	a.st.Hold = &h
	a.st.JournalUnreadable = je.Error()
	a.log.Error("DEGRADED: the apply journal is unreadable; applies are held until `agent resume`", "err", je)
	return errors.Join(a.store.SetHold(h), a.writeStatus())
}

// resumeJournal does what the degraded hold promised, once an operator
// lifted it: set the unreadable journal aside and reinstall the current
// generation. It reports whether it acted.
func (a *Agent) resumeJournal(ctx context.Context) (bool, error) {
	if a.st.JournalUnreadable == "" {
		return false, nil
	}
	if h, err := a.store.Hold(); err != nil || h.Active(a.now()) {
		return false, err
	}
	eng, ok := a.engine.(interface{ SetAsideJournal() (string, error) })
	if !ok {
		return false, errors.New("the engine cannot set a journal aside")
	}
	aside, err := eng.SetAsideJournal()
	if err != nil {
		return false, err
	}
	a.log.Warn("resumed: unreadable journal set aside", "file", aside)
	a.st.JournalUnreadable = ""
	if _, err := a.engine.Recover(ctx); err != nil {
		return true, fmt.Errorf("recover: %w", err)
	}
	if cur, err := a.engine.Current(); err == nil && cur != nil {
		res, err := a.engine.Reinstall(context.WithoutCancel(ctx))
		if err != nil {
			return true, fmt.Errorf("reinstall serial %d after setting the journal aside: %w", cur.Serial, err)
		}
		a.st.Health = healthOf(res.Health)
		a.log.Info("reinstalled the current generation", "serial", cur.Serial)
	}
	return true, a.syncCurrent()
}
