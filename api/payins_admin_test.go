package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/sql"
)

// TestPayInAdminTrail reads a paid PayIn as an admin: its transitions, payouts and parts.
func TestPayInAdminTrail(t *testing.T) {
	t.Parallel()
	s := setupShop(t, 100, sql.CurrencySAT)
	s.credit(t, sql.AssetCredits, 30)
	p := s.await(t, s.purchase(t, `"credits"`).ID, "PENDING")
	require.NoError(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, 75))
	s.webhook(t, p.Invoice.InvoiceID, "InvoiceSettled")
	s.await(t, p.ID, "PAID")

	type trail struct {
		Transitions []struct {
			From *string `json:"from"`
			To   string  `json:"to"`
		} `json:"transitions"`
		Payouts []struct {
			Type   string `json:"type"`
			Asset  string `json:"asset"`
			Amount int64  `json:"amount"`
		} `json:"payouts"`
	}
	got := decode[trail](t, s.send(t, s.srv, http.MethodGet, "/v1/admin/payins/"+p.ID, ""))
	require.Len(t, got.Transitions, 3)
	require.Nil(t, got.Transitions[0].From)
	require.Equal(t, []string{"PENDING_INVOICE_CREATION", "PENDING", "PAID"},
		[]string{got.Transitions[0].To, got.Transitions[1].To, got.Transitions[2].To})
	require.Len(t, got.Payouts, 2)
	amounts := map[string]int64{}
	for _, o := range got.Payouts {
		amounts[o.Type+"/"+o.Asset] = o.Amount
	}
	require.Equal(t, map[string]int64{"tenant_revenue/sats": 100, "overpay_spillover/credits": 5}, amounts)

	requireProblem(t, s.send(t, s.srv, http.MethodGet, "/v1/admin/payins/01900000-0000-7000-8000-000000000000", ""), http.StatusNotFound)
	buyer := decode[trail](t, s.send(t, s.srv, http.MethodGet, "/v1/payins/"+p.ID, "", "Authorization", ""))
	require.Empty(t, buyer.Payouts, "the buyer's poll does not show the tenant's ledger")
}
