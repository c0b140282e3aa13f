package core

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// ProductCreateParams is a new product of TenantID.
type ProductCreateParams struct {
	TenantID uuid.UUID
	Slug     string
	Name     string
	// Sent is the request as the caller received it, recorded as the product.create audit
	// entry's details.
	Sent any
}

// ProductCreate stores a new product and audits it (product.create). A taken slug is
// ErrDuplicate naming products_slug_key.
func ProductCreate(ctx context.Context, tx pgx.Tx, st Step, p ProductCreateParams) (sql.Product, error) {
	product, err := queries.ProductCreate(ctx, tx, sql.ProductCreateParams{TenantID: p.TenantID, ID: NewID(), Slug: p.Slug, Name: p.Name, Now: st.Now})
	if err != nil {
		return sql.Product{}, err
	}
	return product, Audit(ctx, tx, st, Change{TenantID: product.TenantID,
		Action: "product.create", SubjectType: "product", SubjectID: product.ID.String(), Details: p.Sent,
	})
}

// ProductUpdateParams changes product ID of TenantID; nil fields keep their value.
type ProductUpdateParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
	Name     *string
	// Sent is the change as the caller received it, recorded as the product.update audit
	// entry's details.
	Sent any
}

// ProductUpdate changes a product and audits it (product.update). An unknown product is
// ErrNotFound.
func ProductUpdate(ctx context.Context, tx pgx.Tx, st Step, p ProductUpdateParams) (sql.Product, error) {
	product, err := queries.ProductUpdate(ctx, tx, sql.ProductUpdateParams{TenantID: p.TenantID, ID: p.ID, Name: p.Name, Now: st.Now})
	if err != nil {
		return sql.Product{}, notFound(err, "product", p.ID)
	}
	return product, Audit(ctx, tx, st, Change{TenantID: product.TenantID,
		Action: "product.update", SubjectType: "product", SubjectID: product.ID.String(), Details: p.Sent,
	})
}

// ProductArchiveParams names the product to archive.
type ProductArchiveParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
}

// ProductArchive archives a live product and audits it (product.archive). An unknown
// product is ErrNotFound, an archived one ErrAlreadyArchived.
func ProductArchive(ctx context.Context, tx pgx.Tx, st Step, p ProductArchiveParams) (sql.Product, error) {
	product, err := queries.ProductArchive(ctx, tx, sql.ProductArchiveParams{TenantID: p.TenantID, ID: p.ID, Now: st.Now})
	if err != nil {
		return sql.Product{}, archiveError(err, "product", p.ID, func() error {
			_, err := queries.ProductGet(ctx, tx, sql.ProductGetParams{TenantID: p.TenantID, ID: p.ID})
			return err
		})
	}
	return product, Audit(ctx, tx, st, Change{TenantID: product.TenantID,
		Action: "product.archive", SubjectType: "product", SubjectID: product.ID.String(),
	})
}

// ProductReleaseCreateParams is a new release of product ProductID of TenantID.
type ProductReleaseCreateParams struct {
	TenantID  uuid.UUID
	ProductID uuid.UUID
	Version   string
	// ReleasedAt is when the build was released; nil is now.
	ReleasedAt *time.Time
}

// ProductReleaseCreate records a release of a product and audits it
// (product_release.create, with the product, version and release time). An unknown product
// is ErrNotFound; a version already recorded is ErrDuplicate naming
// product_releases_version_key.
func ProductReleaseCreate(ctx context.Context, tx pgx.Tx, st Step, p ProductReleaseCreateParams) (sql.ProductRelease, error) {
	_, err := queries.ProductGet(ctx, tx, sql.ProductGetParams{TenantID: p.TenantID, ID: p.ProductID})
	if err != nil {
		return sql.ProductRelease{}, notFound(err, "product", p.ProductID)
	}
	releasedAt := st.Now
	if p.ReleasedAt != nil {
		releasedAt = *p.ReleasedAt
	}
	release, err := queries.ProductReleaseCreate(ctx, tx, sql.ProductReleaseCreateParams{
		TenantID: p.TenantID, ID: NewID(), ProductID: p.ProductID, Version: p.Version, ReleasedAt: releasedAt, Now: st.Now,
	})
	if err != nil {
		return sql.ProductRelease{}, err
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "product_release.create", SubjectType: "product_release", SubjectID: release.ID.String(),
		Details: map[string]any{"product_id": p.ProductID, "version": release.Version, "released_at": release.ReleasedAt},
	})
	if err != nil {
		return sql.ProductRelease{}, err
	}
	return release, nil
}
