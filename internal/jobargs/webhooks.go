package jobargs

import (
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// QueueWebhooks is the queue of webhook deliveries, apart from other work so that slow
// endpoints never hold it up.
const QueueWebhooks = "webhooks"

// WebhookDeliverMaxAttempts is how many times River runs one webhook.deliver job before
// discarding it. A run fails only when the database does (an endpoint's failures are
// recorded on its deliveries, not by failing the job); a discarded job's deliveries stay
// pending and the webhook.deliver_sweep enqueues a new job for them.
const WebhookDeliverMaxAttempts = 5

// WebhookDeliver sends one endpoint's due deliveries, oldest first, a bounded batch per run.
// There is at most one live job per endpoint (unique by its arguments among the states
// that are not finished), so the webhooks queue holds at most one job per endpoint however
// many deliveries wait, and an endpoint is sent at most one request at a time.
type WebhookDeliver struct {
	TenantID   uuid.UUID `json:"tenant_id"`
	EndpointID uuid.UUID `json:"endpoint_id"`
}

// Kind is the job kind River UI shows.
func (WebhookDeliver) Kind() string { return "webhook.deliver" }

// Tenant is the tenant the job belongs to (TenantJob).
func (a WebhookDeliver) Tenant() uuid.UUID { return a.TenantID }

// Hooks tags the job with its tenant as it is inserted (TenantJob).
func (WebhookDeliver) Hooks() []rivertype.Hook { return tenantHooks }

// InsertOpts puts the job on the webhooks queue, unique per endpoint among live jobs: a
// completed, cancelled or discarded job does not stop a new one.
func (WebhookDeliver) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueWebhooks,
		MaxAttempts: WebhookDeliverMaxAttempts,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled,
		}},
	}
}

// WebhookDeliverSweep enqueues, across tenants, the webhook.deliver job of every endpoint
// with work due and no live job.
type WebhookDeliverSweep struct{}

// Kind is the job kind River UI shows.
func (WebhookDeliverSweep) Kind() string { return "webhook.deliver_sweep" }

// EventRetentionSweep deletes events older than the retention with their finished
// deliveries, across tenants. It runs every hour; a sweep that fills its batch enqueues the
// next one.
type EventRetentionSweep struct{}

// Kind is the job kind River UI shows.
func (EventRetentionSweep) Kind() string { return "event.retention_sweep" }
