package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/sql"
)

// TierPath is who asks for a tier change, and how: each path allows different changes.
type TierPath string

// The tier change paths (SPEC 4.2).
const (
	// TierQuote: a buyer asks what a change would cost (upgrades and recurring downgrades).
	TierQuote TierPath = "quote"
	// TierUpgrade: a buyer starts a paid upgrade.
	TierUpgrade TierPath = "upgrade"
	// TierDowngrade: a buyer schedules a recurring downgrade for the next renewal.
	TierDowngrade TierPath = "downgrade"
	// TierAdmin: the tenant changes a licence's tier at once, in any direction, free.
	TierAdmin TierPath = "admin"
)

// TierChangeQuoteParams asks what moving licence LicenseID of TenantID to policy ToPolicyID
// on Path would cost at Now.
type TierChangeQuoteParams struct {
	TenantID   uuid.UUID
	LicenseID  uuid.UUID
	ToPolicyID uuid.UUID
	Path       TierPath
	Now        time.Time
}

// TierChangeQuote prices moving a licence to policy p.ToPolicyID at p.Now (the
// TierChangeQuote query: direction, charge, effective time) and refuses what p.Path does
// not allow:
//   - on the buyer's paths, first: an archived target (ErrNotFound, as if unknown);
//   - on every path: the same policy, a policy of another product, or a change between a
//     recurring and a perpetual policy (ErrRefused);
//   - on the buyer's paths: a licence that is not active, or a subscription that is not
//     (ErrConflict: past_due and lapsed ones pay their renewal first), prices in different
//     currencies or a change that is neither up nor down (ErrRefused), and a downgrade of a
//     perpetual licence (ErrRefused: admin-only);
//   - on the upgrade path a downgrade, or an upgrade that charges nothing (ErrRefused);
//   - on the downgrade path an upgrade, or a downgrade of a licence without a subscription,
//     whose renewal would never come to apply it (ErrRefused; the admin path applies it at once);
//   - on the admin path an archived target (ErrConflict).
//
// An unknown licence or policy is ErrNotFound.
func TierChangeQuote(ctx context.Context, db sql.DBTX, p TierChangeQuoteParams) (sql.TierChangeQuoteRow, error) {
	q, err := queries.TierChangeQuote(ctx, db, sql.TierChangeQuoteParams{TenantID: p.TenantID, LicenseID: p.LicenseID, ToPolicyID: p.ToPolicyID, Now: p.Now})
	if err != nil {
		return sql.TierChangeQuoteRow{}, fmt.Errorf("quote tier change of licence %s: %w", p.LicenseID, err)
	}
	buyer := p.Path != TierAdmin
	perpetual := q.FromPeriodDays == 0
	refused := func(format string, args ...any) (sql.TierChangeQuoteRow, error) {
		return sql.TierChangeQuoteRow{}, fmt.Errorf("%w: "+format, append([]any{ErrRefused}, args...)...)
	}
	switch {
	case q.ToArchived && buyer:
		return sql.TierChangeQuoteRow{}, fmt.Errorf("%w: policy %q is no longer sold", ErrNotFound, q.ToSlug)
	case q.SamePolicy:
		return refused("the licence is already on policy %q", q.ToSlug)
	case !q.SameProduct:
		return refused("policy %q is a tier of another product", q.ToSlug)
	case !q.SameRecurrence && perpetual:
		return refused("policy %q is recurring and the licence is perpetual: buy a subscription instead", q.ToSlug)
	case !q.SameRecurrence:
		return refused("policy %q is perpetual and the licence is a subscription: buy the perpetual licence instead", q.ToSlug)
	case q.ToArchived:
		return sql.TierChangeQuoteRow{}, fmt.Errorf("%w: policy %q is archived", ErrArchivedPolicy, q.ToSlug)
	case !buyer:
		return q, nil
	case q.LicenseStatus != sql.LicenseStatusActive:
		return sql.TierChangeQuoteRow{}, fmt.Errorf("%w: the licence is %s", ErrLicenseStatus, q.LicenseStatus)
	case q.SubscriptionStatus != nil && *q.SubscriptionStatus == sql.SubscriptionStatusCancelled:
		return sql.TierChangeQuoteRow{}, fmt.Errorf("%w: the subscription is cancelled", ErrSubscriptionCancelled)
	case q.SubscriptionStatus != nil && *q.SubscriptionStatus != sql.SubscriptionStatusActive:
		return sql.TierChangeQuoteRow{}, fmt.Errorf("%w: the subscription is %s: pay its pending renewal first", ErrSubscriptionUnpaid, *q.SubscriptionStatus)
	case !q.SameCurrency:
		return refused("policy %q is priced in %s and the licence in %s: ask the seller to change the tier", q.ToSlug, q.ToCurrency, q.FromCurrency)
	case q.Direction == "none":
		return refused("policy %q costs the same at the same rank: neither an upgrade nor a downgrade", q.ToSlug)
	case q.Direction == "downgrade" && perpetual:
		return refused("downgrading a perpetual licence is admin-only: ask the seller")
	case q.Direction == "downgrade" && p.Path == TierUpgrade:
		return refused("policy %q is a downgrade: schedule it for the next renewal with POST /v1/downgrade", q.ToSlug)
	case q.Direction == "downgrade" && q.SubscriptionID == nil:
		return refused("the licence has no subscription whose renewal could apply a downgrade: ask the seller to change the tier")
	case q.Direction == "upgrade" && p.Path == TierDowngrade:
		return refused("policy %q is an upgrade: start it with POST /v1/upgrade", q.ToSlug)
	case q.Direction == "upgrade" && p.Path == TierUpgrade && q.ChargeValue == 0:
		return refused("the upgrade to %q charges nothing now (no days left in the paid period); ask the seller to change the tier", q.ToSlug)
	}
	return q, nil
}

