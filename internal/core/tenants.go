package core

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// TenantCreateParams is a new tenant.
type TenantCreateParams struct {
	// Slug names the tenant in URLs (its public key's path); unique.
	Slug string
	// Name is the tenant's display name.
	Name string
}

// TenantCreate creates a tenant, gives it its licence signing key (sealed with st.Box) and
// audits it (tenant.create). A taken slug is ErrDuplicate; a malformed one is ErrInvalid.
func TenantCreate(ctx context.Context, tx pgx.Tx, st Step, p TenantCreateParams) (sql.Tenant, error) {
	tenant, err := queries.TenantCreate(ctx, tx, sql.TenantCreateParams{ID: NewID(), Slug: p.Slug, Name: p.Name, Now: st.Now})
	if err != nil {
		return sql.Tenant{}, fmt.Errorf("create tenant %q: %w", p.Slug, err)
	}
	if err := SigningKeyCreate(ctx, tx, st, tenant.ID); err != nil {
		return sql.Tenant{}, err
	}
	err = Audit(ctx, tx, st, Change{TenantID: tenant.ID,
		Action: "tenant.create", SubjectType: "tenant", SubjectID: tenant.ID.String(),
		Details: map[string]string{"slug": p.Slug, "name": p.Name},
	})
	return tenant, err
}
