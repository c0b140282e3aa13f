package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/sql"
)

func TestIdempotency(t *testing.T) {
	t.Parallel()

	keyCount := func(t *testing.T, b *bundle) int {
		t.Helper()
		return len(decode[page[apiKey]](t, b.request(t, http.MethodGet, "/v1/admin/api-keys", "")).Items)
	}

	t.Run("ReplaysTheFirstResponse", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"once"}`, "Idempotency-Key", "k-1")
		require.Equal(t, http.StatusCreated, first.status)
		require.Empty(t, first.header.Get("Idempotent-Replayed"))

		again := b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"once"}`, "Idempotency-Key", "k-1")
		require.Equal(t, http.StatusCreated, again.status)
		require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
		require.Equal(t, first.header.Get("Content-Type"), again.header.Get("Content-Type"))
		require.JSONEq(t, string(first.body), string(again.body), "the same key, shown once, replayed to the same caller")
		require.Equal(t, 2, keyCount(t, b), "the fixture's key and one new key")
	})

	t.Run("OtherBodyIs422", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"a"}`, "Idempotency-Key", "k-2")
		p := requireCode(t, b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"b"}`, "Idempotency-Key", "k-2"), http.StatusUnprocessableEntity, api.CodeIdempotencyKeyReused)
		require.Contains(t, p.Detail, "different request")
	})

	t.Run("OtherOperationIs422", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := decode[apiKey](t, b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"a"}`, "Idempotency-Key", "k-3"))
		requireProblem(t, b.request(t, http.MethodDelete, "/v1/admin/api-keys/"+created.ID, "", "Idempotency-Key", "k-3"), http.StatusUnprocessableEntity)
	})

	t.Run("ErrorsAreNotStored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":""}`, "Idempotency-Key", "k-4"), http.StatusUnprocessableEntity)
		res := b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"fixed"}`, "Idempotency-Key", "k-4")
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		require.Empty(t, res.header.Get("Idempotent-Replayed"))
	})

	t.Run("ExpiresAfterTTL", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"x"}`, "Idempotency-Key", "k-5")
		b.clock.Advance(24*time.Hour - time.Second)
		require.Equal(t, "true", b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"x"}`, "Idempotency-Key", "k-5").header.Get("Idempotent-Replayed"))
		b.clock.Advance(time.Second)
		res := b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"x"}`, "Idempotency-Key", "k-5")
		require.Equal(t, http.StatusCreated, res.status)
		require.Empty(t, res.header.Get("Idempotent-Replayed"), "an expired key runs the request again")
		require.Equal(t, 3, keyCount(t, b))
	})

	t.Run("ScopedPerTenant", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		other := factory.Tenant(t, b.db)
		_, otherSecret := factory.APIKey(t, b.db, other.ID)
		b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"x"}`, "Idempotency-Key", "shared")
		res := b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"x"}`, "Idempotency-Key", "shared", "Authorization", "Bearer "+otherSecret)
		require.Equal(t, http.StatusCreated, res.status)
		require.Empty(t, res.header.Get("Idempotent-Replayed"))
	})

	t.Run("MalformedKeyIs400", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, key := range []string{strings.Repeat("k", 256), "has space", "tab\tkey", "ünicode"} {
			requireCode(t, b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"x"}`, "Idempotency-Key", key), http.StatusBadRequest, api.CodeIdempotencyKeyInvalid)
		}
		require.Equal(t, 1, keyCount(t, b))
	})

	t.Run("InFlightIs409", func(t *testing.T) {
		t.Parallel()
		b, srv := setupServer(t)
		ctx := t.Context()

		// Hold inserts into api_keys (reads still pass, so authentication succeeds): the
		// first request takes the idempotency lock, then waits in its handler.
		blocker, err := b.db.Begin(ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = blocker.Rollback(context.Background()) }) // on failure too; a second rollback is a no-op
		_, err = blocker.Exec(ctx, "LOCK TABLE api_keys IN SHARE MODE")
		require.NoError(t, err)

		first := make(chan response, 1)
		go func() {
			first <- b.send(t, srv, http.MethodPost, "/v1/admin/api-keys", `{"name":"slow"}`, "Idempotency-Key", "k-6")
		}()
		require.Eventually(t, func() bool {
			var waiting int
			err := b.db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
			return err == nil && waiting == 1
		}, 10*time.Second, 10*time.Millisecond)

		p := requireCode(t, b.send(t, srv, http.MethodPost, "/v1/admin/api-keys", `{"name":"slow"}`, "Idempotency-Key", "k-6"), http.StatusConflict, api.CodeIdempotencyKeyInFlight)
		require.Contains(t, p.Detail, "still in progress")

		require.NoError(t, blocker.Rollback(ctx))
		done := <-first
		require.Equal(t, http.StatusCreated, done.status, "body: %s", done.body)

		replay := b.send(t, srv, http.MethodPost, "/v1/admin/api-keys", `{"name":"slow"}`, "Idempotency-Key", "k-6")
		require.Equal(t, "true", replay.header.Get("Idempotent-Replayed"))
		require.JSONEq(t, string(done.body), string(replay.body))
	})

	t.Run("ConcurrentDuplicatesRunOnce", func(t *testing.T) {
		t.Parallel()
		b, srv := setupServer(t)
		const n = 12
		results := make([]response, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				results[i] = b.send(t, srv, http.MethodPost, "/v1/admin/api-keys", `{"name":"race"}`, "Idempotency-Key", "k-7")
			})
		}
		wg.Wait()
		requireRanOnce(t, results)
		var created int
		require.NoError(t, b.db.QueryRow(t.Context(), "SELECT count(*) FROM api_keys WHERE name = 'race'").Scan(&created))
		require.Equal(t, 1, created)
	})
}

// TestIdempotencyStoresNoSecrets checks that a stored response carrying a secret shown once
// (a new API key) is not readable in the database.
func TestIdempotencyStoresNoSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created := decode[apiKey](t, b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"secret"}`, "Idempotency-Key", "k-secret"))
	var stored []byte
	require.NoError(t, b.db.QueryRow(t.Context(), "SELECT response_body FROM idempotency_keys WHERE tenant_id = $1 AND key = 'k-secret'", b.tenant.ID).Scan(&stored))
	require.NotContains(t, string(stored), created.Key)
	require.NotContains(t, string(stored), created.Prefix)

	replay := decode[apiKey](t, b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"secret"}`, "Idempotency-Key", "k-secret"))
	require.Equal(t, created.Key, replay.Key)
}

// TestIdempotencyBuyers checks that buyer operations, the ones a flaky client retries,
// honour Idempotency-Key with the admin semantics, scoped by the tenant their request names
// and apart from the tenant's admin keys.
func TestIdempotencyBuyers(t *testing.T) {
	t.Parallel()

	payinCount := func(t *testing.T, b *bundle) int {
		t.Helper()
		var n int
		require.NoError(t, b.db.QueryRow(t.Context(), "SELECT count(*) FROM payins WHERE tenant_id = $1", b.tenant.ID).Scan(&n))
		return n
	}
	purchaseBody := func(b *bundle, email string) string {
		return fmt.Sprintf(`{"tenant":%q,"policy":"pro","customer_email":%q}`, b.tenant.Slug, email)
	}
	setupShopOf := func(t *testing.T, b *bundle, tenant sql.Tenant) {
		t.Helper()
		factory.Policy(t, b.db, tenant.ID, factory.PolicySlug("pro"), factory.PolicyPrice(sql.CurrencySAT, 1000))
		for _, email := range []string{"a@example.com", "b@example.com", "race@example.com"} {
			factory.Customer(t, b.db, tenant.ID, factory.CustomerEmail(email))
		}
	}
	setupPolicy := func(t *testing.T, b *bundle) {
		t.Helper()
		setupShopOf(t, b, b.tenant)
	}

	t.Run("PurchaseReplaysTheFirstResponse", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		setupPolicy(t, b)
		first := b.request(t, http.MethodPost, "/v1/purchase", purchaseBody(b, "a@example.com"), "Authorization", "", "Idempotency-Key", "buy-1")
		require.Equal(t, http.StatusCreated, first.status, "body: %s", first.body)
		again := b.request(t, http.MethodPost, "/v1/purchase", purchaseBody(b, "a@example.com"), "Authorization", "", "Idempotency-Key", "buy-1")
		require.Equal(t, http.StatusCreated, again.status)
		require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
		require.JSONEq(t, string(first.body), string(again.body))
		require.Equal(t, 1, payinCount(t, b), "one PayIn and one invoice for a retried purchase")

		p := requireProblem(t, b.request(t, http.MethodPost, "/v1/purchase", purchaseBody(b, "b@example.com"), "Authorization", "", "Idempotency-Key", "buy-1"), http.StatusUnprocessableEntity)
		require.Contains(t, p.Detail, "different request")
	})

	t.Run("BuyerKeysApartFromAdminKeys", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		setupPolicy(t, b)
		admin := b.request(t, http.MethodPost, "/v1/purchase", purchaseBody(b, "a@example.com"), "Idempotency-Key", "shared")
		require.Equal(t, http.StatusCreated, admin.status, "body: %s", admin.body)
		buyer := b.request(t, http.MethodPost, "/v1/purchase", purchaseBody(b, "a@example.com"), "Authorization", "", "Idempotency-Key", "shared")
		require.Equal(t, http.StatusCreated, buyer.status, "body: %s", buyer.body)
		require.Empty(t, buyer.header.Get("Idempotent-Replayed"), "a buyer never sees a response stored for the admin key")
		require.Equal(t, 2, payinCount(t, b))
	})

	t.Run("ScopedByTheTenantNamed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		setupPolicy(t, b)
		other := factory.Tenant(t, b.db)
		setupShopOf(t, b, other)
		require.Equal(t, http.StatusCreated, b.request(t, http.MethodPost, "/v1/purchase", purchaseBody(b, "a@example.com"), "Authorization", "", "Idempotency-Key", "k").status)
		res := b.request(t, http.MethodPost, "/v1/purchase", fmt.Sprintf(`{"tenant":%q,"policy":"pro","customer_email":"a@example.com"}`, other.Slug), "Authorization", "", "Idempotency-Key", "k")
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		require.Empty(t, res.header.Get("Idempotent-Replayed"))
	})

	t.Run("LicenceKeyAndPayInOperations", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		setupPolicy(t, b)
		l := factory.License(t, b.db, b.tenant.ID, factory.Policy(t, b.db, b.tenant.ID).ID, factory.Customer(t, b.db, b.tenant.ID).ID)
		body := fmt.Sprintf(`{"key":%q,"fingerprint":"fp-1"}`, l.Key)
		first := b.request(t, http.MethodPost, "/v1/machines/activate", body, "Authorization", "", "Idempotency-Key", "act-1")
		require.Equal(t, http.StatusCreated, first.status, "body: %s", first.body)
		again := b.request(t, http.MethodPost, "/v1/machines/activate", body, "Authorization", "", "Idempotency-Key", "act-1")
		require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
		require.Equal(t, first.status, again.status, "the replay answers the first status")

		created := decode[payin](t, b.request(t, http.MethodPost, "/v1/purchase", purchaseBody(b, "a@example.com"), "Authorization", ""))
		cancel := b.request(t, http.MethodPost, "/v1/payins/"+created.ID+"/cancel", "", "Authorization", "", "Idempotency-Key", "cancel-1")
		require.Equal(t, http.StatusOK, cancel.status, "body: %s", cancel.body)
		again = b.request(t, http.MethodPost, "/v1/payins/"+created.ID+"/cancel", "", "Authorization", "", "Idempotency-Key", "cancel-1")
		require.Equal(t, http.StatusOK, again.status, "a retried cancel replays its success instead of a 409")
		require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	})

	t.Run("UnknownTenantRunsWithoutAKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 2 {
			requireProblem(t, b.request(t, http.MethodPost, "/v1/purchase", `{"tenant":"nobody","policy":"pro","customer_email":"a@example.com"}`, "Authorization", "", "Idempotency-Key", "k"), http.StatusNotFound)
			requireProblem(t, b.request(t, http.MethodPost, "/v1/machines/activate", `{"key":"forged","fingerprint":"fp"}`, "Authorization", "", "Idempotency-Key", "k"), http.StatusUnauthorized)
		}
	})

	t.Run("ConcurrentPurchasesRunOnce", func(t *testing.T) {
		t.Parallel()
		b, srv := setupServer(t)
		setupPolicy(t, b)
		const n = 8
		results := make([]response, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				results[i] = b.send(t, srv, http.MethodPost, "/v1/purchase", purchaseBody(b, "race@example.com"), "Authorization", "", "Idempotency-Key", "race")
			})
		}
		wg.Wait()
		requireRanOnce(t, results)
		require.Equal(t, 1, payinCount(t, b))
	})
}

// requireRanOnce checks that of concurrent requests with one Idempotency-Key exactly one ran:
// the others replayed its answer or were told it was still in progress (409).
func requireRanOnce(t *testing.T, results []response) {
	t.Helper()
	executed := 0
	for _, r := range results {
		switch {
		case r.status == http.StatusCreated && r.header.Get("Idempotent-Replayed") == "":
			executed++
		case r.status == http.StatusCreated:
		default:
			requireCode(t, r, http.StatusConflict, api.CodeIdempotencyKeyInFlight)
		}
	}
	require.Equal(t, 1, executed)
}
