package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
)

// sandboxResetView is the sandbox-reset answer.
type sandboxResetView struct {
	Tenant  tenantView       `json:"tenant"`
	Deleted map[string]int64 `json:"deleted"`
	Total   int64            `json:"deleted_total"`
}

func TestSandboxResetAPI(t *testing.T) {
	t.Parallel()

	t.Run("Sandbox", func(t *testing.T) {
		t.Parallel()
		b := setupSandbox(t)
		factory.TenantData(t, b.db, b.tenant.ID)
		var customers int64
		require.NoError(t, b.db.QueryRow(context.Background(), "SELECT count(*) FROM customers WHERE tenant_id = $1", b.tenant.ID).Scan(&customers))
		restart := sandboxClock.AddDate(0, -1, 0)
		res := b.request(t, http.MethodPost, "/v1/admin/sandbox/reset", `{"clock":"`+restart.Format(time.RFC3339)+`"}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		got := decode[sandboxResetView](t, res)
		require.True(t, got.Tenant.Sandbox)
		require.True(t, restart.Equal(*got.Tenant.Clock), "the clock restarts where asked, before the old one")
		require.Equal(t, customers, got.Deleted["customers"])
		var total int64
		for _, n := range got.Deleted {
			total += n
		}
		require.Equal(t, total, got.Total)

		left := decode[struct {
			Items []any `json:"items"`
		}](t, b.request(t, http.MethodGet, "/v1/admin/customers", ""))
		require.Empty(t, left.Items)
		tenant := decode[tenantView](t, b.request(t, http.MethodGet, "/v1/admin/tenant", ""))
		require.True(t, restart.Equal(*tenant.Clock), "the key still works, at the restarted clock")

		res = b.request(t, http.MethodPost, "/v1/admin/sandbox/reset", "")
		require.Equal(t, http.StatusOK, res.status, "no body: the clock stays; body: %s", res.body)
		again := decode[sandboxResetView](t, res)
		require.True(t, restart.Equal(*again.Tenant.Clock))
		require.Equal(t, map[string]int64{"audit_log": 1}, again.Deleted, "only the first reset's audit entry was left")
	})

	t.Run("Live", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		customer := factory.Customer(t, b.db, b.tenant.ID)
		res := b.request(t, http.MethodPost, "/v1/admin/sandbox/reset", `{}`)
		requireCode(t, res, http.StatusConflict, api.CodeSandboxOnly)
		var n int
		require.NoError(t, b.db.QueryRow(context.Background(), "SELECT count(*) FROM customers WHERE tenant_id = $1 AND id = $2", b.tenant.ID, customer.ID).Scan(&n))
		require.Equal(t, 1, n, "nothing deleted")
	})

	t.Run("BadClock", func(t *testing.T) {
		t.Parallel()
		b := setupSandbox(t)
		requireCode(t, b.request(t, http.MethodPost, "/v1/admin/sandbox/reset", `{"clock":"yesterday"}`), http.StatusUnprocessableEntity, api.CodeInvalid)
	})
}