// TierUpgradeStartParams is a buyer's upgrade of License to policy ToPolicyID, charged at
// Rate (nil for a SAT price).
type TierUpgradeStartParams struct {
	License    sql.License
	ToPolicyID uuid.UUID
	Rate       *payment.Rate
}

// TierUpgradeStart starts a buyer's paid upgrade of p.License to policy p.ToPolicyID: it
// re-quotes it (TierChangeQuote on the upgrade path; the client's quote is never trusted),
// records a pending upgrade tier change tied to a new tier_upgrade PayIn for the charge
// (fiat at rate, stored), and creates the PayIn, invoiced in full by a payin.create_invoice
// job. Nothing changes on the licence until the PayIn is PAID (tierUpgradePaid). A licence
// with an upgrade already waiting for its payment is ErrConflict naming its PayIn (of
// concurrent starts, tier_changes_pending_key lets one through).
func TierUpgradeStart(ctx context.Context, tx pgx.Tx, st Step, p TierUpgradeStartParams) (sql.TierChange, sql.PayIn, error) {
	license := p.License
	q, err := TierChangeQuote(ctx, tx, TierChangeQuoteParams{TenantID: license.TenantID, LicenseID: license.ID, ToPolicyID: p.ToPolicyID, Path: TierUpgrade, Now: st.Now})
	if err != nil {
		return sql.TierChange{}, sql.PayIn{}, err
	}
	pending, err := queries.TierChangeOpen(ctx, tx, sql.TierChangeOpenParams{TenantID: license.TenantID, LicenseID: license.ID, Status: sql.TierChangeStatusPending})
	if err == nil {
		return sql.TierChange{}, sql.PayIn{}, fmt.Errorf("%w: an upgrade of this licence is already waiting for its payment: pay or cancel PayIn %s first", ErrUpgradePending, *pending.PayInID)
	} else if !errors.Is(err, ErrNotFound) {
		return sql.TierChange{}, sql.PayIn{}, fmt.Errorf("pending upgrade of licence %s: %w", license.ID, err)
	}
	payinID := NewID()
	// The change is recorded first, tied to the PayIn's id (the foreign key is deferred).
	change, err := tierChangeCreate(ctx, tx, st, tierChangeCreateParams{TenantID: license.TenantID, Quote: q, Kind: sql.TierChangeKindUpgrade, Status: sql.TierChangeStatusPending, PayInID: &payinID})
	if err != nil {
		return sql.TierChange{}, sql.PayIn{}, err
	}
	payin, err := PayInCreate(ctx, tx, st, PayInCreateParams{TenantID: license.TenantID,
		ID: payinID, CustomerID: license.CustomerID, Type: sql.PayinTypeTierUpgrade, PriceCurrency: q.ToCurrency,
		PriceValue: q.ChargeValue, Rate: p.Rate, PolicyID: &q.ToPolicyID,
	})
	if err != nil {
		return sql.TierChange{}, sql.PayIn{}, fmt.Errorf("upgrade licence %s: %w", license.ID, err)
	}
	if err := queries.PayInSetLicense(ctx, tx, sql.PayInSetLicenseParams{TenantID: license.TenantID, ID: payin.ID, LicenseID: license.ID, Now: st.Now}); err != nil {
		return sql.TierChange{}, sql.PayIn{}, fmt.Errorf("tie payin %s to licence %s: %w", payin.ID, license.ID, err)
	}
	payin.LicenseID = &license.ID
	return change, payin, nil
}

