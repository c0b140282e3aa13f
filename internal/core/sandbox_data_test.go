package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

// tenantRows counts a tenant's rows in every table that holds tenant data, as the catalog
// lists them now (tenant_data_tables), and its unfinished and finished River jobs.
func tenantRows(t *testing.T, tx pgx.Tx, tenantID uuid.UUID) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	rows, err := tx.Query(ctx, "SELECT table_name FROM tenant_data_tables()")
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	counts := map[string]int64{}
	for _, table := range tables {
		var n int64
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()+" WHERE tenant_id = $1", tenantID).Scan(&n))
		counts[table] = n
	}
	for name, states := range map[string][]string{"river_job": {"available", "scheduled", "retryable", "running", "pending"}, "river_job finished": {"completed", "cancelled", "discarded"}} {
		var n int64
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE metadata->>'tenant_id' = $1 AND state::text = ANY($2)",
			tenantID.String(), states).Scan(&n))
		counts[name] = n
	}
	for _, table := range []string{"api_keys", "tenant_signing_keys"} {
		var n int64
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE tenant_id = $1", tenantID).Scan(&n))
		counts[table] = n
	}
	return counts
}

// requireEveryTableFilled fails naming the tables where the tenant has no row: a table added
// to the schema needs a row in factory.TenantData, so that the tests of whole-tenant
// operations cover it.
func requireEveryTableFilled(t *testing.T, counts map[string]int64) {
	t.Helper()
	var empty []string
	for table, n := range counts {
		if n == 0 {
			empty = append(empty, table)
		}
	}
	require.Empty(t, empty, "factory.TenantData leaves these tables without a row of the tenant")
}

// TestSandboxReset fills three tenants with a row in every table of tenant data, resets one
// sandbox at an earlier clock, and finds every one of its tables empty but the reset's own
// audit entry, its finished jobs, keys and signing key kept, and the other sandbox and the
// live tenant untouched.
func TestSandboxReset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := core.Tx(testdb.Tx(t))
	clock := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	reset, other, live := factory.SandboxTenant(t, tx, clock), factory.SandboxTenant(t, tx, clock), factory.Tenant(t, tx)
	before := map[uuid.UUID]map[string]int64{}
	for _, tenant := range []sql.Tenant{reset, other, live} {
		factory.APIKey(t, tx, tenant.ID)
		factory.TenantData(t, tx, tenant.ID)
		before[tenant.ID] = tenantRows(t, tx, tenant.ID)
		requireEveryTableFilled(t, before[tenant.ID])
	}

	restart := clock.AddDate(-1, 0, 0)
	got, err := core.SandboxReset(ctx, tx, factory.Step(), core.SandboxResetParams{TenantID: reset.ID, Clock: &restart})
	require.NoError(t, err)
	require.True(t, restart.Equal(*got.Tenant.ClockAt), "the clock restarts where asked, before the old one")

	after := tenantRows(t, tx, reset.ID)
	want := map[string]int64{}
	for table, n := range before[reset.ID] {
		want[table] = 0
		if table != "river_job finished" && table != "api_keys" && table != "tenant_signing_keys" && table != "audit_log" {
			require.Equal(t, n, got.Deleted[table], "rows deleted from %s", table)
		}
	}
	want["audit_log"] = 1
	want["river_job finished"] = before[reset.ID]["river_job finished"]
	want["api_keys"], want["tenant_signing_keys"] = before[reset.ID]["api_keys"], 1
	require.Equal(t, want, after)
	require.Equal(t, before[reset.ID]["audit_log"], got.Deleted["audit_log"])

	var action string
	var at time.Time
	require.NoError(t, tx.QueryRow(ctx, "SELECT action, occurred_at FROM audit_log WHERE tenant_id = $1", reset.ID).Scan(&action, &at))
	require.Equal(t, "sandbox.reset", action)
	require.True(t, restart.Equal(at), "the reset is audited at the restarted clock, not after it")

	for _, tenant := range []sql.Tenant{other, live} {
		require.Equal(t, before[tenant.ID], tenantRows(t, tx, tenant.ID), "tenant %s untouched", tenant.Slug)
	}
}

