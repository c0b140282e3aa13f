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
// EventTypes is an error (a programming mistake: no endpoint could subscribe to it). The event
// and the lookup of its endpoints are one statement (EventCreate).
func Emit(ctx context.Context, tx pgx.Tx, st Step, e Event) error {
	event, err := newEvent(e)
	if err != nil {
		return err
	}
	endpoints, err := queries.EventCreate(ctx, tx, sql.EventCreateParams{TenantID: event.TenantID, ID: event.ID, Type: event.Type, Data: event.Data, Now: st.Now})
	if err != nil {
		return fmt.Errorf("record event %s: %w", event.Type, err)
	}
	return deliver(ctx, tx, st, event, endpoints)
}

// outboxEvent is an event as the outbox records it: a new id, its type and its encoded data.
type outboxEvent struct {
	TenantID uuid.UUID
	ID       uuid.UUID
	Type     string
	Data     []byte
}

// newEvent encodes e for the outbox; a type that is not one of EventTypes is an error.
func newEvent(e Event) (outboxEvent, error) {
	eventType := e.Data.EventType()
	if !IsEventType(eventType) {
		return outboxEvent{}, fmt.Errorf("emit event: unknown event type %q: add it to core.EventCatalog", eventType)
	}
	data, err := json.Marshal(e.Data)
	if err != nil {
		return outboxEvent{}, fmt.Errorf("encode event %s: %w", eventType, err)
	}
	return outboxEvent{TenantID: e.TenantID, ID: NewID(), Type: eventType, Data: data}, nil
}

// deliver creates one pending delivery of event, due at st.Now, per endpoint of endpoints
// (those subscribed to it) and enqueues their webhook.deliver jobs, in tx.
func deliver(ctx context.Context, tx pgx.Tx, st Step, event outboxEvent, endpoints []uuid.UUID) error {
	if len(endpoints) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(endpoints))
	for i := range endpoints {
		ids[i] = NewID()
	}
	err := queries.WebhookDeliveryCreateMany(ctx, tx, sql.WebhookDeliveryCreateManyParams{
		TenantID: event.TenantID, EventID: event.ID, IDs: ids, EndpointIDs: endpoints, Now: st.Now,
	})
	if err != nil {
		return fmt.Errorf("create deliveries of %s: %w", event.Type, err)
	}
	if err := WebhookDeliverEnqueue(ctx, tx, st, WebhookDeliverEnqueueParams{TenantID: event.TenantID, EndpointIDs: endpoints}); err != nil {
		return fmt.Errorf("deliver %s: %w", event.Type, err)
	}
	return nil
}
