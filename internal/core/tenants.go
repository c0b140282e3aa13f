package core

import (
	"context"
	"fmt"
	"time"

	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/sql"
)

// TenantCreate creates a tenant with the given slug and name, gives it its licence signing
// key (sealed with box) and audits it. A taken slug is ErrConflict; a malformed one is
// ErrInvalid.
func TenantCreate(ctx context.Context, tx sql.DBTX, now time.Time, actor Actor, box *secrets.Box, slug, name string) (sql.Tenant, error) {
	tenant, err := queries.TenantCreate(ctx, tx, sql.TenantCreateParams{ID: NewID(), Slug: slug, Name: name, Now: now})
	if err != nil {
		return sql.Tenant{}, fmt.Errorf("create tenant %q: %w", slug, DBError(err))
	}
	if err := SigningKeyCreate(ctx, tx, now, box, tenant.ID); err != nil {
		return sql.Tenant{}, err
	}
	err = Audit(ctx, tx, Step{Now: now, Actor: actor}, Change{TenantID: tenant.ID,
		Action: "tenant.create", SubjectType: "tenant", SubjectID: tenant.ID.String(),
		Details: map[string]string{"slug": slug, "name": name},
	})
	return tenant, err
}
