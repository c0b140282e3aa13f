package jobargs

import (
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// ReferralRecompute recomputes referral rewards (SPEC 6) of one tenant: of one referrer when
// ReferrerID is set, of all its referrers otherwise (one set-based statement). It is unique
// by its args among jobs not yet finished, so a burst of changes to one referrer's
// referrals enqueues one recompute.
type ReferralRecompute struct {
	TenantID   uuid.UUID  `json:"tenant_id"`
	ReferrerID *uuid.UUID `json:"referrer_id,omitempty"`
}

// Kind is the job kind River UI shows.
func (ReferralRecompute) Kind() string { return "referral.recompute" }

// Tenant is the tenant the job belongs to (TenantJob).
func (a ReferralRecompute) Tenant() uuid.UUID { return a.TenantID }

// Hooks tags the job with its tenant as it is inserted (TenantJob).
func (ReferralRecompute) Hooks() []rivertype.Hook { return tenantHooks }

// InsertOpts makes the job unique by args while it is waiting or running. Completed jobs
// do not count: a change after a recompute finished enqueues a new one.
func (ReferralRecompute) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{
		ByArgs: true,
		ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled,
		},
	}}
}

// ReferralRecomputeSweep enqueues a full ReferralRecompute for every tenant. It runs
// periodically, so that rewards follow what time alone changes (cooldowns passing, IP
// hashes leaving the window, licences expiring).
type ReferralRecomputeSweep struct{}

// Kind is the job kind River UI shows.
func (ReferralRecomputeSweep) Kind() string { return "referral.recompute_sweep" }