// TestSandboxResetRefusals: a live tenant is refused with nothing deleted, and the guards a
// reset passes stay closed around it — a sandbox clock still cannot be moved backwards nor
// the audit log deleted, before or after a reset in the same transaction.
func TestSandboxResetRefusals(t *testing.T) {
	t.Parallel()

	t.Run("Live", func(t *testing.T) {
		t.Parallel()
		tx := core.Tx(testdb.Tx(t))
		live := factory.Tenant(t, tx)
		factory.TenantData(t, tx, live.ID)
		before := tenantRows(t, tx, live.ID)
		_, err := core.SandboxReset(context.Background(), tx, factory.Step(), core.SandboxResetParams{TenantID: live.ID})
		require.ErrorIs(t, err, core.ErrSandboxOnly)
		require.Equal(t, before, tenantRows(t, tx, live.ID))
		_, err = tx.Exec(context.Background(), "SELECT * FROM tenant_reset($1, NULL)", live.ID)
		require.ErrorIs(t, err, core.ErrInvalid, "the database refuses a live tenant's reset too")
		require.ErrorContains(t, err, "tenants_sandbox_only")
	})

	t.Run("GuardsStayClosed", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		tx := core.Tx(testdb.Tx(t))
		clock := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
		sandbox := factory.SandboxTenant(t, tx, clock)
		backwards := func() error {
			_, err := tx.Exec(ctx, "UPDATE tenants SET clock_at = clock_at - interval '1 second' WHERE id = $1", sandbox.ID)
			return err
		}
		deleteAudit := func() error {
			_, err := tx.Exec(ctx, "DELETE FROM audit_log WHERE tenant_id = $1", sandbox.ID)
			return err
		}
		for _, when := range []string{"before", "after"} {
			if when == "after" {
				_, err := core.SandboxReset(ctx, tx, factory.Step(), core.SandboxResetParams{TenantID: sandbox.ID})
				require.NoError(t, err)
			}
			require.ErrorContains(t, savepoint(t, tx, backwards), "tenants_clock_forward", when)
			require.ErrorContains(t, savepoint(t, tx, deleteAudit), "append-only", when)
		}
	})
}

// TestSandboxDataAdvanceRunning: while an advance of its clock runs, a sandbox is neither reset
// nor cloned, and nothing changes.
func TestSandboxDataAdvanceRunning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := core.Tx(testdb.Tx(t))
	clock := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	sandbox := factory.SandboxTenant(t, tx, clock)
	factory.TenantData(t, tx, sandbox.ID)
	st := factory.Step()
	st.Now = clock
	_, err := core.ClockAdvanceStart(ctx, tx, st, core.ClockAdvanceParams{TenantID: sandbox.ID, By: "1mo"})
	require.NoError(t, err)
	before := tenantRows(t, tx, sandbox.ID)
	_, err = core.SandboxReset(ctx, tx, st, core.SandboxResetParams{TenantID: sandbox.ID})
	require.ErrorIs(t, err, core.ErrClockAdvanceRunning)
	_, err = core.SandboxClone(ctx, tx, st, core.SandboxCloneParams{TenantID: sandbox.ID, Slug: "clone-" + sandbox.Slug, Name: "Clone"})
	require.ErrorIs(t, err, core.ErrClockAdvanceRunning)
	require.Equal(t, before, tenantRows(t, tx, sandbox.ID))
}

// savepoint runs fn in a savepoint of tx, rolled back when fn fails, and returns fn's error.
func savepoint(t *testing.T, tx pgx.Tx, fn func() error) error {
	t.Helper()
	ctx := context.Background()
	_, err := tx.Exec(ctx, "SAVEPOINT guard")
	require.NoError(t, err)
	err = fn()
	if err != nil {
		_, rollbackErr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT guard")
		require.NoError(t, rollbackErr)
	}
	return err
}

