package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// CustomerEvent is something a customer did, e.g. registered or logged in.
type CustomerEvent struct {
	ID         uuid.UUID `json:"id"`
	CustomerID uuid.UUID `json:"customer_id"`
	Type       string    `json:"type" example:"registered"`
	IPHash     *string   `json:"ip_hash" example:"9f86d081884c7d65" doc:"The hash of the customer's IP address the caller computed; null when none."`
	OccurredAt time.Time `json:"occurred_at"`
	CreatedAt  time.Time `json:"created_at"`
}

func customerEventFrom(e sql.CustomerEvent) CustomerEvent {
	return CustomerEvent{ID: e.ID, CustomerID: e.CustomerID, Type: e.Type, IPHash: e.IpHash, OccurredAt: e.OccurredAt, CreatedAt: e.CreatedAt}
}

// CustomerEventFields are what a new event says.
type CustomerEventFields struct {
	Type       string     `json:"type" pattern:"^[a-z][a-z0-9_.]{0,63}$" example:"registered" doc:"Lowercase letters, digits, '_' and '.', starting with a letter; at most 64. What happened; registered events carry the IP hash referral checks use."`
	IPHash     *string    `json:"ip_hash,omitempty" minLength:"1" maxLength:"128" example:"9f86d081884c7d65" doc:"A hash of the customer's IP address, computed by the caller: Tessera never sees raw IPs."`
	OccurredAt *time.Time `json:"occurred_at,omitempty" example:"2026-01-15T12:00:00Z" doc:"Default now."`
}

// CustomerEventCreateInput is a new event of one customer.
type CustomerEventCreateInput struct {
	ID   uuid.UUID `path:"id"`
	Body CustomerEventFields
}

// CustomerEventBatchItem is one event of a batch.
type CustomerEventBatchItem struct {
	CustomerID uuid.UUID `json:"customer_id"`
	CustomerEventFields
}

// CustomerEventCreateBatchInput is up to 1000 events of any of the tenant's customers.
type CustomerEventCreateBatchInput struct {
	Body struct {
		Events []CustomerEventBatchItem `json:"events" minItems:"1" maxItems:"1000" nullable:"false"`
	}
}

// CustomerEventCreateBatchOutput says how many events were recorded.
type CustomerEventCreateBatchOutput struct {
	Body struct {
		Created int64 `json:"created" example:"1000"`
	}
}

// CustomerEventListInput pages through a customer's events.
type CustomerEventListInput struct {
	ID uuid.UUID `path:"id"`
	PageParams
	Type string `query:"type" pattern:"^[a-z][a-z0-9_.]{0,63}$" example:"login" doc:"Only events of this type."`
}

// CustomerEventOutput is one event.
type CustomerEventOutput struct {
	Body CustomerEvent
}

// CustomerEventListOutput is a page of events.
type CustomerEventListOutput struct {
	Body Page[CustomerEvent]
}

