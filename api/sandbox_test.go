package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
)

// sandboxClock is where the sandbox tenants of these tests stand: years after the server's
// (manual) clock, so that whichever clock a request used shows.
var sandboxClock = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// setupSandbox returns a bundle whose tenant and key are a sandbox tenant's, its clock at
// sandboxClock, inside a rolled-back transaction.
func setupSandbox(t *testing.T) *bundle {
	t.Helper()
	b := newBundle(t, testdb.Tx(t))
	b.tenant = factory.SandboxTenant(t, b.db, sandboxClock)
	key, secret := factory.APIKey(t, b.db, b.tenant.ID)
	b.key, b.keyID = secret, key.ID
	return b
}

// tenantView is the tenant-get answer.
type tenantView struct {
	Slug    string     `json:"slug"`
	Sandbox bool       `json:"sandbox"`
	Clock   *time.Time `json:"clock"`
}

func TestTenantGetSandbox(t *testing.T) {
	t.Parallel()

	t.Run("Live", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.request(t, http.MethodGet, "/v1/admin/tenant", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.NotContains(t, string(res.body), `"clock"`, "a live tenant has no clock")
		got := decode[tenantView](t, res)
		require.False(t, got.Sandbox)
		require.Nil(t, got.Clock)
	})

	t.Run("Sandbox", func(t *testing.T) {
		t.Parallel()
		b := setupSandbox(t)
		got := decode[tenantView](t, b.request(t, http.MethodGet, "/v1/admin/tenant", ""))
		require.Equal(t, b.tenant.Slug, got.Slug)
		require.True(t, got.Sandbox)
		require.NotNil(t, got.Clock)
		require.True(t, sandboxClock.Equal(*got.Clock))
	})
}
