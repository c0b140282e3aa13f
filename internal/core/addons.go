package core

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// AddonCreateParams is a new add-on of TenantID.
type AddonCreateParams struct {
	TenantID uuid.UUID
	Slug     string
	Name     string
	// Metadata is the add-on's metadata, a JSON object the caller validated and encoded.
	Metadata []byte
	// Sent is the request as the caller received it, recorded as the addon.create audit
	// entry's details.
	Sent any
}

// AddonCreate stores a new add-on and audits it (addon.create). A taken slug is
// ErrDuplicate naming addons_slug_key; metadata the add-on checks refuse is ErrInvalid.
func AddonCreate(ctx context.Context, tx pgx.Tx, st Step, p AddonCreateParams) (sql.Addon, error) {
	addon, err := queries.AddonCreate(ctx, tx, sql.AddonCreateParams{
		TenantID: p.TenantID, ID: NewID(), Slug: p.Slug, Name: p.Name, Metadata: p.Metadata, Now: st.Now,
	})
	if err != nil {
		return sql.Addon{}, err
	}
	return addon, Audit(ctx, tx, st, Change{TenantID: addon.TenantID,
		Action: "addon.create", SubjectType: "addon", SubjectID: addon.ID.String(), Details: p.Sent,
	})
}

// AddonUpdateParams changes add-on ID of TenantID; nil fields keep their value.
type AddonUpdateParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
	Name     *string
	// Metadata replaces the metadata whole (validated and encoded by the caller); nil keeps it.
	Metadata []byte
	// Sent is the change as the caller received it, recorded as the addon.update audit
	// entry's details.
	Sent any
}

// AddonUpdate changes an add-on and audits it (addon.update). An unknown add-on is
// ErrNotFound.
func AddonUpdate(ctx context.Context, tx pgx.Tx, st Step, p AddonUpdateParams) (sql.Addon, error) {
	addon, err := queries.AddonUpdate(ctx, tx, sql.AddonUpdateParams{TenantID: p.TenantID, ID: p.ID, Name: p.Name, Metadata: p.Metadata, Now: st.Now})
	if err != nil {
		return sql.Addon{}, notFound(err, "add-on", p.ID)
	}
	return addon, Audit(ctx, tx, st, Change{TenantID: addon.TenantID,
		Action: "addon.update", SubjectType: "addon", SubjectID: addon.ID.String(), Details: p.Sent,
	})
}

// AddonArchiveParams names the add-on to archive.
type AddonArchiveParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
}

// AddonArchive archives a live add-on and audits it (addon.archive). An unknown add-on is
// ErrNotFound, an archived one ErrAlreadyArchived.
func AddonArchive(ctx context.Context, tx pgx.Tx, st Step, p AddonArchiveParams) (sql.Addon, error) {
	addon, err := queries.AddonArchive(ctx, tx, sql.AddonArchiveParams{TenantID: p.TenantID, ID: p.ID, Now: st.Now})
	if err != nil {
		return sql.Addon{}, archiveError(err, "add-on", p.ID, func() error {
			_, err := queries.AddonGet(ctx, tx, sql.AddonGetParams{TenantID: p.TenantID, ID: p.ID})
			return err
		})
	}
	return addon, Audit(ctx, tx, st, Change{TenantID: addon.TenantID,
		Action: "addon.archive", SubjectType: "addon", SubjectID: addon.ID.String(),
	})
}
