package apply

import (
	"context"

	"github.com/rigger-bsd/rigger/verify"
)

// SetHook installs the test seam: h runs at every step of a transaction
// (see the hook* constants); a non-nil error fails that step.
func SetHook(e *Engine, h func(step string, i int) error) { e.hook = h }

// Hook step names, for tests.
const (
	HookStaged      = hookStaged
	HookPrechecked  = hookPrechecked
	HookGenStored   = hookGenStored
	HookBackup      = hookBackup
	HookJournaled   = hookJournaled
	HookInstall     = hookInstall
	HookInstallTemp = hookInstallTemp
	HookInstalled   = hookInstalled
	HookActivate    = hookActivate
	HookHealth      = hookHealth
	HookCommitting  = hookCommitting
	HookCommitted   = hookCommitted
	HookRestore     = hookRestore
	HookReactivate  = hookReactivate
)

var OrderUnits = orderUnits

// CheckOne runs one health check with the engine's deadline.
func CheckOne(e *Engine, c verify.Check) HealthResult {
	res, _ := e.checkHealth(context.Background(), []verify.Check{c})
	return res[0]
}

// HookLive is the hook before live step i.
const HookLive = hookLive