func (s *Server) registerCustomerEvents() {
	tags := []string{"Customer events"}

	huma.Register(s.api, adminOperation(huma.Operation{
		OperationID:   "customer-event-create",
		Method:        http.MethodPost,
		Path:          "/v1/admin/customers/{id}/events",
		Summary:       "Record an event of a customer",
		Description:   "Records one event of the customer, at occurred_at (default: now). 404 when the tenant has no such customer.",
		Tags:          tags,
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusNotFound},
	}), func(ctx context.Context, in *CustomerEventCreateInput) (*CustomerEventOutput, error) {
		now := s.cfg.Clock.Now()
		occurredAt := now
		if in.Body.OccurredAt != nil {
			occurredAt = *in.Body.OccurredAt
		}
		event, err := s.queries.CustomerEventCreate(ctx, s.conn(ctx), sql.CustomerEventCreateParams{
			TenantID: tenantID(ctx), ID: core.NewID(), CustomerID: in.ID, Type: in.Body.Type, IpHash: in.Body.IPHash,
			OccurredAt: occurredAt, Now: now,
		})
		if err != nil {
			return nil, problem(ctx, notFound(core.DBError(err), "customer", in.ID))
		}
		err = s.audit(ctx, now, "customer_event.create", "customer", in.ID, map[string]any{"event_id": event.ID, "type": event.Type})
		if err != nil {
			return nil, problem(ctx, err)
		}
		if err := s.referralRecomputeAfterEvents(ctx, now, []uuid.UUID{event.ID}); err != nil {
			return nil, problem(ctx, err)
		}
		return &CustomerEventOutput{Body: customerEventFrom(event)}, nil
	})

	huma.Register(s.api, adminOperation(huma.Operation{
		OperationID:   "customer-event-create-batch",
		Method:        http.MethodPost,
		Path:          "/v1/admin/customer-events/batch",
		Summary:       "Record up to 1000 events of any customers at once",
		Description:   "All or nothing: when any event is invalid (a malformed field, a customer that is not the tenant's), the answer is 422 with one error per bad event, located as body.events[index].field, and nothing is recorded.",
		Tags:          tags,
		DefaultStatus: http.StatusCreated,
	}), func(ctx context.Context, in *CustomerEventCreateBatchInput) (*CustomerEventCreateBatchOutput, error) {
		events := in.Body.Events
		customerIDs := make([]uuid.UUID, len(events))
		for i, e := range events {
			customerIDs[i] = e.CustomerID
		}
		existing, err := s.queries.CustomerListExistingIDs(ctx, s.conn(ctx), sql.CustomerListExistingIDsParams{TenantID: tenantID(ctx), Ids: customerIDs})
		if err != nil {
			return nil, problem(ctx, fmt.Errorf("look up customers of an event batch: %w", err))
		}
		known := make(map[uuid.UUID]bool, len(existing))
		for _, id := range existing {
			known[id] = true
		}
		now := s.cfg.Clock.Now()
		params := sql.CustomerEventCreateManyParams{
			TenantID: tenantID(ctx), Now: now, Ids: make([]uuid.UUID, len(events)), CustomerIds: customerIDs,
			Types: make([]string, len(events)), IpHashes: make([]string, len(events)), OccurredAts: make([]time.Time, len(events)),
		}
		var errs []error
		for i, e := range events {
			if !known[e.CustomerID] {
				errs = append(errs, &huma.ErrorDetail{
					Location: fmt.Sprintf("body.events[%d].customer_id", i),
					Message:  fmt.Sprintf("customer %s not found", e.CustomerID), Value: e.CustomerID,
				})
			}
			params.Ids[i], params.Types[i], params.OccurredAts[i] = core.NewID(), e.Type, now
			if e.IPHash != nil {
				params.IpHashes[i] = *e.IPHash
			}
			if e.OccurredAt != nil {
				params.OccurredAts[i] = *e.OccurredAt
			}
		}
		if len(errs) > 0 {
			return nil, newProblem(CodeInvalid,
				fmt.Sprintf("%d of %d events are invalid; nothing was recorded", len(errs), len(events)), errs...)
		}
		created, err := s.queries.CustomerEventCreateMany(ctx, s.conn(ctx), params)
		if err != nil {
			return nil, problem(ctx, fmt.Errorf("record %d customer events: %w", len(events), core.DBError(err)))
		}
		err = s.audit(ctx, now, "customer_event.create_batch", "customer_event_batch", params.Ids[0], map[string]any{"count": created})
		if err != nil {
			return nil, problem(ctx, err)
		}
		if err := s.referralRecomputeAfterEvents(ctx, now, params.Ids); err != nil {
			return nil, problem(ctx, err)
		}
		out := &CustomerEventCreateBatchOutput{}
		out.Body.Created = created
		return out, nil
	})

	huma.Register(s.api, adminOperation(huma.Operation{
		OperationID: "customer-event-list",
		Method:      http.MethodGet,
		Path:        "/v1/admin/customers/{id}/events",
		Summary:     "List a customer's events, most recent first",
		Tags:        tags,
		Errors:      []int{http.StatusNotFound},
	}), func(ctx context.Context, in *CustomerEventListInput) (*CustomerEventListOutput, error) {
		if _, err := s.customerGet(ctx, in.ID); err != nil {
			return nil, problem(ctx, err)
		}
		after, fetch := in.cursor()
		params := sql.CustomerEventListParams{TenantID: tenantID(ctx), CustomerID: in.ID, After: after, RowLimit: fetch}
		if in.Type != "" {
			params.Type = &in.Type
		}
		rows, err := s.queries.CustomerEventList(ctx, s.conn(ctx), params)
		if err != nil {
			return nil, problem(ctx, fmt.Errorf("list events of customer %s: %w", in.ID, err))
		}
		return &CustomerEventListOutput{Body: page(rows, fetch, customerEventFrom, func(e sql.CustomerEvent) uuid.UUID { return e.ID })}, nil
	})
}

// referralRecomputeAfterEvents enqueues, in the request's transaction, a recompute of each
// referrer whose count the just-recorded events eventIDs may move
// (ReferralReferrersMovedByEvents decides which): a referral's registered IP hash, or an IP
// hash a referrer used inside the IP window.
func (s *Server) referralRecomputeAfterEvents(ctx context.Context, now time.Time, eventIDs []uuid.UUID) error {
	referrers, err := s.queries.ReferralReferrersMovedByEvents(ctx, s.conn(ctx), sql.ReferralReferrersMovedByEventsParams{
		TenantID: tenantID(ctx), EventIds: eventIDs, Now: now,
	})
	if err != nil {
		return fmt.Errorf("find referrers moved by %d customer events: %w", len(eventIDs), err)
	}
	for _, referrer := range referrers {
		if err := core.ReferralRecomputeEnqueue(ctx, tx(ctx), s.cfg.Jobs, tenantID(ctx), &referrer); err != nil {
			return err
		}
	}
	return nil
}
