package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

func (s *Server) registerRenewals() {
	huma.Register(s.api, adminOperation(huma.Operation{
		OperationID: "subscription-list-stuck",
		Method:      http.MethodGet,
		Path:        "/v1/admin/subscriptions/stuck",
		Summary:     "List subscriptions whose renewal stopped at the failure cap, newest first",
		Description: "A renewal that cannot be quoted is retried after 5 min, 30 min, 2 h, 6 h and 12 h; after 5 failures in a row the " +
			"renewal sweep stops trying the subscription (active or past_due) until it is reset.",
		Tags: []string{"Subscriptions"},
	}), func(ctx context.Context, in *PageParams) (*SubscriptionListOutput, error) {
		after, fetch := in.cursor()
		rows, err := core.SubscriptionListStuck(ctx, s.conn(ctx), tenantID(ctx), after, fetch)
		if err != nil {
			return nil, problem(ctx, err)
		}
		return &SubscriptionListOutput{Body: page(rows, fetch, subscriptionFrom, func(s sql.Subscription) uuid.UUID { return s.ID })}, nil
	})

	huma.Register(s.api, adminOperation(huma.Operation{
		OperationID: "subscription-renewal-reset",
		Method:      http.MethodPost,
		Path:        "/v1/admin/subscriptions/{id}/renewal-reset",
		Summary:     "Put a stuck subscription back in the renewal sweep",
		Description: "Resets the failures to 0 and makes the renewal due now; audited. A subscription that is not stuck at the failure cap is 409.",
		Tags:        []string{"Subscriptions"},
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	}), func(ctx context.Context, in *SubscriptionIDInput) (*SubscriptionOutput, error) {
		sub, err := core.SubscriptionRenewalReset(ctx, tx(ctx), s.step(actor(ctx)), tenantID(ctx), in.ID)
		if err != nil {
			return nil, problem(ctx, err)
		}
		return &SubscriptionOutput{Body: subscriptionFrom(sub)}, nil
	})
}
