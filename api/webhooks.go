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

// EventType is the type of an event Tessera emits. Its schema enumerates core.EventTypes,
// so the OpenAPI document lists what endpoints can subscribe to and unknown types are 422.
type EventType string

// Schema publishes EventType as a string enum of core.EventTypes.
func (EventType) Schema(huma.Registry) *huma.Schema {
	types := core.EventTypes()
	enum := make([]any, len(types))
	for i, t := range types {
		enum[i] = t
	}
	return &huma.Schema{
		Type:        huma.TypeString,
		Description: "An event type Tessera emits, as domain.action.",
		Enum:        enum,
		Examples:    []any{core.EventLicenseIssued},
	}
}

func eventTypesFrom(types []string) []EventType {
	out := make([]EventType, len(types))
	for i, t := range types {
		out[i] = EventType(t)
	}
	return out
}

func eventTypeStrings(types []EventType) []string {
	if types == nil {
		return nil
	}
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = string(t)
	}
	return out
}

// WebhookEndpoint is where a tenant receives events. Its secret is never shown after it is
// created or rotated.
type WebhookEndpoint struct {
	ID         uuid.UUID   `json:"id"`
	URL        string      `json:"url" example:"https://example.com/webhooks/tessera"`
	EventTypes []EventType `json:"event_types" nullable:"false" doc:"The event types delivered to the endpoint, sorted."`
	Enabled    bool        `json:"enabled" doc:"Whether events are delivered to it."`
	CreatedAt  time.Time   `json:"created_at"`
	UpdatedAt  time.Time   `json:"updated_at"`
}

func webhookEndpointFrom(e sql.WebhookEndpoint) WebhookEndpoint {
	return WebhookEndpoint{
		ID: e.ID, URL: e.URL, EventTypes: eventTypesFrom(e.EventTypes), Enabled: e.Enabled,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
	}
}

// WebhookEndpointWithSecret is an endpoint with its signing secret, shown this once.
type WebhookEndpointWithSecret struct {
	WebhookEndpoint
	Secret string `json:"secret" example:"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD" doc:"The signing secret (whsec_ and base64 of the HMAC key). It cannot be shown again; rotate it to get a new one."`
}

// WebhookEndpointCreateInput is a new endpoint.
type WebhookEndpointCreateInput struct {
	Body struct {
		URL        string      `json:"url" format:"uri" pattern:"^https?://" maxLength:"2000" example:"https://example.com/webhooks/tessera" doc:"Where events are POSTed."`
		EventTypes []EventType `json:"event_types" nullable:"false" minItems:"1" example:"[\"license.issued\",\"license.revoked\"]" doc:"The event types to deliver; at least one."`
	}
}

// WebhookEndpointUpdateInput changes what is given of an endpoint.
type WebhookEndpointUpdateInput struct {
	ID   uuid.UUID `path:"id"`
	Body struct {
		URL        *string     `json:"url,omitempty" format:"uri" pattern:"^https?://" maxLength:"2000" example:"https://example.com/webhooks/tessera"`
		EventTypes []EventType `json:"event_types,omitempty" nullable:"false" minItems:"1" example:"[\"license.issued\"]" doc:"Replaces the subscribed event types."`
		Enabled    *bool       `json:"enabled,omitempty" example:"false" doc:"Disabling stops deliveries: pending ones become dead without being attempted, and can be retried once the endpoint is enabled again."`
	}
}

// WebhookEndpointOutput is one endpoint.
type WebhookEndpointOutput struct {
	Body WebhookEndpoint
}

// WebhookEndpointSecretOutput is an endpoint with its new secret.
type WebhookEndpointSecretOutput struct {
	Body WebhookEndpointWithSecret
}

// WebhookEndpointListOutput is a page of endpoints.
type WebhookEndpointListOutput struct {
	Body Page[WebhookEndpoint]
}

// WebhookEndpointIDInput names one endpoint.
type WebhookEndpointIDInput struct {
	ID uuid.UUID `path:"id"`
}