// TierDowngradeScheduleParams is a buyer's downgrade of License to policy ToPolicyID.
type TierDowngradeScheduleParams struct {
	License    sql.License
	ToPolicyID uuid.UUID
}

// TierDowngradeSchedule schedules a buyer's recurring downgrade of p.License to policy
// p.ToPolicyID for the subscription's next renewal (TierChangeQuote on the downgrade path),
// free; it replaces a downgrade scheduled before. The renewal applies it
// (SubscriptionRenew) and charges the new price; until then TierDowngradeCancel cancels it.
func TierDowngradeSchedule(ctx context.Context, tx pgx.Tx, st Step, p TierDowngradeScheduleParams) (sql.TierChange, error) {
	license := p.License
	q, err := TierChangeQuote(ctx, tx, TierChangeQuoteParams{TenantID: license.TenantID, LicenseID: license.ID, ToPolicyID: p.ToPolicyID, Path: TierDowngrade, Now: st.Now})
	if err != nil {
		return sql.TierChange{}, err
	}
	if _, err := tierChangeEnd(ctx, tx, st, sql.TierChangeEndParams{TenantID: license.TenantID, FromStatus: sql.TierChangeStatusScheduled, LicenseID: &license.ID}); err != nil {
		return sql.TierChange{}, err
	}
	return tierChangeCreate(ctx, tx, st, tierChangeCreateParams{TenantID: license.TenantID, Quote: q, Kind: sql.TierChangeKindDowngrade, Status: sql.TierChangeStatusScheduled})
}

// TierDowngradeCancel cancels the downgrade scheduled for license. None is ErrNotFound.
func TierDowngradeCancel(ctx context.Context, tx pgx.Tx, st Step, license sql.License) (sql.TierChange, error) {
	ended, err := tierChangeEnd(ctx, tx, st, sql.TierChangeEndParams{TenantID: license.TenantID, FromStatus: sql.TierChangeStatusScheduled, LicenseID: &license.ID})
	if err != nil {
		return sql.TierChange{}, err
	}
	if len(ended) == 0 {
		return sql.TierChange{}, fmt.Errorf("%w: no downgrade is scheduled for this licence", ErrNotFound)
	}
	return ended[0], nil
}

// TierChangeAdminParams is the tenant's move of licence LicenseID of TenantID to policy
// ToPolicyID.
type TierChangeAdminParams struct {
	TenantID   uuid.UUID
	LicenseID  uuid.UUID
	ToPolicyID uuid.UUID
}

