package core

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tessera/tessera/sql"
)

// JobInserter enqueues River jobs in a transaction: a *river.Client[pgx.Tx], insert-only or
// working.
type JobInserter interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// The event types Tessera emits, as domain.action. Webhook endpoints subscribe to them by
// name; EventCatalog lists them all with their payload types, and Emit refuses any other type.
const (
	EventLicenseIssued              = "license.issued"
	EventLicenseSuspended           = "license.suspended"
	EventLicenseReinstated          = "license.reinstated"
	EventLicenseRevoked             = "license.revoked"
	EventLicenseExpired             = "license.expired"
	EventLicenseTierChanged         = "license.tier_changed"
	EventLicenseUpstreamRevoked     = "license.upstream_revoked"
	EventSubscriptionCreated        = "subscription.created"
	EventSubscriptionCancelled      = "subscription.cancelled"
	EventSubscriptionRenewalPending = "subscription.renewal_pending"
	EventSubscriptionRenewed        = "subscription.renewed"
	EventSubscriptionLapsed         = "subscription.lapsed"
	EventMachineActivated           = "machine.activated"
	EventMachineDeactivated         = "machine.deactivated"
	EventReferralRewardChanged      = "referral.reward_changed"
	EventPayInPaid                  = "payin.paid"
	EventPayInFailed                = "payin.failed"
	// EventPayInLatePaymentCredited: money reached the invoice of a PayIn that could no
	// longer use it (failed, cancelled, expired, or paid already) and was credited to the
	// payer as credits.
	EventPayInLatePaymentCredited = "payin.late_payment_credited"
)

// EventTypes returns every event type Tessera emits, in EventCatalog's order: the one list
// that webhook endpoints may subscribe to and that Emit accepts.
func EventTypes() []string {
	catalog := EventCatalog()
	types := make([]string, len(catalog))
	for i, k := range catalog {
		types[i] = k.Type
	}
	return types
}

// IsEventType reports whether t is one of EventTypes.
func IsEventType(t string) bool {
	return slices.Contains(EventTypes(), t)
}

// Event is one event of a tenant: Data says what happened, and its type.
type Event struct {
	TenantID uuid.UUID
	Data     EventData
}

// Emit records e in the outbox at st.Now, creates one pending delivery, due then, per
// enabled endpoint of the tenant subscribed to its type, and enqueues those
// endpoints' webhook.deliver jobs (unique per endpoint), all in tx: the event exists and will
// be delivered if and only if the change that caused it commits. A type that is not one of
// EventTypes is an error (a programming mistake: no endpoint could subscribe to it).
func Emit(ctx context.Context, tx pgx.Tx, st Step, e Event) error {
	tenantID, now, eventType := e.TenantID, st.Now, e.Data.EventType()
	if !IsEventType(eventType) {
		return fmt.Errorf("emit event: unknown event type %q: add it to core.EventCatalog", eventType)
	}
	data, err := json.Marshal(e.Data)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", eventType, err)
	}
	eventID := NewID()
	if err := queries.EventCreate(ctx, tx, sql.EventCreateParams{TenantID: tenantID, ID: eventID, Type: eventType, Data: data, Now: now}); err != nil {
		return fmt.Errorf("record event %s: %w", eventType, err)
	}
	endpoints, err := queries.WebhookEndpointListSubscribed(ctx, tx, sql.WebhookEndpointListSubscribedParams{TenantID: tenantID, Type: eventType})
	if err != nil || len(endpoints) == 0 {
		return err
	}
	ids := make([]uuid.UUID, len(endpoints))
	for i := range endpoints {
		ids[i] = NewID()
	}
	err = queries.WebhookDeliveryCreateMany(ctx, tx, sql.WebhookDeliveryCreateManyParams{
		TenantID: tenantID, EventID: eventID, IDs: ids, EndpointIDs: endpoints, Now: now,
	})
	if err != nil {
		return fmt.Errorf("create deliveries of %s: %w", eventType, err)
	}
	if err := WebhookDeliverEnqueue(ctx, tx, st, WebhookDeliverEnqueueParams{TenantID: tenantID, EndpointIDs: endpoints}); err != nil {
		return fmt.Errorf("deliver %s: %w", eventType, err)
	}
	return nil
}
