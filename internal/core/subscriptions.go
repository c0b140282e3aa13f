package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// SubscriptionCreateParams is a subscription of customer CustomerID of TenantID to policy
// PolicyID.
type SubscriptionCreateParams struct {
	TenantID   uuid.UUID
	CustomerID uuid.UUID
	// PolicyID must be a live, recurring policy of the tenant.
	PolicyID uuid.UUID
	// AddonIDs must each apply to the policy (see LicenseIssue).
	AddonIDs []uuid.UUID
	// PayInID, when set, is the licence purchase the subscription's licence fulfils
	// (LicenseIssueParams.PayInID).
	PayInID *uuid.UUID
}

// SubscriptionCreate starts a customer's subscription to a recurring policy with add-ons:
// it issues the licence (expiring one period plus grace from now, or never with a
// perpetual add-on), snapshots the price and period, audits, and emits
// subscription.created and license.issued. A policy that is not live and recurring is
// ErrInvalid.
func SubscriptionCreate(ctx context.Context, tx pgx.Tx, st Step, p SubscriptionCreateParams) (sql.Subscription, sql.License, error) {
	license, err := LicenseIssue(ctx, tx, st, LicenseIssueParams{TenantID: p.TenantID, PolicyID: p.PolicyID, CustomerID: p.CustomerID, AddonIDs: p.AddonIDs, PayInID: p.PayInID})
	if err != nil {
		return sql.Subscription{}, sql.License{}, err
	}
	sub, err := queries.SubscriptionCreate(ctx, tx, sql.SubscriptionCreateParams{
		TenantID: p.TenantID, ID: NewID(), CustomerID: p.CustomerID, LicenseID: license.ID, PolicyID: p.PolicyID, Now: st.Now,
	})
	if errors.Is(err, ErrNotFound) {
		return sql.Subscription{}, sql.License{}, fmt.Errorf("%w: policy %s is not recurring", ErrInvalid, p.PolicyID)
	} else if err != nil {
		return sql.Subscription{}, sql.License{}, fmt.Errorf("create subscription: %w", err)
	}
	if ids := sortedIDs(p.AddonIDs); len(ids) > 0 {
		if err := queries.SubscriptionAddonsAttach(ctx, tx, sql.SubscriptionAddonsAttachParams{TenantID: p.TenantID, SubscriptionID: sub.ID, AddonIDs: ids}); err != nil {
			return sql.Subscription{}, sql.License{}, fmt.Errorf("attach add-ons: %w", err)
		}
	}
	err = Record(ctx, tx, st, Change{TenantID: p.TenantID, Action: "subscription.create", SubjectType: "subscription", SubjectID: sub.ID.String(), Event: SubscriptionCreatedEvent(SubscriptionFieldsOf(sub, license))})
	if err != nil {
		return sql.Subscription{}, sql.License{}, err
	}
	// A subscription can make the customer a qualified referral: recompute their referrer.
	return sub, license, ReferralRecomputeReferrersOf(ctx, tx, st, ReferralRecomputeReferrersOfParams{TenantID: p.TenantID, CustomerIDs: []uuid.UUID{p.CustomerID}})
}

// SubscriptionCancelParams names subscription ID of TenantID.
type SubscriptionCancelParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
}

// SubscriptionCancel cancels a subscription at once and applies the perpetual fallback to
// its licence (the LicenseApplyCancellation query), cancels a downgrade scheduled for its
// next renewal, audits, and emits subscription.cancelled. An unknown subscription is ErrNotFound; a cancelled one is
// ErrConflict: of two concurrent cancels exactly one succeeds.
func SubscriptionCancel(ctx context.Context, tx pgx.Tx, st Step, p SubscriptionCancelParams) (sql.Subscription, sql.License, error) {
	sub, err := queries.SubscriptionCancel(ctx, tx, sql.SubscriptionCancelParams{TenantID: p.TenantID, ID: p.ID, Now: st.Now})
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			return sql.Subscription{}, sql.License{}, fmt.Errorf("cancel subscription %s: %w", p.ID, err)
		}
		if _, getErr := queries.SubscriptionGet(ctx, tx, sql.SubscriptionGetParams{TenantID: p.TenantID, ID: p.ID}); getErr != nil {
			return sql.Subscription{}, sql.License{}, fmt.Errorf("subscription %s: %w", p.ID, getErr)
		}
		return sql.Subscription{}, sql.License{}, fmt.Errorf("%w: subscription %s is already cancelled", ErrSubscriptionCancelled, p.ID)
	}
	license, err := queries.LicenseApplyCancellation(ctx, tx, sql.LicenseApplyCancellationParams{TenantID: p.TenantID, SubscriptionID: p.ID, Now: st.Now})
	if err != nil {
		return sql.Subscription{}, sql.License{}, fmt.Errorf("apply cancellation to licence of subscription %s: %w", p.ID, err)
	}
	// A downgrade scheduled for a renewal that will not come is cancelled with it.
	if _, err := tierChangeEnd(ctx, tx, st, sql.TierChangeEndParams{TenantID: p.TenantID, FromStatus: sql.TierChangeStatusScheduled, LicenseID: &sub.LicenseID}); err != nil {
		return sql.Subscription{}, sql.License{}, err
	}
	data := SubscriptionCancelledEvent{SubscriptionFields: SubscriptionFieldsOf(sub, license), Message: license.Message}
	err = Record(ctx, tx, st, Change{TenantID: p.TenantID, Action: "subscription.cancel", SubjectType: "subscription", SubjectID: sub.ID.String(), Event: data})
	if err != nil {
		return sql.Subscription{}, sql.License{}, err
	}
	// A cancelled subscription can disqualify the customer as a referral: recompute their referrer.
	return sub, license, ReferralRecomputeReferrersOf(ctx, tx, st, ReferralRecomputeReferrersOfParams{TenantID: p.TenantID, CustomerIDs: []uuid.UUID{sub.CustomerID}})
}