// TestSandboxClone clones a sandbox filled in every table of tenant data: the clone has as
// many rows in each (but Idempotency-Keys), at the same clock; its licences keep their ids
// and get keys of its own signing key, which find its licences and not the source's; its
// PayIns have new ids, and no row of the clone names a PayIn of the source; its store's key
// opens for it; and the source is unchanged but for the audit entry of the clone.
func TestSandboxClone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := core.Tx(testdb.Tx(t))
	clock := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	source := factory.SandboxTenant(t, tx, clock)
	factory.APIKey(t, tx, source.ID)
	factory.TenantData(t, tx, source.ID)
	before := tenantRows(t, tx, source.ID)
	requireEveryTableFilled(t, before)

	st := factory.Step()
	clone, err := core.SandboxClone(ctx, tx, st, core.SandboxCloneParams{TenantID: source.ID, Slug: "clone-" + source.Slug, Name: "Clone"})
	require.NoError(t, err)
	require.NoError(t, upstream.StoreKeysReseal(ctx, tx, st, upstream.StoreKeysResealParams{SourceID: source.ID, CloneID: clone.Tenant.ID}))
	require.True(t, clock.Equal(*clone.Tenant.ClockAt))
	require.Regexp(t, `^tsk_test_`, clone.Secret)

	after := tenantRows(t, tx, source.ID)
	require.Equal(t, before["audit_log"]+1, after["audit_log"], "the source audits the clone")
	after["audit_log"] = before["audit_log"]
	require.Equal(t, before, after, "the source is unchanged")

	copied := tenantRows(t, tx, clone.Tenant.ID)
	for table, n := range before {
		switch table {
		case "idempotency_keys":
			require.Zero(t, copied[table])
		case "river_job finished":
			require.Zero(t, copied[table], "finished jobs are history, not copied")
		case "audit_log":
			require.Equal(t, n+3, copied[table], "copied, and the clone's tenant.create, api_key.create and sandbox.clone")
		case "api_keys", "tenant_signing_keys":
			require.Equal(t, int64(1), copied[table])
		default:
			require.Equal(t, n, copied[table], "rows of %s", table)
			require.Equal(t, n, clone.Copied[table], "rows copied to %s", table)
		}
	}

	var leaks int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM payins s JOIN payins c ON c.id = s.id WHERE s.tenant_id = $1 AND c.tenant_id = $2`,
		source.ID, clone.Tenant.ID).Scan(&leaks))
	require.Zero(t, leaks, "PayIns got new ids")
	for _, q := range []string{
		`SELECT count(*) FROM payin_transitions WHERE tenant_id = $2 AND payin_id IN (SELECT id FROM payins WHERE tenant_id = $1)`,
		`SELECT count(*) FROM events WHERE tenant_id = $2 AND data::text LIKE '%' || $1::text || '%'`,
		`SELECT count(*) FROM river_job WHERE metadata->>'tenant_id' = $2::text AND args::text LIKE '%' || $1::text || '%'`,
		`SELECT count(*) FROM payin_invoices c JOIN payin_invoices s ON s.provider_invoice_id = c.provider_invoice_id WHERE s.tenant_id = $1 AND c.tenant_id = $2`,
	} {
		require.NoError(t, tx.QueryRow(ctx, q, source.ID, clone.Tenant.ID).Scan(&leaks))
		require.Zero(t, leaks, q)
	}
	var sandboxInvoices, misnamed int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE provider_invoice_id <> 'sbx_' || replace(payin_id::text, '-', '')
		OR checkout_url <> '/v1/sandbox/invoices/' || provider_invoice_id) FROM payin_invoices WHERE tenant_id = $1 AND provider = 'sandbox'`,
		clone.Tenant.ID).Scan(&sandboxInvoices, &misnamed))
	require.Positive(t, sandboxInvoices)
	require.Zero(t, misnamed, "a sandbox invoice's id and checkout follow its PayIn's new id")
	var orphans int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM payin_transitions t WHERE tenant_id = $1
		AND NOT EXISTS (SELECT FROM payins p WHERE p.tenant_id = t.tenant_id AND p.id = t.payin_id)`, clone.Tenant.ID).Scan(&orphans))
	require.Zero(t, orphans)

	licenses, err := sql.New().LicenseKeyList(ctx, tx, clone.Tenant.ID)
	require.NoError(t, err)
	require.NotEmpty(t, licenses)
	for _, l := range licenses {
		found, err := core.LicenseByKey(ctx, tx, l.Key)
		require.NoError(t, err)
		require.Equal(t, clone.Tenant.ID, found.TenantID)
		require.Equal(t, l.ID, found.ID, "a licence keeps its id")
		original, err := sql.New().LicenseGet(ctx, tx, sql.LicenseGetParams{TenantID: source.ID, ID: l.ID})
		require.NoError(t, err)
		require.NotEqual(t, original.Key, l.Key)
		found, err = core.LicenseByKey(ctx, tx, original.Key)
		require.NoError(t, err)
		require.Equal(t, source.ID, found.TenantID, "the source's key still finds the source's licence")
	}

	stores, err := sql.New().UpstreamStoreList(ctx, tx, sql.UpstreamStoreListParams{TenantID: clone.Tenant.ID, RowLimit: 10})
	require.NoError(t, err)
	require.Len(t, stores, 1)
	key, err := upstream.UnsealAPIKey(factory.Box, upstream.Target{TenantID: clone.Tenant.ID, StoreID: stores[0].ID, APIKeySealed: stores[0].APIKeySealed})
	require.NoError(t, err)
	require.Equal(t, "store-key", key)
}

// TestSandboxCloneLive: a live tenant is not cloned, and no tenant is created.
func TestSandboxCloneLive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := core.Tx(testdb.Tx(t))
	live := factory.Tenant(t, tx)
	_, err := core.SandboxClone(ctx, tx, factory.Step(), core.SandboxCloneParams{TenantID: live.ID, Slug: "clone-" + live.Slug, Name: "Clone"})
	require.ErrorIs(t, err, core.ErrSandboxOnly)
	_, err = sql.New().TenantGetBySlug(ctx, tx, "clone-"+live.Slug)
	require.ErrorIs(t, err, core.ErrNotFound)
}
