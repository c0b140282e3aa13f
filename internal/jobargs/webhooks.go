package jobargs

import (
	"github.com/google/uuid"
	"github.com/riverqueue/river"
)

// QueueWebhooks is the queue of webhook deliveries, apart from other work so that slow
// endpoints never hold it up.
const QueueWebhooks = "webhooks"

// WebhookDeliverMaxAttempts is how many times a delivery is tried (about three days of
// backoff, see jobs.WebhookDeliverWorker.NextRetry) before it is dead.
const WebhookDeliverMaxAttempts = 13

// WebhookDeliver delivers one event to one endpoint.
type WebhookDeliver struct {
	TenantID   uuid.UUID `json:"tenant_id"`
	DeliveryID uuid.UUID `json:"delivery_id"`
}

// Kind is the job kind River UI shows.
func (WebhookDeliver) Kind() string { return "webhook.deliver" }

// InsertOpts puts deliveries on their own queue with their attempt budget.
func (WebhookDeliver) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueWebhooks, MaxAttempts: WebhookDeliverMaxAttempts}
}

// EventRetentionSweep deletes events older than the retention with their finished
// deliveries, across tenants. It runs every hour; a sweep that fills its batch enqueues the
// next one.
type EventRetentionSweep struct{}

// Kind is the job kind River UI shows.
func (EventRetentionSweep) Kind() string { return "event.retention_sweep" }