// WebhookDelivery is one event's delivery to one endpoint.
type WebhookDelivery struct {
	ID            uuid.UUID  `json:"id"`
	EndpointID    uuid.UUID  `json:"endpoint_id"`
	EventID       uuid.UUID  `json:"event_id" doc:"Sent as the webhook-id header, the same on every attempt, so receivers can deduplicate."`
	EventType     EventType  `json:"event_type"`
	State         string     `json:"state" enum:"pending,succeeded,dead" doc:"pending: being delivered or waiting for a retry; succeeded: an attempt got a 2xx; dead: every attempt failed (or the endpoint was disabled), until an admin retries it."`
	Attempts      int32      `json:"attempts" example:"3" doc:"Attempts made so far, across admin retries."`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty" doc:"When a pending delivery is attempted next (give or take the few seconds its endpoint's earlier deliveries take); absent once it succeeded or died."`
	LastAttemptAt *time.Time `json:"last_attempt_at,omitempty"`
	LastStatus    *int32     `json:"last_status,omitempty" example:"503" doc:"The HTTP status of the last attempt; absent when it got no response."`
	LastError     *string    `json:"last_error,omitempty" example:"HTTP 503: upstream unavailable" doc:"Why the last attempt failed (truncated)."`
	CreatedAt     time.Time  `json:"created_at"`
	FinishedAt    *time.Time `json:"finished_at,omitempty" doc:"When it succeeded or died."`
}

func webhookDeliveryFrom(d sql.WebhookDelivery, eventType string) WebhookDelivery {
	return WebhookDelivery{
		ID: d.ID, EndpointID: d.EndpointID, EventID: d.EventID, EventType: EventType(eventType), State: string(d.State),
		Attempts: d.Attempts, NextAttemptAt: d.NextAttemptAt, LastAttemptAt: d.LastAttemptAt, LastStatus: d.LastStatus, LastError: d.LastError,
		CreatedAt: d.CreatedAt, FinishedAt: d.FinishedAt,
	}
}

// WebhookDeliveryListInput filters and pages deliveries.
type WebhookDeliveryListInput struct {
	PageParams
	EndpointID string `query:"endpoint_id" format:"uuid" doc:"Only this endpoint's deliveries."`
	State      string `query:"state" enum:"pending,succeeded,dead" doc:"Only deliveries in this state."`
}

// WebhookDeliveryOutput is one delivery.
type WebhookDeliveryOutput struct {
	Body WebhookDelivery
}

// WebhookDeliveryListOutput is a page of deliveries.
type WebhookDeliveryListOutput struct {
	Body Page[WebhookDelivery]
}

// WebhookDeliveryIDInput names one delivery.
type WebhookDeliveryIDInput struct {
	ID uuid.UUID `path:"id"`
}

func (s *Server) registerWebhooks() {
	huma.Register(s.api, adminOperation(webhookEndpointCreateOperation), s.webhookEndpointCreate)
	huma.Register(s.api, adminOperation(webhookEndpointGetOperation), s.webhookEndpointGet)
	huma.Register(s.api, adminOperation(webhookEndpointListOperation), s.webhookEndpointList)
	huma.Register(s.api, adminOperation(webhookEndpointUpdateOperation), s.webhookEndpointUpdate)
	huma.Register(s.api, adminOperation(webhookEndpointDeleteOperation), s.webhookEndpointDelete)
	huma.Register(s.api, adminOperation(webhookEndpointRotateSecretOperation), s.webhookEndpointRotateSecret)
	huma.Register(s.api, adminOperation(webhookDeliveryListOperation), s.webhookDeliveryList)
	huma.Register(s.api, adminOperation(webhookDeliveryGetOperation), s.webhookDeliveryGet)
	huma.Register(s.api, adminOperation(webhookDeliveryRetryOperation), s.webhookDeliveryRetry)
}

var webhookTags = []string{"Webhooks"}

var webhookEndpointCreateOperation = huma.Operation{
	OperationID: "webhook-endpoint-create",
	Method:      http.MethodPost,
	Path:        "/v1/admin/webhook-endpoints",
	Summary:     "Create a webhook endpoint",
	Description: "Events of the given types are POSTed to the URL, signed per Standard Webhooks. The response carries the signing secret; it is shown once. " +
		"A tenant has at most TESSERA_WEBHOOK_MAX_ENDPOINTS endpoints (20 by default), enabled or not: one more is 409.",
	Tags:          webhookTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusConflict},
}

