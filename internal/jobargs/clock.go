package jobargs

import (
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// ClockAdvance runs an advance of a sandbox tenant's clock on, a batch per run, each run
// enqueueing the next until the advance has succeeded (POST /v1/admin/clock/advance hands
// it the advances too long to finish in the request).
type ClockAdvance struct {
	TenantID  uuid.UUID `json:"tenant_id"`
	AdvanceID uuid.UUID `json:"advance_id"`
	// Run numbers the runs of one advance: each enqueues the next, Run + 1, while it runs.
	Run int `json:"run"`
}

// Kind is the job kind River UI shows.
func (ClockAdvance) Kind() string { return "clock.advance" }

// Tenant is the tenant the job belongs to (TenantJob).
func (a ClockAdvance) Tenant() uuid.UUID { return a.TenantID }

// Hooks tags the job with its tenant as it is inserted (TenantJob).
func (ClockAdvance) Hooks() []rivertype.Hook { return tenantHooks }

// InsertOpts makes the job unique by args (one per advance and run) while it is waiting or
// running.
func (ClockAdvance) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: uniqueWhileUnfinished()}
}
