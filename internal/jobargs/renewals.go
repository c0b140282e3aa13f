package jobargs

import (
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// SubscriptionRenewSweep renews every due subscription (SPEC 4.1), across tenants, a batch
// per run in the run's transaction. It runs every minute; a sweep that fills its batch
// enqueues the next one.
type SubscriptionRenewSweep struct{}

// Kind is the job kind River UI shows.
func (SubscriptionRenewSweep) Kind() string { return "subscription.renew_sweep" }

// SubscriptionRenew renews one subscription for one cycle: it quotes the price and creates
// the cycle's subscription_renewal PayIn, or records a failure with backoff. The sweep renews
// in batches itself; these jobs are those that sweeps of earlier versions enqueued, still
// queued when a process of this version takes them.
type SubscriptionRenew struct {
	TenantID       uuid.UUID `json:"tenant_id"`
	SubscriptionID uuid.UUID `json:"subscription_id"`
	// CycleNumber is the cycle the renewal opens (1 after the first period).
	CycleNumber int32 `json:"cycle_number"`
}

// Kind is the job kind River UI shows.
func (SubscriptionRenew) Kind() string { return "subscription.renew" }

// Tenant is the tenant the job belongs to (TenantJob).
func (a SubscriptionRenew) Tenant() uuid.UUID { return a.TenantID }

// Hooks tags the job with its tenant as it is inserted (TenantJob).
func (SubscriptionRenew) Hooks() []rivertype.Hook { return tenantHooks }

// InsertOpts makes the job unique by args (one per subscription and cycle) while it is
// waiting or running. A job for a cycle already opened (by the sweep, or a duplicate) finds
// it open and does nothing.
func (SubscriptionRenew) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: uniqueWhileUnfinished()}
}

// SubscriptionLapseSweep lapses past_due subscriptions unpaid beyond their grace days, across
// tenants. It runs every minute; a sweep that fills its batch enqueues the next one.
type SubscriptionLapseSweep struct{}

// Kind is the job kind River UI shows.
func (SubscriptionLapseSweep) Kind() string { return "subscription.lapse_sweep" }