// TierChangeAdmin moves a licence to policy p.ToPolicyID at once, free, in any direction
// (TierChangeQuote on the admin path), applying it as a paid upgrade is applied
// (tierChangeApply). A downgrade scheduled for the licence is cancelled.
func TierChangeAdmin(ctx context.Context, tx pgx.Tx, st Step, p TierChangeAdminParams) (sql.TierChange, sql.License, error) {
	q, err := TierChangeQuote(ctx, tx, TierChangeQuoteParams{TenantID: p.TenantID, LicenseID: p.LicenseID, ToPolicyID: p.ToPolicyID, Path: TierAdmin, Now: st.Now})
	if err != nil {
		return sql.TierChange{}, sql.License{}, err
	}
	q.ChargeValue = 0
	change, err := tierChangeCreate(ctx, tx, st, tierChangeCreateParams{TenantID: p.TenantID, Quote: q, Kind: sql.TierChangeKindAdmin, Status: sql.TierChangeStatusPending})
	if err != nil {
		return sql.TierChange{}, sql.License{}, err
	}
	return tierChangeApply(ctx, tx, st, change)
}

// tierChangeCreateParams is a tier change of a licence of TenantID to record: Kind with
// Status, as Quote priced it, paid by PayIn PayInID (upgrades only).
type tierChangeCreateParams struct {
	TenantID uuid.UUID
	Quote    sql.TierChangeQuoteRow
	Kind     sql.TierChangeKind
	Status   sql.TierChangeStatus
	PayInID  *uuid.UUID
}

// tierChangeCreate records a tier change as quoted, and audits it as tier_change.<kind>.
// A second upgrade pending, or a second scheduled downgrade, of one licence is
// ErrUpgradePending or ErrDowngradeConcurrent (both ErrConflict).
func tierChangeCreate(ctx context.Context, tx pgx.Tx, st Step, p tierChangeCreateParams) (sql.TierChange, error) {
	q := p.Quote
	change, err := queries.TierChangeCreate(ctx, tx, sql.TierChangeCreateParams{
		TenantID: p.TenantID, ID: NewID(), LicenseID: q.LicenseID, SubscriptionID: q.SubscriptionID, Kind: p.Kind, Status: p.Status,
		FromPolicyID: q.FromPolicyID, ToPolicyID: q.ToPolicyID, ChargeCurrency: q.ToCurrency, ChargeValue: q.ChargeValue,
		PayInID: p.PayInID, EffectiveAt: q.EffectiveAt, Now: st.Now,
	})
	if err != nil {
		if errors.Is(err, ErrConflict) && p.Status == sql.TierChangeStatusScheduled {
			return sql.TierChange{}, fmt.Errorf("%w: another downgrade of this licence was scheduled at the same moment; schedule again to replace it", ErrDowngradeConcurrent)
		} else if errors.Is(err, ErrConflict) {
			return sql.TierChange{}, fmt.Errorf("%w: an upgrade of this licence is already waiting for its payment; pay or cancel its PayIn first", ErrUpgradePending)
		}
		return sql.TierChange{}, fmt.Errorf("record tier change of licence %s: %w", q.LicenseID, err)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "tier_change." + string(p.Kind), SubjectType: "license", SubjectID: q.LicenseID.String(), Details: TierChangeFieldsOf(change),
	})
	return change, err
}

// tierChangeEnd ends a licence's pending upgrade or scheduled downgrade (TierChangeEnd, at
// st.Now whatever p.Now says), auditing each as tier_change.cancel or tier_change.fail.
func tierChangeEnd(ctx context.Context, tx pgx.Tx, st Step, p sql.TierChangeEndParams) ([]sql.TierChange, error) {
	p.Now = st.Now
	ended, err := queries.TierChangeEnd(ctx, tx, p)
	if err != nil {
		return nil, fmt.Errorf("end tier changes: %w", err)
	}
	action := "tier_change.cancel"
	if p.Failed {
		action = "tier_change.fail"
	}
	for _, c := range ended {
		err := Audit(ctx, tx, st, Change{TenantID: p.TenantID,
			Action: action, SubjectType: "license", SubjectID: c.LicenseID.String(), Details: TierChangeFieldsOf(c),
		})
		if err != nil {
			return nil, err
		}
	}
	return ended, nil
}

