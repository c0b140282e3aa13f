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
	return CustomerEvent{ID: e.ID, CustomerID: e.CustomerID, Type: e.Type, IPHash: e.IPHash, OccurredAt: e.OccurredAt, CreatedAt: e.CreatedAt}
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
	huma.Register(s.api, adminOperation(customerEventCreateOperation), s.customerEventCreate)
	huma.Register(s.api, adminOperation(customerEventCreateBatchOperation), s.customerEventCreateBatch)
	huma.Register(s.api, adminOperation(customerEventListOperation), s.customerEventList)
}

var customerEventTags = []string{"Customer events"}

var customerEventCreateOperation = huma.Operation{
	OperationID:   "customer-event-create",
	Method:        http.MethodPost,
	Path:          "/v1/admin/customers/{id}/events",
	Summary:       "Record an event of a customer",
	Description:   "Records one event of the customer, at occurred_at (default: now). 404 when the tenant has no such customer.",
	Tags:          customerEventTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusNotFound},
}

// customerEventCreate records one event of a customer.
func (s *Server) customerEventCreate(ctx context.Context, in *CustomerEventCreateInput) (*CustomerEventOutput, error) {
	event, err := core.CustomerEventCreate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.CustomerEventCreateParams{
		TenantID: tenantID(ctx), CustomerEventNew: customerEventNew(in.ID, in.Body),
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &CustomerEventOutput{Body: customerEventFrom(event)}, nil
}

var customerEventCreateBatchOperation = huma.Operation{
	OperationID:   "customer-event-create-batch",
	Method:        http.MethodPost,
	Path:          "/v1/admin/customer-events/batch",
	Summary:       "Record up to 1000 events of any customers at once",
	Description:   "All or nothing: when any event is invalid (a malformed field, a customer that is not the tenant's), the answer is 422 with one error per bad event, located as body.events[index].field, and nothing is recorded.",
	Tags:          customerEventTags,
	DefaultStatus: http.StatusCreated,
}

// customerEventCreateBatch records a batch of events, all or nothing.
func (s *Server) customerEventCreateBatch(ctx context.Context, in *CustomerEventCreateBatchInput) (*CustomerEventCreateBatchOutput, error) {
	events := make([]core.CustomerEventNew, len(in.Body.Events))
	for i, e := range in.Body.Events {
		events[i] = customerEventNew(e.CustomerID, e.CustomerEventFields)
	}
	created, err := core.CustomerEventCreateBatch(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.CustomerEventCreateBatchParams{
		TenantID: tenantID(ctx), Events: events,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &CustomerEventCreateBatchOutput{}
	out.Body.Created = created
	return out, nil
}

var customerEventListOperation = huma.Operation{
	OperationID: "customer-event-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/customers/{id}/events",
	Summary:     "List a customer's events, most recent first",
	Tags:        customerEventTags,
	Errors:      []int{http.StatusNotFound},
}

// customerEventList reads a page of a customer's events, optionally of one type.
func (s *Server) customerEventList(ctx context.Context, in *CustomerEventListInput) (*CustomerEventListOutput, error) {
	if _, err := s.customer(ctx, in.ID); err != nil {
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
}

// customerEventNew is the event of customerID that f describes.
func customerEventNew(customerID uuid.UUID, f CustomerEventFields) core.CustomerEventNew {
	return core.CustomerEventNew{CustomerID: customerID, Type: f.Type, IPHash: f.IPHash, OccurredAt: f.OccurredAt}
}
