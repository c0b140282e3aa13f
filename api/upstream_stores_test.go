package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

type upstreamStore struct {
	ID           string `json:"id"`
	Kind         string `json:"kind"`
	Name         string `json:"name"`
	BaseURL      string `json:"base_url"`
	PolicyID     string `json:"policy_id"`
	Enabled      bool   `json:"enabled"`
	RevokeOnGone bool   `json:"revoke_on_gone"`
}

type importResult struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
}

type queueItem struct {
	LicenseID            string  `json:"license_id"`
	ExternalLicenseID    string  `json:"external_license_id"`
	TermRevokedCount     float64 `json:"term_revoked_count"`
	TermRecentRevocation float64 `json:"term_recent_revocation"`
	TermRevokedHours     float64 `json:"term_revoked_hours"`
	TermOwnerHours       float64 `json:"term_owner_hours"`
	TermLicenseAge       float64 `json:"term_license_age"`
	TermStaleness        float64 `json:"term_staleness"`
	Score                float64 `json:"score"`
}

// createStore connects a store through the API.
func (b *bundle) createStore(t *testing.T) upstreamStore {
	t.Helper()
	policy := factory.Policy(t, b.db, b.tenant.ID)
	res := b.request(t, http.MethodPost, "/v1/admin/upstream-stores",
		fmt.Sprintf(`{"kind":"jinxxy","name":"Jinxxy","base_url":"https://store.example.com/v1","api_key":"sk-secret-123","policy_id":%q}`, policy.ID))
	require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	return decode[upstreamStore](t, res)
}

func (b *bundle) licenseCount(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.QueryRow(context.Background(), "SELECT count(*) FROM licenses WHERE tenant_id = $1", b.tenant.ID).Scan(&n))
	return n
}