// tierChangeApply applies a pending or scheduled tier change (the TierChangeApply query:
// the licence takes the new policy's entitlements, max machines, grace and expiry, its
// subscription the new price and period) after locking the licence's subscription
// (TierChangeLockSubscription: renewals lock it first too, so the two never deadlock),
// audits and emits license.tier_changed, and
// recomputes the referrer of the licence's customer (the policy decides whether a referral
// qualifies). A change no longer pending or scheduled (applied, or cancelled by a concurrent
// request) is a no-op: it returns the change and the licence as they are.
func tierChangeApply(ctx context.Context, tx pgx.Tx, st Step, change sql.TierChange) (sql.TierChange, sql.License, error) {
	if err := queries.TierChangeLockSubscription(ctx, tx, sql.TierChangeLockSubscriptionParams{TenantID: change.TenantID, LicenseID: change.LicenseID}); err != nil {
		return sql.TierChange{}, sql.License{}, fmt.Errorf("lock the subscription of licence %s: %w", change.LicenseID, err)
	}
	license, err := queries.TierChangeApply(ctx, tx, sql.TierChangeApplyParams{TenantID: change.TenantID, ID: change.ID, Now: st.Now})
	if errors.Is(err, ErrNotFound) {
		// Applied, cancelled or failed meanwhile: return both as they are now.
		id := change.ID
		if change, err = queries.TierChangeGet(ctx, tx, sql.TierChangeGetParams{TenantID: change.TenantID, ID: id}); err != nil {
			return sql.TierChange{}, sql.License{}, fmt.Errorf("tier change %s: %w", id, err)
		}
		license, err = queries.LicenseGet(ctx, tx, sql.LicenseGetParams{TenantID: change.TenantID, ID: change.LicenseID})
		return change, license, err
	} else if err != nil {
		return sql.TierChange{}, sql.License{}, fmt.Errorf("apply tier change %s: %w", change.ID, err)
	}
	change.Status, change.AppliedAt = sql.TierChangeStatusApplied, &st.Now
	data := LicenseTierChangedEvent{LicenseFields: LicenseFieldsOf(license), TierChangeFields: TierChangeFieldsOf(change)}
	err = Record(ctx, tx, st, Change{TenantID: change.TenantID, Action: "license.tier_change", SubjectType: "license", SubjectID: license.ID.String(), Event: data})
	if err != nil {
		return sql.TierChange{}, sql.License{}, err
	}
	return change, license, ReferralRecomputeReferrersOf(ctx, tx, st, ReferralRecomputeReferrersOfParams{TenantID: change.TenantID, CustomerIDs: []uuid.UUID{license.CustomerID}})
}

// tierUpgradePaid is the effect of a PAID tier_upgrade PayIn (PayInPaidEvent): the tenant's
// revenue, and the upgrade it pays applied (tierChangeApply), once.
func tierUpgradePaid(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn) error {
	if err := payoutRevenue(ctx, tx, st, payin); err != nil {
		return err
	}
	change, err := queries.TierChangeGetByPayIn(ctx, tx, sql.TierChangeGetByPayInParams{TenantID: payin.TenantID, PayInID: payin.ID})
	if err != nil {
		return fmt.Errorf("tier change of payin %s: %w", payin.ID, err)
	}
	_, _, err = tierChangeApply(ctx, tx, st, change)
	return err
}

// tierDowngradeApplyDue applies the downgrade scheduled for the licence of a subscription
// due for renewal, if any, as its renewal starts (SubscriptionRenew): the renewal then
// charges the new price. It looks for one only when due says one was scheduled
// (SubscriptionRenewalGet's change_scheduled). It reports whether one was applied.
func tierDowngradeApplyDue(ctx context.Context, tx pgx.Tx, st Step, due sql.SubscriptionRenewalGetRow) (bool, error) {
	if !due.ChangeScheduled { // none when due was read: one scheduled since applies at the next renewal
		return false, nil
	}
	change, err := queries.TierChangeOpen(ctx, tx, sql.TierChangeOpenParams{TenantID: due.TenantID, LicenseID: due.LicenseID, Status: sql.TierChangeStatusScheduled})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("scheduled downgrade of licence %s: %w", due.LicenseID, err)
	}
	applied, _, err := tierChangeApply(ctx, tx, st, change)
	return err == nil && applied.Status == sql.TierChangeStatusApplied, err
}
