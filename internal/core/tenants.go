package core

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// TenantCreateParams is a new tenant.
type TenantCreateParams struct {
	// Slug names the tenant in URLs (its public key's path); unique.
	Slug string
	// Name is the tenant's display name.
	Name string
	// SandboxClock makes a sandbox tenant whose clock stands at this instant (it is created,
	// and everything it does happens, at that time until its clock is moved forward); nil
	// (the default) makes a live tenant, on real time. The mode cannot change later.
	SandboxClock *time.Time
}

// TenantCreate creates a tenant, gives it its licence signing key (sealed with st.Box) and
// audits it (tenant.create). A taken slug is ErrDuplicate; a malformed one is ErrInvalid.
// A sandbox tenant is created at its own clock, not st.Now.
func TenantCreate(ctx context.Context, tx pgx.Tx, st Step, p TenantCreateParams) (sql.Tenant, error) {
	details := map[string]string{"slug": p.Slug, "name": p.Name}
	if p.SandboxClock != nil {
		st.Now = *p.SandboxClock
		details["sandbox_clock"] = p.SandboxClock.UTC().Format(time.RFC3339Nano)
	}
	tenant, err := queries.TenantCreate(ctx, tx, sql.TenantCreateParams{ID: NewID(), Slug: p.Slug, Name: p.Name, Now: st.Now, ClockAt: p.SandboxClock})
	if err != nil {
		return sql.Tenant{}, fmt.Errorf("create tenant %q: %w", p.Slug, err)
	}
	if err := SigningKeyCreate(ctx, tx, st, tenant.ID); err != nil {
		return sql.Tenant{}, err
	}
	err = Audit(ctx, tx, st, Change{TenantID: tenant.ID,
		Action: "tenant.create", SubjectType: "tenant", SubjectID: tenant.ID.String(),
		Details: details,
	})
	return tenant, err
}
