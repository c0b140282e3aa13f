package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
)

// TestRenewalsStuck lists the subscriptions at the renewal failure cap and resets one, audited.
func TestRenewalsStuck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30))
	customer := factory.Customer(t, b.db, b.tenant.ID)
	stuck, _ := factory.Subscription(t, b.db, b.tenant.ID, policy.ID, customer.ID)
	factory.Subscription(t, b.db, b.tenant.ID, factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30)).ID, customer.ID)
	_, err := b.db.Exec(ctx, "UPDATE subscriptions SET consecutive_failures = 5, status = 'past_due' WHERE tenant_id = $1 AND id = $2", b.tenant.ID, stuck.ID)
	require.NoError(t, err)

	type subscriptionPage struct {
		Items []struct {
			ID                  string `json:"id"`
			Status              string `json:"status"`
			ConsecutiveFailures int32  `json:"consecutive_failures"`
		} `json:"items"`
	}
	res := b.request(t, http.MethodGet, "/v1/admin/subscriptions/stuck", "")
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	list := decode[subscriptionPage](t, res)
	require.Len(t, list.Items, 1)
	require.Equal(t, stuck.ID.String(), list.Items[0].ID)
	require.Equal(t, int32(5), list.Items[0].ConsecutiveFailures)

	res = b.request(t, http.MethodPost, "/v1/admin/subscriptions/"+stuck.ID.String()+"/renewal-reset", "")
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	reset := decode[struct {
		ConsecutiveFailures int32  `json:"consecutive_failures"`
		NextRenewalAt       string `json:"next_renewal_at"`
	}](t, res)
	require.Equal(t, int32(0), reset.ConsecutiveFailures)
	require.Empty(t, decode[subscriptionPage](t, b.request(t, http.MethodGet, "/v1/admin/subscriptions/stuck", "")).Items)
	var audited int
	require.NoError(t, b.db.QueryRow(ctx, "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'subscription.renewal_reset' AND subject_id = $2",
		b.tenant.ID, stuck.ID.String()).Scan(&audited))
	require.Equal(t, 1, audited)

	t.Run("NotStuckIsConflict", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		customer := factory.Customer(t, b.db, b.tenant.ID)
		fine, _ := factory.Subscription(t, b.db, b.tenant.ID, factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30)).ID, customer.ID)
		res := b.request(t, http.MethodPost, "/v1/admin/subscriptions/"+fine.ID.String()+"/renewal-reset", "")
		requireCode(t, res, http.StatusConflict, api.CodeRenewalNotStuck)
	})
	t.Run("UnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.request(t, http.MethodPost, "/v1/admin/subscriptions/"+uuid.NewString()+"/renewal-reset", "")
		require.Equal(t, http.StatusNotFound, res.status, "body: %s", res.body)
	})
}

// TestCustomerSetAutoPay turns auto-pay on and off, audited; an unknown customer is 404.
func TestCustomerSetAutoPay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	customer := factory.Customer(t, b.db, b.tenant.ID)
	type autoPay struct {
		CustomerID string `json:"customer_id"`
		AutoPay    bool   `json:"auto_pay"`
	}

	res := b.request(t, http.MethodPut, "/v1/admin/customers/"+customer.ID.String()+"/auto-pay", `{"auto_pay":true}`)
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	require.Equal(t, autoPay{CustomerID: customer.ID.String(), AutoPay: true}, decode[autoPay](t, res))
	var stored bool
	require.NoError(t, b.db.QueryRow(ctx, "SELECT auto_pay FROM customers WHERE tenant_id = $1 AND id = $2", b.tenant.ID, customer.ID).Scan(&stored))
	require.True(t, stored)

	res = b.request(t, http.MethodPut, "/v1/admin/customers/"+customer.ID.String()+"/auto-pay", `{"auto_pay":false}`)
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	require.False(t, decode[autoPay](t, res).AutoPay)
	var audited int
	require.NoError(t, b.db.QueryRow(ctx, "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'customer.auto_pay' AND subject_id = $2",
		b.tenant.ID, customer.ID.String()).Scan(&audited))
	require.Equal(t, 2, audited)

	res = b.request(t, http.MethodPut, "/v1/admin/customers/"+uuid.NewString()+"/auto-pay", `{"auto_pay":true}`)
	require.Equal(t, http.StatusNotFound, res.status, "body: %s", res.body)
}
