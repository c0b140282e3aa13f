package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// Money is an amount in minor units of a currency (cents; sats for SAT).
type Money struct {
	Currency string `json:"currency" enum:"USD,EUR,SAT"`
	Value    int64  `json:"value" example:"2500" doc:"Minor units: cents for USD and EUR, sats for SAT."`
}

// Subscription is a customer's recurring purchase of a policy.
type Subscription struct {
	ID                  uuid.UUID  `json:"id"`
	CustomerID          uuid.UUID  `json:"customer_id"`
	LicenseID           uuid.UUID  `json:"license_id"`
	PolicyID            uuid.UUID  `json:"policy_id"`
	Status              string     `json:"status" enum:"active,past_due,lapsed,cancelled"`
	Price               Money      `json:"price" doc:"What each renewal charges: the policy's price when the subscription started or last changed tier; later policy price changes do not apply."`
	PeriodDays          int32      `json:"period_days"`
	CurrentPeriodStart  time.Time  `json:"current_period_start"`
	CurrentPeriodEnd    time.Time  `json:"current_period_end"`
	NextRenewalAt       *time.Time `json:"next_renewal_at,omitempty"`
	ConsecutiveFailures int32      `json:"consecutive_failures"`
	CreatedAt           time.Time  `json:"created_at"`
	CancelledAt         *time.Time `json:"cancelled_at,omitempty"`
}

func subscriptionFrom(s sql.Subscription) Subscription {
	return Subscription{
		ID: s.ID, CustomerID: s.CustomerID, LicenseID: s.LicenseID, PolicyID: s.PolicyID, Status: string(s.Status),
		Price: Money{Currency: string(s.PriceCurrency), Value: s.PriceValue}, PeriodDays: s.PeriodDays,
		CurrentPeriodStart: s.CurrentPeriodStart, CurrentPeriodEnd: s.CurrentPeriodEnd, NextRenewalAt: s.NextRenewalAt,
		ConsecutiveFailures: s.ConsecutiveFailures, CreatedAt: s.CreatedAt, CancelledAt: s.CancelledAt,
	}
}

// SubscriptionOutput is one subscription.
type SubscriptionOutput struct {
	Body Subscription
}

// SubscriptionWithLicenseOutput is a subscription with its licence, as created or cancelled.
type SubscriptionWithLicenseOutput struct {
	Body struct {
		Subscription Subscription `json:"subscription"`
		License      License      `json:"license"`
	}
}

func subscriptionWithLicense(s sql.Subscription, l sql.License) *SubscriptionWithLicenseOutput {
	out := &SubscriptionWithLicenseOutput{}
	out.Body.Subscription = subscriptionFrom(s)
	out.Body.License = licenseFrom(l)
	return out
}

// SubscriptionCreateInput starts a subscription.
type SubscriptionCreateInput struct {
	Body struct {
		CustomerID uuid.UUID   `json:"customer_id"`
		PolicyID   uuid.UUID   `json:"policy_id" doc:"A recurring policy."`
		AddonIDs   []uuid.UUID `json:"addon_ids,omitempty" maxItems:"50" doc:"Add-ons; each must apply to the policy."`
	}
}

// SubscriptionIDInput names one subscription.
type SubscriptionIDInput struct {
	ID uuid.UUID `path:"id"`
}

// SubscriptionListInput filters a list of subscriptions.
type SubscriptionListInput struct {
	PageParams
	CustomerID string `query:"customer_id" format:"uuid" doc:"Only this customer's subscriptions."`
	Status     string `query:"status" enum:"active,past_due,lapsed,cancelled" doc:"Only subscriptions with this status."`
}

// SubscriptionListOutput is a page of subscriptions.
type SubscriptionListOutput struct {
	Body Page[Subscription]
}

// SubscriptionCancelInput cancels the subscription of the licence whose key it carries.
type SubscriptionCancelInput struct {
	Body struct {
		Key string `json:"key" maxLength:"512" doc:"The licence key." example:"TSR1.AZKf...Q"`
	}
}

const cancelDescription = "Cancels at once. The licence then follows the perpetual fallback: with a perpetual add-on that applies to the policy, " +
	"or when cancelled at least the policy's perpetual_after_days after the subscription was created, it never expires but covers only " +
	"releases up to the cancellation (subscription_expiration_date, with a message); otherwise it expires at the end of the paid period. " +
	"A cancelled subscription is 409."

func (s *Server) registerSubscriptions() {
	huma.Register(s.api, adminOperation(subscriptionCreateOperation), s.subscriptionCreate)
	huma.Register(s.api, adminOperation(subscriptionGetOperation), s.subscriptionGet)
	huma.Register(s.api, adminOperation(subscriptionListOperation), s.subscriptionList)
	huma.Register(s.api, adminOperation(subscriptionCancelAdminOperation), s.subscriptionCancelAdmin)
	huma.Register(s.api, buyerOperation(subscriptionCancelOperation, s.tenantOfLicenseKey), s.subscriptionCancel)
}

