package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
)

// TestDatabaseOutage makes the server's database refuse connections and terminate the ones
// it has, as a Postgres restart does: every kind of request (a buyer's validation, an admin
// read, an admin write through the transaction middleware, readiness) answers 503 with
// Retry-After, never 500, and the server serves again once the database is back.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	pool, dbURL := testdb.Clone(t)
	b := newBundle(t, pool)
	srv := httptest.NewServer(b.handler)
	t.Cleanup(srv.Close)
	policy := factory.Policy(t, pool, b.tenant.ID)
	customer := factory.Customer(t, pool, b.tenant.ID)
	license := factory.License(t, pool, b.tenant.ID, policy.ID, customer.ID)

	requests := []struct {
		name, method, path, body string
		header                   []string
	}{
		{"Validation", http.MethodPost, "/v1/licenses/validate", fmt.Sprintf(`{"key":%q}`, license.Key), []string{"Authorization", ""}},
		{"AdminRead", http.MethodGet, "/v1/admin/customers/" + customer.ID.String(), "", nil},
		{"AdminWrite", http.MethodPost, "/v1/admin/products", `{"slug":"outage","name":"Outage"}`, []string{"Idempotency-Key", "outage-1"}},
		{"Readiness", http.MethodGet, "/readyz", "", nil},
	}
	for _, r := range requests {
		res := b.send(t, srv, r.method, r.path, r.body, r.header...)
		require.Less(t, res.status, 300, "%s before the outage: %s", r.name, res.body)
	}

	// The outage lasts between two phases of this test, so its requests are not subtests
	// (which would run after it ended).
	end := testdb.Outage(t, dbURL)
	for _, r := range requests {
		res := b.send(t, srv, r.method, r.path, r.body, r.header...)
		p := requireCode(t, res, http.StatusServiceUnavailable, api.CodeUnavailable)
		require.Equal(t, "2", res.header.Get("Retry-After"), r.name)
		require.Contains(t, p.Detail, "database is unreachable", r.name)
	}

	end()
	// Once the database is back, each pooled connection the outage killed fails at most once
	// more (with a 503) before the pool replaces it.
	for _, r := range requests {
		res := b.send(t, srv, r.method, r.path, r.body, r.header...)
		for i := 0; res.status == http.StatusServiceUnavailable && i < int(pool.Config().MaxConns); i++ {
			res = b.send(t, srv, r.method, r.path, r.body, r.header...)
		}
		require.Less(t, res.status, 300, "%s after the outage: %s", r.name, res.body)
	}
}
