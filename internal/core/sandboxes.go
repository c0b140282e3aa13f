package core

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// SandboxResetParams names the sandbox tenant to reset and where its clock restarts.
type SandboxResetParams struct {
	// TenantID is the tenant whose data is deleted; a live tenant is refused.
	TenantID uuid.UUID
	// Clock is the instant the tenant's clock restarts at: any instant, even before its
	// clock, since nothing is left that happened after it. Nil keeps the clock where it is.
	Clock *time.Time
}

// SandboxResetResult is what a reset did: the tenant as it is now, and the rows deleted per table.
type SandboxResetResult struct {
	Tenant sql.Tenant
	// Deleted counts the rows deleted per table, tables with none left out; river_job counts
	// the tenant's unfinished jobs.
	Deleted map[string]int64
}

// SandboxReset deletes all of a sandbox tenant's data in tx — every row of every table
// with a tenant_id column but its API keys and signing key, the audit log included, and its
// unfinished River jobs — and restarts its clock at p.Clock when given (the database function
// tenant_reset, migration 00028, walks the catalog, so a table added later is covered). It
// audits the reset (sandbox.reset) at the tenant's clock after it, by st.Actor, as the first
// entry of the emptied audit log. A live tenant is ErrSandboxOnly and nothing is deleted.
func SandboxReset(ctx context.Context, tx pgx.Tx, st Step, p SandboxResetParams) (SandboxResetResult, error) {
	before, err := sandboxTenant(ctx, tx, p.TenantID, "reset")
	if err != nil {
		return SandboxResetResult{}, err
	}
	rows, err := queries.TenantReset(ctx, tx, sql.TenantResetParams{TenantID: p.TenantID, RestartAt: p.Clock})
	if err != nil {
		return SandboxResetResult{}, fmt.Errorf("reset tenant %s: %w", p.TenantID, err)
	}
	out := SandboxResetResult{Deleted: make(map[string]int64, len(rows))}
	for _, r := range rows {
		out.Deleted[r.TableName] = r.Deleted
	}
	if out.Tenant, err = queries.TenantGet(ctx, tx, p.TenantID); err != nil {
		return SandboxResetResult{}, fmt.Errorf("read reset tenant %s: %w", p.TenantID, err)
	}
	st.Now = *out.Tenant.ClockAt
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "sandbox.reset", SubjectType: "tenant", SubjectID: p.TenantID.String(),
		Details: map[string]any{"clock_before": before.ClockAt, "clock": out.Tenant.ClockAt, "deleted": out.Deleted},
	})
	return out, err
}

// sandboxTenant reads a tenant that action needs to be a sandbox: a live tenant is
// ErrSandboxOnly.
func sandboxTenant(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, action string) (sql.Tenant, error) {
	tenant, err := queries.TenantGet(ctx, tx, tenantID)
	if err != nil {
		return sql.Tenant{}, fmt.Errorf("read tenant %s: %w", tenantID, err)
	}
	if tenant.ClockAt == nil {
		return sql.Tenant{}, fmt.Errorf("%w: tenant %s is live; only a sandbox tenant can be %s", ErrSandboxOnly, tenant.Slug, action)
	}
	return tenant, nil
}
