package core

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// CustomerEventNew is one event of a customer to record.
type CustomerEventNew struct {
	CustomerID uuid.UUID
	// Type says what happened ("registered").
	Type string
	// IPHash is the hash of the customer's IP address the caller computed; nil when none.
	IPHash *string
	// OccurredAt is when it happened; nil is now.
	OccurredAt *time.Time
}

// occurredAt is when e happened: its OccurredAt, else now.
func (e CustomerEventNew) occurredAt(now time.Time) time.Time {
	if e.OccurredAt != nil {
		return *e.OccurredAt
	}
	return now
}

// CustomerEventCreateParams is one event of a customer of TenantID.
type CustomerEventCreateParams struct {
	TenantID uuid.UUID
	CustomerEventNew
}

// CustomerEventCreate records one event of a customer, audits it (customer_event.create, on
// the customer) and recomputes the reward of every referrer the event may move
// (referralRecomputeMovedByEvents). An unknown customer is ErrNotFound.
func CustomerEventCreate(ctx context.Context, tx pgx.Tx, st Step, p CustomerEventCreateParams) (sql.CustomerEvent, error) {
	event, err := queries.CustomerEventCreate(ctx, tx, sql.CustomerEventCreateParams{
		TenantID: p.TenantID, ID: NewID(), CustomerID: p.CustomerID, Type: p.Type, IPHash: p.IPHash,
		OccurredAt: p.occurredAt(st.Now), Now: st.Now,
	})
	if err != nil {
		return sql.CustomerEvent{}, notFound(err, "customer", p.CustomerID)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "customer_event.create", SubjectType: "customer", SubjectID: p.CustomerID.String(),
		Details: map[string]any{"event_id": event.ID, "type": event.Type},
	})
	if err != nil {
		return sql.CustomerEvent{}, err
	}
	return event, referralRecomputeMovedByEvents(ctx, tx, st, referralRecomputeMovedByEventsParams{TenantID: p.TenantID, EventIDs: []uuid.UUID{event.ID}})
}

// CustomerEventCreateBatchParams is a batch of events of customers of TenantID.
type CustomerEventCreateBatchParams struct {
	TenantID uuid.UUID
	// Events are the events, at least one.
	Events []CustomerEventNew
}

// CustomerEventCreateBatch records a batch of events all or nothing, audits it as one entry
// (customer_event.create_batch, with the count) and recomputes the reward of every referrer
// the events may move (referralRecomputeMovedByEvents). It returns how many it recorded.
// When any event's customer is not the tenant's, nothing is recorded and the error is
// FieldErrors naming each (events[i].customer_id).
func CustomerEventCreateBatch(ctx context.Context, tx pgx.Tx, st Step, p CustomerEventCreateBatchParams) (int64, error) {
	events := p.Events
	customerIDs := make([]uuid.UUID, len(events))
	for i, e := range events {
		customerIDs[i] = e.CustomerID
	}
	existing, err := queries.CustomerListExistingIDs(ctx, tx, sql.CustomerListExistingIDsParams{TenantID: p.TenantID, CustomerIDs: customerIDs})
	if err != nil {
		return 0, fmt.Errorf("look up customers of an event batch: %w", err)
	}
	known := make(map[uuid.UUID]bool, len(existing))
	for _, id := range existing {
		known[id] = true
	}
	params := sql.CustomerEventCreateManyParams{
		TenantID: p.TenantID, Now: st.Now, EventIDs: make([]uuid.UUID, len(events)), CustomerIDs: customerIDs,
		Types: make([]string, len(events)), IPHashes: make([]string, len(events)), OccurredAts: make([]time.Time, len(events)),
	}
	var unknown []FieldError
	for i, e := range events {
		if !known[e.CustomerID] {
			unknown = append(unknown, FieldError{
				Field: fmt.Sprintf("events[%d].customer_id", i), Detail: fmt.Sprintf("customer %s not found", e.CustomerID), Value: e.CustomerID,
			})
		}
		params.EventIDs[i], params.Types[i], params.OccurredAts[i] = NewID(), e.Type, e.occurredAt(st.Now)
		if e.IPHash != nil {
			params.IPHashes[i] = *e.IPHash
		}
	}
	if len(unknown) > 0 {
		return 0, &FieldErrors{Detail: fmt.Sprintf("%d of %d events are invalid; nothing was recorded", len(unknown), len(events)), Fields: unknown}
	}
	created, err := queries.CustomerEventCreateMany(ctx, tx, params)
	if err != nil {
		return 0, fmt.Errorf("record %d customer events: %w", len(events), err)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "customer_event.create_batch", SubjectType: "customer_event_batch", SubjectID: params.EventIDs[0].String(),
		Details: map[string]any{"count": created},
	})
	if err != nil {
		return 0, err
	}
	return created, referralRecomputeMovedByEvents(ctx, tx, st, referralRecomputeMovedByEventsParams{TenantID: p.TenantID, EventIDs: params.EventIDs})
}

// referralRecomputeMovedByEventsParams names events of a tenant just recorded.
type referralRecomputeMovedByEventsParams struct {
	TenantID uuid.UUID
	EventIDs []uuid.UUID
}

// referralRecomputeMovedByEvents recomputes, in tx (ReferralRecompute), the rewards of the referrers whose count
// the just-recorded events may move (ReferralReferrersMovedByEvents decides which): a
// referral's registered IP hash, or an IP hash a referrer used inside the IP window.
func referralRecomputeMovedByEvents(ctx context.Context, tx pgx.Tx, st Step, p referralRecomputeMovedByEventsParams) error {
	referrers, err := queries.ReferralReferrersMovedByEvents(ctx, tx, sql.ReferralReferrersMovedByEventsParams{
		TenantID: p.TenantID, EventIDs: p.EventIDs, Now: st.Now,
	})
	if err != nil {
		return fmt.Errorf("find referrers moved by %d customer events: %w", len(p.EventIDs), err)
	}
	_, err = ReferralRecompute(ctx, tx, st, ReferralRecomputeParams{TenantID: p.TenantID, ReferrerIDs: nonNil(referrers)})
	return err
}
