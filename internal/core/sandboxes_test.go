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
	start := time.Now()
	got, err := core.SandboxReset(ctx, tx, factory.Step(), core.SandboxResetParams{TenantID: reset.ID, Clock: &restart})
	require.NoError(t, err)
	t.Logf("reset of %d rows took %s", sum(got.Deleted), time.Since(start))
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

func sum(counts map[string]int64) int64 {
	var n int64
	for _, c := range counts {
		n += c
	}
	return n
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
