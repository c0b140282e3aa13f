package jobargs

import (
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// RevocationCheck is one firing of the upstream revocation check loop (SPEC 5): it takes the
// global permit and checks up to the configured number of licences, highest risk first. It
// runs periodically; a firing that finds the permit taken does nothing.
type RevocationCheck struct{}

// Kind is the job kind River UI shows.
func (RevocationCheck) Kind() string { return "revocation.check" }

// RevocationCheckTenant checks the imported licences of one sandbox tenant that are due at
// its clock, highest risk first, without the live loop's global permit. The final run of each
// advance of the tenant's clock enqueues it (Run 0); a run that checks a full batch enqueues
// the next, Run + 1, until none is due at the clock.
type RevocationCheckTenant struct {
	TenantID uuid.UUID `json:"tenant_id"`
	// AdvanceID is the advance of the clock whose end enqueued the checks.
	AdvanceID uuid.UUID `json:"advance_id"`
	// Run numbers the runs of one advance's checks.
	Run int `json:"run"`
}

// Kind is the job kind River UI shows.
func (RevocationCheckTenant) Kind() string { return "revocation.check_tenant" }

// Tenant is the tenant the job belongs to (TenantJob).
func (a RevocationCheckTenant) Tenant() uuid.UUID { return a.TenantID }

// Hooks tags the job with its tenant as it is inserted (TenantJob).
func (RevocationCheckTenant) Hooks() []rivertype.Hook { return tenantHooks }

// InsertOpts makes the job unique by args (one per advance and run) while it is waiting or
// running.
func (RevocationCheckTenant) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: uniqueWhileUnfinished()}
}
