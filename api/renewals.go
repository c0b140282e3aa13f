package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// CustomerAutoPayInput turns a customer's auto-pay on or off.
type CustomerAutoPayInput struct {
	ID   uuid.UUID `path:"id"`
	Body struct {
		AutoPay bool `json:"auto_pay" doc:"With auto-pay, renewals take credits then reward sats before invoicing the rest."`
	}
}

// CustomerAutoPayOutput is a customer's auto-pay setting.
type CustomerAutoPayOutput struct {
	Body struct {
		CustomerID uuid.UUID `json:"customer_id"`
		AutoPay    bool      `json:"auto_pay"`
	}
}

func (s *Server) registerRenewals() {
	huma.Register(s.api, adminOperation(customerSetAutoPayOperation), s.customerSetAutoPay)
	huma.Register(s.api, adminOperation(subscriptionListStuckOperation), s.subscriptionListStuck)
	huma.Register(s.api, adminOperation(subscriptionRenewalResetOperation), s.subscriptionRenewalReset)
}

var customerSetAutoPayOperation = huma.Operation{
	OperationID: "customer-set-auto-pay",
	Method:      http.MethodPut,
	Path:        "/v1/admin/customers/{id}/auto-pay",
	Summary:     "Turn a customer's auto-pay of renewals on or off",
	Description: "Off by default. With auto-pay, a renewal pays from the customer's credits, then reward sats, and invoices the rest; audited.",
	Tags:        subscriptionTags,
	Errors:      []int{http.StatusNotFound},
}

// customerSetAutoPay turns auto-pay of renewals on or off for one of the caller's customers.
func (s *Server) customerSetAutoPay(ctx context.Context, in *CustomerAutoPayInput) (*CustomerAutoPayOutput, error) {
	customer, err := core.CustomerSetAutoPay(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.CustomerSetAutoPayParams{TenantID: tenantID(ctx), ID: in.ID, AutoPay: in.Body.AutoPay})
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &CustomerAutoPayOutput{}
	out.Body.CustomerID, out.Body.AutoPay = customer.ID, customer.AutoPay
	return out, nil
}

var subscriptionListStuckOperation = huma.Operation{
	OperationID: "subscription-list-stuck",
	Method:      http.MethodGet,
	Path:        "/v1/admin/subscriptions/stuck",
	Summary:     "List subscriptions whose renewal stopped at the failure cap, newest first",
	Description: "A renewal that cannot be quoted is retried after 5 min, 30 min, 2 h, 6 h and 12 h; after 5 failures in a row the " +
		"renewal sweep stops trying the subscription (active or past_due) until it is reset.",
	Tags: subscriptionTags,
}

// subscriptionListStuck reads a page of the subscriptions at the failure cap, which the
// renewal sweep no longer tries.
func (s *Server) subscriptionListStuck(ctx context.Context, in *PageParams) (*SubscriptionListOutput, error) {
	after, fetch := in.cursor()
	rows, err := s.queries.SubscriptionListStuck(ctx, s.conn(ctx), sql.SubscriptionListStuckParams{TenantID: tenantID(ctx), After: after, RowLimit: fetch})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("list stuck subscriptions: %w", err))
	}
	return &SubscriptionListOutput{Body: page(rows, fetch, subscriptionFrom, func(s sql.Subscription) uuid.UUID { return s.ID })}, nil
}

var subscriptionRenewalResetOperation = huma.Operation{
	OperationID: "subscription-renewal-reset",
	Method:      http.MethodPost,
	Path:        "/v1/admin/subscriptions/{id}/renewal-reset",
	Summary:     "Put a stuck subscription back in the renewal sweep",
	Description: "Resets the failures to 0 and makes the renewal due now; audited. A subscription that is not stuck at the failure cap is 409.",
	Tags:        subscriptionTags,
	Errors:      []int{http.StatusNotFound, http.StatusConflict},
}

// subscriptionRenewalReset puts one of the caller's stuck subscriptions back in the renewal
// sweep.
func (s *Server) subscriptionRenewalReset(ctx context.Context, in *SubscriptionIDInput) (*SubscriptionOutput, error) {
	sub, err := core.SubscriptionRenewalReset(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.SubscriptionRenewalResetParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &SubscriptionOutput{Body: subscriptionFrom(sub)}, nil
}