func TestUpstreamStores(t *testing.T) {
	t.Parallel()

	t.Run("CreateGetUpdateNeverReturnsKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		store := b.createStore(t)
		require.True(t, store.Enabled)
		require.False(t, store.RevokeOnGone)
		res := b.request(t, http.MethodGet, "/v1/admin/upstream-stores/"+store.ID, "")
		require.Equal(t, http.StatusOK, res.status)
		require.NotContains(t, string(res.body), "sk-secret-123")
		require.NotContains(t, string(res.body), "api_key")
		res = b.request(t, http.MethodPatch, "/v1/admin/upstream-stores/"+store.ID, `{"enabled":false,"revoke_on_gone":true,"api_key":"sk-new"}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		updated := decode[upstreamStore](t, res)
		require.False(t, updated.Enabled)
		require.True(t, updated.RevokeOnGone)
		require.NotContains(t, string(res.body), "sk-new")
		var sealed []byte
		require.NoError(t, b.db.QueryRow(context.Background(), "SELECT api_key_sealed FROM upstream_stores WHERE tenant_id = $1", b.tenant.ID).Scan(&sealed))
		require.NotContains(t, string(sealed), "sk-new", "sealed at rest")
		list := decode[page[upstreamStore]](t, b.request(t, http.MethodGet, "/v1/admin/upstream-stores", ""))
		require.Len(t, list.Items, 1)
	})

	t.Run("BadInputIsNever500", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/upstream-stores",
			`{"kind":"jinxxy","name":"J","base_url":"ftp://x","api_key":"k","policy_id":"`+factory.Policy(t, b.db, b.tenant.ID).ID.String()+`"}`), http.StatusUnprocessableEntity)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/upstream-stores",
			`{"kind":"jinxxy","name":"J","base_url":"https://x","api_key":"k","policy_id":"01920000-0000-7000-8000-000000000000"}`), http.StatusUnprocessableEntity)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/upstream-stores", `{"kind":"gumroad"}`), http.StatusUnprocessableEntity)
		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/upstream-stores/01920000-0000-7000-8000-000000000000", ""), http.StatusNotFound)
		requireProblem(t, b.request(t, http.MethodPatch, "/v1/admin/upstream-stores/01920000-0000-7000-8000-000000000000", `{"enabled":true}`), http.StatusNotFound)
		store := b.createStore(t)
		for _, body := range []string{"", "   ", "[", "[1,2]", "{", `{"external_license_id":"a"} trailing`, "null", "\x00\x01", `[{"external_license_id":"a","owner":"o","acquired_at":"2020-01-01T00:00:00Z","extra":1}]`} {
			res := b.request(t, http.MethodPost, "/v1/admin/upstream-stores/"+store.ID+"/imports", body, "Content-Type", "application/x-ndjson")
			require.Contains(t, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}, res.status, "body %q: %s", body, res.body)
		}
		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/upstream-stores/01920000-0000-7000-8000-000000000000/imports",
			`{"external_license_id":"a","owner":"o","acquired_at":"2020-01-01T00:00:00Z"}`), http.StatusNotFound)
	})

	t.Run("ImportIsIdempotent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		store := b.createStore(t)
		ndjson := `{"external_license_id":"L1","owner":"u1","acquired_at":"2025-06-01T10:00:00Z","activations":[{"fingerprint":"fp-1"}]}
{"external_license_id":"L2","owner":"u1","acquired_at":"2025-07-01T10:00:00Z"}

{"external_license_id":"L3","owner":"u2","owner_email":"bob@example.com","acquired_at":"2025-08-01T10:00:00Z"}
`
		res := b.request(t, http.MethodPost, "/v1/admin/upstream-stores/"+store.ID+"/imports", ndjson, "Content-Type", "application/x-ndjson")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.Equal(t, importResult{Created: 3}, decode[importResult](t, res))
		require.Equal(t, 3, b.licenseCount(t))

		array := `[{"external_license_id":"L1","owner":"u1","acquired_at":"2025-06-01T10:00:00Z","activations":[{"fingerprint":"fp-1"},{"fingerprint":"fp-2"}]},
			{"external_license_id":"L2","owner":"u2","acquired_at":"2025-07-01T10:00:00Z"},
			{"external_license_id":"L3","owner":"u2","owner_email":"bob@example.com","acquired_at":"2025-08-01T10:00:00Z"}]`
		res = b.request(t, http.MethodPost, "/v1/admin/upstream-stores/"+store.ID+"/imports", array)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.Equal(t, importResult{Updated: 2, Unchanged: 1}, decode[importResult](t, res), "a new activation and a new owner")
		res = b.request(t, http.MethodPost, "/v1/admin/upstream-stores/"+store.ID+"/imports", array)
		require.Equal(t, importResult{Unchanged: 3}, decode[importResult](t, res))
		require.Equal(t, 3, b.licenseCount(t), "never duplicated")

		var customers, machines, unrevoked int
		ctx := context.Background()
		require.NoError(t, b.db.QueryRow(ctx, "SELECT count(DISTINCT customer_id) FROM licenses WHERE tenant_id = $1", b.tenant.ID).Scan(&customers))
		require.NoError(t, b.db.QueryRow(ctx, "SELECT count(*) FROM machines WHERE tenant_id = $1", b.tenant.ID).Scan(&machines))
		require.NoError(t, b.db.QueryRow(ctx, "SELECT sum(unrevoked_count) FROM upstream_owner_stats WHERE tenant_id = $1", b.tenant.ID).Scan(&unrevoked))
		require.Equal(t, 2, customers)
		require.Equal(t, 2, machines)
		require.Equal(t, 3, unrevoked)
		var u1, u2 int
		require.NoError(t, b.db.QueryRow(ctx, `SELECT
			(SELECT s.unrevoked_count FROM upstream_owner_stats s JOIN upstream_owners o USING (tenant_id, customer_id) WHERE o.tenant_id = $1 AND o.external_owner_id = 'u1'),
			(SELECT s.unrevoked_count FROM upstream_owner_stats s JOIN upstream_owners o USING (tenant_id, customer_id) WHERE o.tenant_id = $1 AND o.external_owner_id = 'u2')`,
			b.tenant.ID).Scan(&u1, &u2))
		require.Equal(t, []int{1, 2}, []int{u1, u2}, "re-owning moved the licence's share of the aggregates")
	})

	t.Run("BadRowsNothingWritten", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		store := b.createStore(t)
		future := factory.Now.Add(time.Hour).Format(time.RFC3339)
		body := `{"external_license_id":"L1","owner":"u1","acquired_at":"2025-06-01T10:00:00Z"}
{"external_license_id":"","owner":"u1","acquired_at":"2025-06-01T10:00:00Z"}
{"external_license_id":"L3","owner":"u1","acquired_at":"` + future + `"}
not json
{"external_license_id":"L5","owner":"u1","acquired_at":"2025-06-01T10:00:00Z","activations":[{"fingerprint":"a"},{"fingerprint":"a"}]}
`
		res := b.request(t, http.MethodPost, "/v1/admin/upstream-stores/"+store.ID+"/imports", body, "Content-Type", "application/x-ndjson")
		p := requireProblem(t, res, http.StatusUnprocessableEntity)
		require.Contains(t, p.Detail, "4 rows are invalid")
		for _, loc := range []string{"body[1].external_license_id", "body[2].acquired_at", "body[3].row", "body[4].activations[1].fingerprint"} {
			require.Contains(t, string(res.body), loc)
		}
		require.Zero(t, b.licenseCount(t), "nothing half-written")
	})

	t.Run("QueueAndChecks", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		store := b.createStore(t)
		res := b.request(t, http.MethodPost, "/v1/admin/upstream-stores/"+store.ID+"/imports",
			`[{"external_license_id":"OLD","owner":"u1","acquired_at":"2024-01-01T00:00:00Z"},{"external_license_id":"NEW","owner":"u2","acquired_at":"2026-01-10T00:00:00Z"}]`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		queue := decode[struct{ Items []queueItem }](t, b.request(t, http.MethodGet, "/v1/admin/revocation/queue", ""))
		require.Empty(t, queue.Items, "no log channel: nothing is scanned")

		factory.LogChannel(t, b.db, b.tenant.ID)
		queue = decode[struct{ Items []queueItem }](t, b.request(t, http.MethodGet, "/v1/admin/revocation/queue?limit=5", ""))
		require.Len(t, queue.Items, 2)
		require.Equal(t, "NEW", queue.Items[0].ExternalLicenseID, "a newer licence is riskier")
		for _, it := range queue.Items {
			sum := it.TermRevokedCount + it.TermRecentRevocation + it.TermRevokedHours + it.TermOwnerHours + it.TermLicenseAge + it.TermStaleness
			require.InDelta(t, sum, it.Score, 1e-9)
			require.Less(t, it.TermLicenseAge, 0.0)
		}

		st := factory.Step()
		target, err := upstream.CheckTarget(context.Background(), b.db, sql.UpstreamLicenseForCheckParams{TenantID: b.tenant.ID, LicenseID: mustUUID(t, queue.Items[0].LicenseID)})
		require.NoError(t, err)
		tx, err := b.db.Begin(context.Background())
		require.NoError(t, err)
		require.NoError(t, upstream.RecordCheck(context.Background(), tx, st, upstream.RecordCheckParams{Target: target, Result: upstream.Result{Outcome: upstream.OutcomeError, Status: 503, Err: "unexpected status 503"}, Backoff: time.Minute}))
		require.NoError(t, tx.Commit(context.Background()))
		checks := decode[page[struct {
			Outcome        string `json:"outcome"`
			UpstreamStatus *int   `json:"upstream_status"`
		}]](t, b.request(t, http.MethodGet, "/v1/admin/licenses/"+queue.Items[0].LicenseID+"/checks", ""))
		require.Len(t, checks.Items, 1)
		require.Equal(t, "error", checks.Items[0].Outcome)
		require.Equal(t, 503, *checks.Items[0].UpstreamStatus)
		queue = decode[struct{ Items []queueItem }](t, b.request(t, http.MethodGet, "/v1/admin/revocation/queue", ""))
		require.Len(t, queue.Items, 1, "held back after an error")
		require.True(t, strings.HasPrefix(queue.Items[0].ExternalLicenseID, "OLD"))
	})
}

func mustUUID(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	require.NoError(t, err)
	return id
}

// TestImportDeadlockIsRetryable: an import re-owning a licence locks the licence and then its
// old owner's aggregates; the revocation check recording it gone locks them the other way
// round. When Postgres breaks that deadlock by aborting the import, the import answers 503
// with Retry-After (nothing was written), not 500, and its retry succeeds.
func TestImportDeadlockIsRetryable(t *testing.T) {
	t.Parallel()
	b, srv := setupServer(t)
	ctx := context.Background()
	store := b.createStore(t)
	imports := "/v1/admin/upstream-stores/" + store.ID + "/imports"
	res := b.send(t, srv, http.MethodPost, imports, `[{"external_license_id":"L1","owner":"u1","acquired_at":"2025-06-01T10:00:00Z"}]`)
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	var licenseID, ownerID uuid.UUID
	require.NoError(t, b.db.QueryRow(ctx, "SELECT license_id, customer_id FROM upstream_licenses WHERE tenant_id = $1", b.tenant.ID).Scan(&licenseID, &ownerID))

	// The check's order: the owner's aggregates, then the licence.
	check, err := b.db.Begin(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, pg.Rollback(ctx, check)) }()
	_, err = check.Exec(ctx, "SELECT 1 FROM upstream_owner_stats WHERE tenant_id = $1 AND customer_id = $2 FOR NO KEY UPDATE", b.tenant.ID, ownerID)
	require.NoError(t, err)
	reown := `[{"external_license_id":"L1","owner":"u2","acquired_at":"2025-06-01T10:00:00Z"}]`
	answer := make(chan response, 1)
	go func() { answer <- b.send(t, srv, http.MethodPost, imports, reown) }()
	require.Eventually(t, func() bool { // the import holds the licence and waits for the aggregates
		var waiting bool
		require.NoError(t, b.db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%upstream_owner_stats%')").Scan(&waiting))
		return waiting
	}, 10*time.Second, 10*time.Millisecond)
	_, err = check.Exec(ctx, "UPDATE upstream_licenses SET gone_at = $3 WHERE tenant_id = $1 AND license_id = $2", b.tenant.ID, licenseID, factory.Now)
	require.NoError(t, err, "Postgres aborted the import, which waited first")

	res = <-answer
	p := requireCode(t, res, http.StatusServiceUnavailable, api.CodeUnavailable)
	require.Contains(t, p.Detail, "deadlock")
	require.Equal(t, "2", res.header.Get("Retry-After"))
	require.NoError(t, pg.Rollback(ctx, check))
	res = b.send(t, srv, http.MethodPost, imports, reown)
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	require.Equal(t, importResult{Updated: 1}, decode[importResult](t, res))
}