// webhookEndpointCreate creates a webhook endpoint of the caller's tenant and shows its
// secret once.
func (s *Server) webhookEndpointCreate(ctx context.Context, in *WebhookEndpointCreateInput) (*WebhookEndpointSecretOutput, error) {
	endpoint, secret, err := core.WebhookEndpointCreate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.WebhookEndpointCreateParams{
		TenantID: tenantID(ctx), MaxEndpoints: s.cfg.WebhookMaxEndpoints, URL: in.Body.URL, EventTypes: eventTypeStrings(in.Body.EventTypes),
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &WebhookEndpointSecretOutput{Body: WebhookEndpointWithSecret{WebhookEndpoint: webhookEndpointFrom(endpoint), Secret: secret}}, nil
}

var webhookEndpointGetOperation = huma.Operation{
	OperationID: "webhook-endpoint-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/webhook-endpoints/{id}",
	Summary:     "Get a webhook endpoint",
	Description: "The secret is not shown; rotate it to get a new one.",
	Tags:        webhookTags,
	Errors:      []int{http.StatusNotFound},
}

// webhookEndpointGet reads one of the tenant's webhook endpoints, without its secret.
func (s *Server) webhookEndpointGet(ctx context.Context, in *WebhookEndpointIDInput) (*WebhookEndpointOutput, error) {
	endpoint, err := s.queries.WebhookEndpointGet(ctx, s.conn(ctx), sql.WebhookEndpointGetParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("webhook endpoint %s: %w", in.ID, err))
	}
	return &WebhookEndpointOutput{Body: webhookEndpointFrom(endpoint)}, nil
}

var webhookEndpointListOperation = huma.Operation{
	OperationID: "webhook-endpoint-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/webhook-endpoints",
	Summary:     "List the tenant's webhook endpoints, oldest first",
	Tags:        webhookTags,
}

// webhookEndpointList pages through the tenant's webhook endpoints.
func (s *Server) webhookEndpointList(ctx context.Context, in *PageParams) (*WebhookEndpointListOutput, error) {
	after, fetch := in.cursor()
	endpoints, err := s.queries.WebhookEndpointList(ctx, s.conn(ctx), sql.WebhookEndpointListParams{TenantID: tenantID(ctx), After: after, RowLimit: fetch})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &WebhookEndpointListOutput{Body: page(endpoints, fetch, webhookEndpointFrom, func(e sql.WebhookEndpoint) uuid.UUID { return e.ID })}, nil
}

var webhookEndpointUpdateOperation = huma.Operation{
	OperationID: "webhook-endpoint-update",
	Method:      http.MethodPatch,
	Path:        "/v1/admin/webhook-endpoints/{id}",
	Summary:     "Update a webhook endpoint",
	Description: "Changes the fields given: url, event_types (replaced as a whole), enabled.",
	Tags:        webhookTags,
	Errors:      []int{http.StatusNotFound},
}

