package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// SubscriptionCreate starts a customer's subscription to a recurring policy with add-ons:
// it issues the licence (expiring one period plus grace from now, or never with a
// perpetual add-on), snapshots the price and period, audits, and emits
// subscription.created and license.issued. A policy that is not live and recurring is
// ErrInvalid.
func SubscriptionCreate(ctx context.Context, tx pgx.Tx, st Step, tenantID, customerID, policyID uuid.UUID, addonIDs []uuid.UUID) (sql.Subscription, sql.License, error) {
	license, err := LicenseIssue(ctx, tx, st, tenantID, LicenseIssueParams{PolicyID: policyID, CustomerID: customerID, AddonIDs: addonIDs})
	if err != nil {
		return sql.Subscription{}, sql.License{}, err
	}
	sub, err := queries.SubscriptionCreate(ctx, tx, sql.SubscriptionCreateParams{
		TenantID: tenantID, ID: NewID(), CustomerID: customerID, LicenseID: license.ID, PolicyID: policyID, Now: st.Now,
	})
	if err = DBError(err); errors.Is(err, ErrNotFound) {
		return sql.Subscription{}, sql.License{}, fmt.Errorf("%w: policy %s is not recurring", ErrInvalid, policyID)
	} else if err != nil {
		return sql.Subscription{}, sql.License{}, fmt.Errorf("create subscription: %w", err)
	}
	if ids := sortedIDs(addonIDs); len(ids) > 0 {
		if err := queries.SubscriptionAddonsAttach(ctx, tx, sql.SubscriptionAddonsAttachParams{TenantID: tenantID, SubscriptionID: sub.ID, AddonIds: ids}); err != nil {
			return sql.Subscription{}, sql.License{}, fmt.Errorf("attach add-ons: %w", DBError(err))
		}
	}
	err = Record(ctx, tx, st, Change{TenantID: tenantID, Action: "subscription.create", SubjectType: "subscription", SubjectID: sub.ID.String(), Event: SubscriptionCreatedEvent(SubscriptionFieldsOf(sub, license))})
	if err != nil {
		return sql.Subscription{}, sql.License{}, err
	}
	// A subscription can make the customer a qualified referral: recompute their referrer.
	return sub, license, ReferralRecomputeReferrerOf(ctx, tx, st, ReferralRecomputeReferrerOfParams{TenantID: tenantID, CustomerID: customerID})
}

// SubscriptionCancel cancels a subscription at once and applies the perpetual fallback to
// its licence (the LicenseApplyCancellation query), cancels a downgrade scheduled for its
// next renewal, audits, and emits subscription.cancelled. An unknown subscription is ErrNotFound; a cancelled one is
// ErrConflict: of two concurrent cancels exactly one succeeds.
func SubscriptionCancel(ctx context.Context, tx pgx.Tx, st Step, tenantID, id uuid.UUID) (sql.Subscription, sql.License, error) {
	sub, err := queries.SubscriptionCancel(ctx, tx, sql.SubscriptionCancelParams{TenantID: tenantID, ID: id, Now: st.Now})
	if err != nil {
		if err = DBError(err); !errors.Is(err, ErrNotFound) {
			return sql.Subscription{}, sql.License{}, fmt.Errorf("cancel subscription %s: %w", id, err)
		}
		if _, getErr := queries.SubscriptionGet(ctx, tx, sql.SubscriptionGetParams{TenantID: tenantID, ID: id}); getErr != nil {
			return sql.Subscription{}, sql.License{}, fmt.Errorf("subscription %s: %w", id, DBError(getErr))
		}
		return sql.Subscription{}, sql.License{}, fmt.Errorf("%w: subscription %s is already cancelled", ErrSubscriptionCancelled, id)
	}
	license, err := queries.LicenseApplyCancellation(ctx, tx, sql.LicenseApplyCancellationParams{TenantID: tenantID, SubscriptionID: id, Now: st.Now})
	if err != nil {
		return sql.Subscription{}, sql.License{}, fmt.Errorf("apply cancellation to licence of subscription %s: %w", id, DBError(err))
	}
	// A downgrade scheduled for a renewal that will not come is cancelled with it.
	if _, err := tierChangeEnd(ctx, tx, st, tenantID, sql.TierChangeEndParams{FromStatus: sql.TierChangeStatusScheduled, LicenseID: &sub.LicenseID}); err != nil {
		return sql.Subscription{}, sql.License{}, err
	}
	data := SubscriptionCancelledEvent{SubscriptionFields: SubscriptionFieldsOf(sub, license), Message: license.Message}
	err = Record(ctx, tx, st, Change{TenantID: tenantID, Action: "subscription.cancel", SubjectType: "subscription", SubjectID: sub.ID.String(), Event: data})
	if err != nil {
		return sql.Subscription{}, sql.License{}, err
	}
	// A cancelled subscription can disqualify the customer as a referral: recompute their referrer.
	return sub, license, ReferralRecomputeReferrerOf(ctx, tx, st, ReferralRecomputeReferrerOfParams{TenantID: tenantID, CustomerID: sub.CustomerID})
}
