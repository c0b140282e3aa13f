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
// entry of the emptied audit log. A live tenant is ErrSandboxOnly and nothing is deleted; a
// running advance of its clock is ErrClockAdvanceRunning.
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

// sandboxTenant reads a tenant that action needs to be a sandbox whose clock stands still: a
// live tenant is ErrSandboxOnly, and a sandbox whose clock advance is running is
// ErrClockAdvanceRunning (the advance moves the clock and the data it would reset or copy).
func sandboxTenant(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, action string) (sql.Tenant, error) {
	tenant, err := queries.TenantGet(ctx, tx, tenantID)
	if err != nil {
		return sql.Tenant{}, fmt.Errorf("read tenant %s: %w", tenantID, err)
	}
	if tenant.ClockAt == nil {
		return sql.Tenant{}, fmt.Errorf("%w: tenant %s is live; only a sandbox tenant can be %s", ErrSandboxOnly, tenant.Slug, action)
	}
	running, err := queries.TenantClockAdvanceRunning(ctx, tx, tenantID)
	if err != nil {
		return sql.Tenant{}, fmt.Errorf("find a running advance of tenant %s: %w", tenantID, err)
	}
	if running {
		return sql.Tenant{}, fmt.Errorf("%w: an advance of this clock is running; wait for it to finish (GET /v1/admin/clock/advances) before the sandbox is %s", ErrClockAdvanceRunning, action)
	}
	return tenant, nil
}

// SandboxCloneParams names the sandbox tenant to clone and the clone's slug and name.
type SandboxCloneParams struct {
	// TenantID is the tenant cloned; a live tenant is refused.
	TenantID uuid.UUID
	// Slug and Name are the new tenant's (see TenantCreateParams); a taken slug is ErrDuplicate.
	Slug string
	Name string
}

// SandboxCloneResult is a clone: the new tenant, its first admin key with the secret (shown
// once), and the rows copied per table.
type SandboxCloneResult struct {
	Tenant sql.Tenant
	Key    sql.APIKey
	Secret string
	// Copied counts the rows copied per table, tables with none left out; river_job counts
	// the unfinished jobs.
	Copied map[string]int64
}

// SandboxClone creates, in tx, a new sandbox tenant at the clock of sandbox tenant
// p.TenantID with a copy of all its data (the database function tenant_clone, migration
// 00028; Idempotency-Keys are not copied) and its unfinished jobs, and gives it an admin key.
// The clone has its own signing key: every licence keeps its id and gets a key re-signed with
// it, and the old key is replaced by the new one wherever it was written (events, audit
// details, job args). PayIns, whose ids are unique across tenants, get new ids in the same
// order, replaced in every column that names them. Webhook endpoints keep their secrets
// (sealed by endpoint id); an upstream store's API key, sealed by tenant, must be resealed by
// upstream.StoreKeysReseal in the same transaction. The clone is audited (sandbox.clone) in
// both tenants. A live tenant is ErrSandboxOnly; a running advance of its clock is
// ErrClockAdvanceRunning.
func SandboxClone(ctx context.Context, tx pgx.Tx, st Step, p SandboxCloneParams) (SandboxCloneResult, error) {
	source, err := sandboxTenant(ctx, tx, p.TenantID, "cloned")
	if err != nil {
		return SandboxCloneResult{}, err
	}
	st.Now = *source.ClockAt
	var out SandboxCloneResult
	if out.Tenant, err = TenantCreate(ctx, tx, st, TenantCreateParams{Slug: p.Slug, Name: p.Name, SandboxClock: source.ClockAt}); err != nil {
		return SandboxCloneResult{}, err
	}
	keys, err := cloneLicenseKeys(ctx, tx, st, sql.TenantCloneParams{SourceID: source.ID, CloneID: out.Tenant.ID})
	if err != nil {
		return SandboxCloneResult{}, err
	}
	rows, err := queries.TenantClone(ctx, tx, keys)
	if err != nil {
		return SandboxCloneResult{}, fmt.Errorf("clone tenant %s: %w", source.Slug, err)
	}
	out.Copied = make(map[string]int64, len(rows))
	for _, r := range rows {
		out.Copied[r.TableName] = r.Copied
	}
	if out.Key, out.Secret, err = APIKeyCreate(ctx, tx, st, APIKeyCreateParams{TenantID: out.Tenant.ID, Name: "clone of " + source.Slug}); err != nil {
		return SandboxCloneResult{}, err
	}
	details := map[string]any{"source": source.ID, "source_slug": source.Slug, "clone": out.Tenant.ID, "clone_slug": out.Tenant.Slug, "copied": out.Copied}
	for _, tenantID := range []uuid.UUID{source.ID, out.Tenant.ID} {
		err := Audit(ctx, tx, st, Change{TenantID: tenantID,
			Action: "sandbox.clone", SubjectType: "tenant", SubjectID: out.Tenant.ID.String(), Details: details,
		})
		if err != nil {
			return SandboxCloneResult{}, err
		}
	}
	return out, nil
}

// cloneLicenseKeys returns p with the keys of the source tenant's licences (OldKeys) and, in
// the same order, the keys of the same licences signed by the clone (NewKeys).
func cloneLicenseKeys(ctx context.Context, tx pgx.Tx, st Step, p sql.TenantCloneParams) (sql.TenantCloneParams, error) {
	licenses, err := queries.LicenseKeyList(ctx, tx, p.SourceID)
	if err != nil {
		return sql.TenantCloneParams{}, fmt.Errorf("read licence keys of tenant %s: %w", p.SourceID, err)
	}
	signer, err := SigningKeyPrivate(ctx, tx, SigningKeyPrivateParams{TenantID: p.CloneID, Box: st.Box})
	if err != nil {
		return sql.TenantCloneParams{}, err
	}
	p.OldKeys, p.NewKeys = make([]string, len(licenses)), make([]string, len(licenses))
	for i, l := range licenses {
		p.OldKeys[i], p.NewKeys[i] = l.Key, signer.Sign(l.ID)
	}
	return p, nil
}