var subscriptionTags = []string{"Subscriptions"}

var subscriptionCreateOperation = huma.Operation{
	OperationID:   "subscription-create",
	Method:        http.MethodPost,
	Path:          "/v1/admin/subscriptions",
	Summary:       "Start a subscription and issue its licence",
	Description:   "The first period starts now; the licence expires one period plus the policy's grace days from now (never, with a perpetual add-on).",
	Tags:          subscriptionTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusUnprocessableEntity},
}

// subscriptionCreate starts a subscription of one of the caller's customers, with its licence.
func (s *Server) subscriptionCreate(ctx context.Context, in *SubscriptionCreateInput) (*SubscriptionWithLicenseOutput, error) {
	sub, l, err := core.SubscriptionCreate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.SubscriptionCreateParams{
		TenantID: tenantID(ctx), CustomerID: in.Body.CustomerID, PolicyID: in.Body.PolicyID, AddonIDs: in.Body.AddonIDs,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return subscriptionWithLicense(sub, l), nil
}

var subscriptionGetOperation = huma.Operation{
	OperationID: "subscription-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/subscriptions/{id}",
	Summary:     "Read a subscription",
	Description: "404 when the tenant has no such subscription.",
	Tags:        subscriptionTags,
	Errors:      []int{http.StatusNotFound},
}

// subscriptionGet reads one subscription.
func (s *Server) subscriptionGet(ctx context.Context, in *SubscriptionIDInput) (*SubscriptionOutput, error) {
	sub, err := s.queries.SubscriptionGet(ctx, s.conn(ctx), sql.SubscriptionGetParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, notFound(err, "subscription", in.ID))
	}
	return &SubscriptionOutput{Body: subscriptionFrom(sub)}, nil
}

var subscriptionListOperation = huma.Operation{
	OperationID: "subscription-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/subscriptions",
	Summary:     "List subscriptions, newest first",
	Tags:        subscriptionTags,
}

// subscriptionList reads a page of subscriptions, filtered by customer and status.
func (s *Server) subscriptionList(ctx context.Context, in *SubscriptionListInput) (*SubscriptionListOutput, error) {
	after, fetch := in.cursor()
	params := sql.SubscriptionListParams{TenantID: tenantID(ctx), After: after, RowLimit: fetch, CustomerID: optionalUUID(in.CustomerID)}
	if in.Status != "" {
		status := sql.SubscriptionStatus(in.Status)
		params.Status = &status
	}
	rows, err := s.queries.SubscriptionList(ctx, s.conn(ctx), params)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &SubscriptionListOutput{Body: page(rows, fetch, subscriptionFrom, func(s sql.Subscription) uuid.UUID { return s.ID })}, nil
}

var subscriptionCancelAdminOperation = huma.Operation{
	OperationID: "subscription-cancel-admin",
	Method:      http.MethodPost,
	Path:        "/v1/admin/subscriptions/{id}/cancel",
	Summary:     "Cancel a subscription",
	Description: cancelDescription,
	Tags:        subscriptionTags,
	Errors:      []int{http.StatusNotFound, http.StatusConflict},
}

// subscriptionCancelAdmin cancels one of the caller's subscriptions.
func (s *Server) subscriptionCancelAdmin(ctx context.Context, in *SubscriptionIDInput) (*SubscriptionWithLicenseOutput, error) {
	sub, l, err := core.SubscriptionCancel(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.SubscriptionCancelParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return subscriptionWithLicense(sub, l), nil
}

var subscriptionCancelOperation = huma.Operation{
	OperationID: "subscription-cancel",
	Method:      http.MethodPost,
	Path:        "/v1/subscriptions/cancel",
	Summary:     "Cancel the subscription of a licence (buyer)",
	Description: "Authenticated by the licence key: a malformed, forged or unknown key is 401; a licence without a subscription is 404. " + cancelDescription,
	Tags:        subscriptionTags,
	Errors:      []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict},
}

// subscriptionCancel cancels the subscription of the licence whose key the buyer presents.
func (s *Server) subscriptionCancel(ctx context.Context, in *SubscriptionCancelInput) (*SubscriptionWithLicenseOutput, error) {
	l, err := s.licenseByKey(ctx, in.Body.Key)
	if err != nil {
		return nil, problem(ctx, err)
	}
	current, err := s.queries.SubscriptionGetByLicense(ctx, tx(ctx), sql.SubscriptionGetByLicenseParams{TenantID: l.TenantID, LicenseID: l.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	sub, l, err := core.SubscriptionCancel(ctx, tx(ctx), s.step(ctx, buyer(ctx, l.ID)), core.SubscriptionCancelParams{TenantID: l.TenantID, ID: current.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return subscriptionWithLicense(sub, l), nil
}
