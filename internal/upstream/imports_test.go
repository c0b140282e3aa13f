package upstream_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

// FuzzParseRows feeds untrusted import bodies to ParseRows: it never panics, fails only with
// core.ErrInvalid, and what it accepts is non-empty and within the rules.
func FuzzParseRows(f *testing.F) {
	for _, seed := range []string{
		`{"external_license_id":"L1","owner":"u1","acquired_at":"2025-06-01T10:00:00Z"}`,
		"[{\"external_license_id\":\"L1\",\"owner\":\"u1\",\"acquired_at\":\"2025-06-01T10:00:00Z\",\"activations\":[{\"fingerprint\":\"a\"}]}]",
		"{\"external_license_id\":\"L1\",\"owner\":\"u1\",\"acquired_at\":\"2025-06-01T10:00:00Z\"}\n\n{\"external_license_id\":\"L2\",\"owner\":\"u\",\"owner_email\":\"a@b\",\"acquired_at\":\"2020-01-01T00:00:00Z\"}\n",
		"", "[", "[]", "null", "{}", "[1]", "\x00", `{"external_license_id":"x","owner":"o","acquired_at":"2099-01-01T00:00:00Z"}`,
	} {
		f.Add([]byte(seed))
	}
	now := factory.Now
	f.Fuzz(func(t *testing.T, body []byte) {
		rows, err := upstream.ParseRows(bytes.NewReader(body), now)
		if err != nil {
			require.ErrorIs(t, err, core.ErrInvalid)
			return
		}
		require.NotEmpty(t, rows)
		for _, r := range rows {
			require.NotEmpty(t, r.ExternalLicenseID)
			require.NotEmpty(t, r.Owner)
			require.False(t, r.AcquiredAt.After(now))
		}
	})
}

// TestRecordCheckGoneOnceUnderRace records the same gone answer from several goroutines on
// their own connections: the licence goes once, one event, the aggregates move once.
func TestRecordCheckGoneOnceUnderRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clone, _ := testdb.Clone(t)
	pool := core.DB(clone) // translated at the data boundary, as the API and the jobs have it
	tenant := factory.Tenant(t, pool)
	factory.LogChannel(t, pool, tenant.ID)
	store := factory.UpstreamStore(t, pool, tenant.ID, "https://store.example.com", "k")
	ids := factory.UpstreamImport(t, pool, store, factory.UpstreamRow("L1", "u1", factory.Now.Add(-time.Hour)))
	target, err := upstream.CheckTarget(ctx, pool, sql.UpstreamLicenseForCheckParams{TenantID: tenant.ID, LicenseID: ids["L1"]})
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pg.InTx(ctx, pool, func(tx pgx.Tx) error {
				return upstream.RecordCheck(ctx, tx, factory.Step(), upstream.RecordCheckParams{Target: target, Result: upstream.Result{Outcome: upstream.OutcomeGone, Status: 404}, Backoff: time.Minute})
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var events, checks, revoked, unrevoked int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'license.upstream_revoked'", tenant.ID).Scan(&events))
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM upstream_license_checks WHERE tenant_id = $1", tenant.ID).Scan(&checks))
	require.NoError(t, pool.QueryRow(ctx, "SELECT revoked_count, unrevoked_count FROM upstream_owner_stats WHERE tenant_id = $1", tenant.ID).Scan(&revoked, &unrevoked))
	require.Equal(t, 1, events)
	require.Equal(t, 8, checks, "every answer is recorded")
	require.Equal(t, []int{1, 0}, []int{revoked, unrevoked})
}

// TestImportConcurrentSameLicence imports the same new licence from several transactions
// at once: exactly one licence exists afterwards, and every import either succeeded or was
// refused as a conflict, never half-written.
func TestImportConcurrentSameLicence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clone, _ := testdb.Clone(t)
	pool := core.DB(clone) // translated at the data boundary, as the API and the jobs have it
	tenant := factory.Tenant(t, pool)
	store := factory.UpstreamStore(t, pool, tenant.ID, "https://store.example.com", "k")
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pg.InTx(ctx, core.DB(pool), func(tx pgx.Tx) error {
				im, err := upstream.NewImporter(ctx, tx, factory.Step(), upstream.ImporterParams{TenantID: tenant.ID, StoreID: store.ID})
				if err != nil {
					return err
				}
				return im.Import(ctx, 0, factory.UpstreamRow("SAME", "u1", factory.Now.Add(-time.Hour)))
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, core.ErrConflict) {
			require.NoError(t, err)
		}
	}
	var licences, unrevoked int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM licenses WHERE tenant_id = $1", tenant.ID).Scan(&licences))
	require.NoError(t, pool.QueryRow(ctx, "SELECT coalesce(sum(unrevoked_count), 0) FROM upstream_owner_stats WHERE tenant_id = $1", tenant.ID).Scan(&unrevoked))
	require.Equal(t, 1, licences)
	require.Equal(t, 1, unrevoked, "the aggregates count it once")
}

// TestImportCreatesOwnerCustomer imports a licence of an owner Tessera does not know: the
// owner becomes a customer through core.CustomerCreate, with the same 10-character invite
// code the API gives, and the import is audited as one entry, not one per customer.
func TestImportCreatesOwnerCustomer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := testdb.Tx(t)
	tenant := factory.Tenant(t, tx)
	store := factory.UpstreamStore(t, tx, tenant.ID, "https://store.example.com", "k")
	im, err := upstream.NewImporter(ctx, tx, factory.Step(), upstream.ImporterParams{TenantID: tenant.ID, StoreID: store.ID})
	require.NoError(t, err)
	require.NoError(t, im.Import(ctx, 0, factory.UpstreamRow("L1", "u1", factory.Now.Add(-time.Hour))))
	require.NoError(t, im.Finish(ctx))
	var inviteCode string
	require.NoError(t, tx.QueryRow(ctx, "SELECT invite_code FROM customers WHERE tenant_id = $1", tenant.ID).Scan(&inviteCode))
	require.Regexp(t, `^[A-HJ-NP-Z2-9]{10}$`, inviteCode, "core.NewInviteCode's code")
	var actions []string
	rows, err := tx.Query(ctx, "SELECT action FROM audit_log WHERE tenant_id = $1 ORDER BY action", tenant.ID)
	require.NoError(t, err)
	for rows.Next() {
		var action string
		require.NoError(t, rows.Scan(&action))
		actions = append(actions, action)
	}
	require.NoError(t, rows.Err())
	require.NotContains(t, actions, "customer.create")
	require.Contains(t, actions, "upstream_store.import")
}
