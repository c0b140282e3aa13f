package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// PolicyCreateParams is a new policy (a tier) of product ProductID of TenantID.
type PolicyCreateParams struct {
	TenantID uuid.UUID
	// ProductID is a live product of the tenant (a FieldError on product_id otherwise).
	ProductID      uuid.UUID
	Slug           string
	Name           string
	TierRank       int32
	ListedCurrency sql.Currency
	ListedValue    int64
	IsRecurring    bool
	// PeriodDays is required when IsRecurring, refused otherwise (policies_period_check).
	PeriodDays *int32
	// GracePeriodDays is the days an unpaid renewal keeps the licence valid; nil is 7.
	GracePeriodDays *int32
	// MaxMachines is the active machines per licence; nil is unlimited.
	MaxMachines *int32
	// Entitlements are the feature names; nil is none.
	Entitlements          []string
	PerpetualAfterDays    *int32
	QualifiesForReferrals bool
	// Details gives the policy.create audit entry's details for the stored policy; nil
	// records {}.
	Details func(sql.Policy) any
}

// PolicyCreate stores a new policy of a live product and audits it (policy.create). An
// unknown or archived product is a FieldError on product_id; a taken slug is ErrDuplicate
// naming policies_slug_key.
func PolicyCreate(ctx context.Context, tx pgx.Tx, st Step, p PolicyCreateParams) (sql.Policy, error) {
	product, err := queries.ProductGet(ctx, tx, sql.ProductGetParams{TenantID: p.TenantID, ID: p.ProductID})
	switch {
	case errors.Is(err, ErrNotFound):
		return sql.Policy{}, &FieldError{Field: "product_id", Detail: fmt.Sprintf("product_id %s not found", p.ProductID), Value: p.ProductID}
	case err != nil:
		return sql.Policy{}, err
	case product.ArchivedAt != nil:
		return sql.Policy{}, &FieldError{Field: "product_id", Detail: fmt.Sprintf("product %s is archived", p.ProductID), Value: p.ProductID}
	}
	grace := int32(7)
	if p.GracePeriodDays != nil {
		grace = *p.GracePeriodDays
	}
	entitlements := p.Entitlements
	if entitlements == nil {
		entitlements = []string{}
	}
	policy, err := queries.PolicyCreate(ctx, tx, sql.PolicyCreateParams{
		TenantID: p.TenantID, ID: NewID(), ProductID: p.ProductID, Slug: p.Slug, Name: p.Name,
		TierRank: p.TierRank, ListedCurrency: p.ListedCurrency, ListedValue: p.ListedValue,
		IsRecurring: p.IsRecurring, PeriodDays: p.PeriodDays, GracePeriodDays: grace, MaxMachines: p.MaxMachines,
		Entitlements: entitlements, PerpetualAfterDays: p.PerpetualAfterDays, QualifiesForReferrals: p.QualifiesForReferrals,
		Now: st.Now,
	})
	if err != nil {
		return sql.Policy{}, err
	}
	var details any
	if p.Details != nil {
		details = p.Details(policy)
	}
	return policy, Audit(ctx, tx, st, Change{TenantID: policy.TenantID,
		Action: "policy.create", SubjectType: "policy", SubjectID: policy.ID.String(), Details: details,
	})
}

// PolicyUpdateParams changes policy ID of TenantID; nil fields keep their value.
type PolicyUpdateParams struct {
	TenantID        uuid.UUID
	ID              uuid.UUID
	Name            *string
	TierRank        *int32
	ListedCurrency  *sql.Currency
	ListedValue     *int64
	GracePeriodDays *int32
	// SetMaxMachines says whether MaxMachines is set (nil: unlimited) or kept.
	SetMaxMachines bool
	MaxMachines    *int32
	// Entitlements replaces the list; nil keeps it.
	Entitlements []string
	// SetPerpetualAfterDays says whether PerpetualAfterDays is set (nil: never) or kept.
	SetPerpetualAfterDays bool
	PerpetualAfterDays    *int32
	QualifiesForReferrals *bool
	// Sent is the change as the caller received it, recorded as the policy.update audit
	// entry's details.
	Sent any
}

// PolicyUpdate changes a policy and audits it (policy.update). Turning
// qualifies_for_referrals on or off can move any referrer: it enqueues a recompute of them
// all. An unknown policy is ErrNotFound.
func PolicyUpdate(ctx context.Context, tx pgx.Tx, st Step, p PolicyUpdateParams) (sql.Policy, error) {
	var qualified bool // whether the policy counted for referrals before the change
	if p.QualifiesForReferrals != nil {
		before, err := queries.PolicyGet(ctx, tx, sql.PolicyGetParams{TenantID: p.TenantID, ID: p.ID})
		if err != nil {
			return sql.Policy{}, notFound(err, "policy", p.ID)
		}
		qualified = before.QualifiesForReferrals
	}
	policy, err := queries.PolicyUpdate(ctx, tx, sql.PolicyUpdateParams{
		TenantID: p.TenantID, ID: p.ID, Name: p.Name, TierRank: p.TierRank, ListedCurrency: p.ListedCurrency,
		ListedValue: p.ListedValue, GracePeriodDays: p.GracePeriodDays, SetMaxMachines: p.SetMaxMachines,
		MaxMachines: p.MaxMachines, Entitlements: p.Entitlements, SetPerpetualAfterDays: p.SetPerpetualAfterDays,
		PerpetualAfterDays: p.PerpetualAfterDays, QualifiesForReferrals: p.QualifiesForReferrals, Now: st.Now,
	})
	if err != nil {
		return sql.Policy{}, notFound(err, "policy", p.ID)
	}
	err = Audit(ctx, tx, st, Change{TenantID: policy.TenantID,
		Action: "policy.update", SubjectType: "policy", SubjectID: policy.ID.String(), Details: p.Sent,
	})
	if err != nil {
		return sql.Policy{}, err
	}
	if p.QualifiesForReferrals != nil && policy.QualifiesForReferrals != qualified {
		if _, err := ReferralRecomputeEnqueue(ctx, tx, st, ReferralRecomputeEnqueueParams{TenantID: policy.TenantID}); err != nil {
			return sql.Policy{}, err
		}
	}
	return policy, nil
}

// PolicyArchiveParams names the policy to archive.
type PolicyArchiveParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
}

// PolicyArchive archives a live policy and audits it (policy.archive). An unknown policy is
// ErrNotFound, an archived one ErrAlreadyArchived.
func PolicyArchive(ctx context.Context, tx pgx.Tx, st Step, p PolicyArchiveParams) (sql.Policy, error) {
	policy, err := queries.PolicyArchive(ctx, tx, sql.PolicyArchiveParams{TenantID: p.TenantID, ID: p.ID, Now: st.Now})
	if err != nil {
		return sql.Policy{}, archiveError(err, "policy", p.ID, func() error {
			_, err := queries.PolicyGet(ctx, tx, sql.PolicyGetParams{TenantID: p.TenantID, ID: p.ID})
			return err
		})
	}
	return policy, Audit(ctx, tx, st, Change{TenantID: policy.TenantID,
		Action: "policy.archive", SubjectType: "policy", SubjectID: policy.ID.String(),
	})
}