// webhookEndpointUpdate changes the given fields of one of the tenant's webhook endpoints.
func (s *Server) webhookEndpointUpdate(ctx context.Context, in *WebhookEndpointUpdateInput) (*WebhookEndpointOutput, error) {
	endpoint, err := core.WebhookEndpointUpdate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.WebhookEndpointUpdateParams{
		TenantID: tenantID(ctx), ID: in.ID, URL: in.Body.URL, EventTypes: eventTypeStrings(in.Body.EventTypes), Enabled: in.Body.Enabled,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &WebhookEndpointOutput{Body: webhookEndpointFrom(endpoint)}, nil
}

var webhookEndpointDeleteOperation = huma.Operation{
	OperationID:   "webhook-endpoint-delete",
	Method:        http.MethodDelete,
	Path:          "/v1/admin/webhook-endpoints/{id}",
	Summary:       "Delete a webhook endpoint",
	Description:   "Deletes the endpoint and its deliveries; deliveries still pending are dropped. To pause deliveries and keep their history, update it with enabled false instead.",
	Tags:          webhookTags,
	DefaultStatus: http.StatusNoContent,
	Errors:        []int{http.StatusNotFound},
}

// webhookEndpointDelete deletes one of the tenant's webhook endpoints with its deliveries.
func (s *Server) webhookEndpointDelete(ctx context.Context, in *WebhookEndpointIDInput) (*struct{}, error) {
	_, err := core.WebhookEndpointDelete(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.WebhookEndpointDeleteParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return nil, nil
}

var webhookEndpointRotateSecretOperation = huma.Operation{
	OperationID: "webhook-endpoint-rotate-secret",
	Method:      http.MethodPost,
	Path:        "/v1/admin/webhook-endpoints/{id}/rotate-secret",
	Summary:     "Rotate a webhook endpoint's signing secret",
	Description: "Replaces the secret at once: every attempt from now on, retries included, is signed with the new one. The response carries it; it is shown once.",
	Tags:        webhookTags,
	Errors:      []int{http.StatusNotFound},
}

// webhookEndpointRotateSecret gives one of the tenant's webhook endpoints a new secret and
// shows it once.
func (s *Server) webhookEndpointRotateSecret(ctx context.Context, in *WebhookEndpointIDInput) (*WebhookEndpointSecretOutput, error) {
	endpoint, secret, err := core.WebhookEndpointRotateSecret(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.WebhookEndpointRotateSecretParams{
		TenantID: tenantID(ctx), ID: in.ID,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &WebhookEndpointSecretOutput{Body: WebhookEndpointWithSecret{WebhookEndpoint: webhookEndpointFrom(endpoint), Secret: secret}}, nil
}

var webhookDeliveryListOperation = huma.Operation{
	OperationID: "webhook-delivery-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/webhook-deliveries",
	Summary:     "List the tenant's webhook deliveries, newest first",
	Tags:        webhookTags,
}

// webhookDeliveryList pages through the tenant's webhook deliveries, filtered by endpoint
// and state.
func (s *Server) webhookDeliveryList(ctx context.Context, in *WebhookDeliveryListInput) (*WebhookDeliveryListOutput, error) {
	after, fetch := in.cursor()
	params := sql.WebhookDeliveryListParams{TenantID: tenantID(ctx), After: after, RowLimit: fetch}
	if id, err := uuid.Parse(in.EndpointID); err == nil {
		params.EndpointID = &id
	}
	if in.State != "" {
		state := sql.DeliveryState(in.State)
		params.State = &state
	}
	rows, err := s.queries.WebhookDeliveryList(ctx, s.conn(ctx), params)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &WebhookDeliveryListOutput{Body: page(rows, fetch, func(r sql.WebhookDeliveryListRow) WebhookDelivery {
		return webhookDeliveryFrom(sql.WebhookDelivery{
			TenantID: r.TenantID, ID: r.ID, EventID: r.EventID, EndpointID: r.EndpointID, State: r.State, Attempts: r.Attempts,
			LastAttemptAt: r.LastAttemptAt, LastStatus: r.LastStatus, LastError: r.LastError, CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt,
			NextAttemptAt: r.NextAttemptAt,
		}, r.EventType)
	}, func(r sql.WebhookDeliveryListRow) uuid.UUID { return r.ID })}, nil
}

var webhookDeliveryGetOperation = huma.Operation{
	OperationID: "webhook-delivery-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/webhook-deliveries/{id}",
	Summary:     "Get a webhook delivery",
	Description: "With its attempts, the last attempt's status and error, and its event's id and type.",
	Tags:        webhookTags,
	Errors:      []int{http.StatusNotFound},
}

// webhookDeliveryGet reads one of the tenant's webhook deliveries with its event's type.
func (s *Server) webhookDeliveryGet(ctx context.Context, in *WebhookDeliveryIDInput) (*WebhookDeliveryOutput, error) {
	r, err := s.queries.WebhookDeliveryGet(ctx, s.conn(ctx), sql.WebhookDeliveryGetParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("webhook delivery %s: %w", in.ID, err))
	}
	return &WebhookDeliveryOutput{Body: webhookDeliveryFrom(sql.WebhookDelivery{
		TenantID: r.TenantID, ID: r.ID, EventID: r.EventID, EndpointID: r.EndpointID, State: r.State, Attempts: r.Attempts,
		LastAttemptAt: r.LastAttemptAt, LastStatus: r.LastStatus, LastError: r.LastError, CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt,
		NextAttemptAt: r.NextAttemptAt,
	}, r.EventType)}, nil
}

var webhookDeliveryRetryOperation = huma.Operation{
	OperationID:   "webhook-delivery-retry",
	Method:        http.MethodPost,
	Path:          "/v1/admin/webhook-deliveries/{id}/retry",
	Summary:       "Retry a dead or pending webhook delivery now",
	Description:   "Makes a dead or pending delivery due now with a fresh attempt budget (the full retry schedule); its endpoint's delivery job sends it, after the endpoint's deliveries that were due before. A succeeded delivery, or one whose endpoint is disabled, is 409.",
	Tags:          webhookTags,
	DefaultStatus: http.StatusAccepted,
	Errors:        []int{http.StatusNotFound, http.StatusConflict},
}

// webhookDeliveryRetry makes one of the tenant's dead or pending deliveries due now.
func (s *Server) webhookDeliveryRetry(ctx context.Context, in *WebhookDeliveryIDInput) (*WebhookDeliveryOutput, error) {
	delivery, err := core.WebhookDeliveryRetry(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.WebhookDeliveryRetryParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	r, err := s.queries.WebhookDeliveryGet(ctx, tx(ctx), sql.WebhookDeliveryGetParams{TenantID: tenantID(ctx), ID: delivery.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &WebhookDeliveryOutput{Body: webhookDeliveryFrom(delivery, r.EventType)}, nil
}
