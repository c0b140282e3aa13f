package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// TierChange is a licence's move to another policy of its product.
type TierChange struct {
	ID             uuid.UUID  `json:"id"`
	LicenseID      uuid.UUID  `json:"license_id"`
	SubscriptionID *uuid.UUID `json:"subscription_id,omitempty"`
	Kind           string     `json:"kind" enum:"upgrade,downgrade,admin" doc:"upgrade: a buyer's, paid; downgrade: a buyer's, scheduled for the next renewal; admin: the tenant's, at once."`
	Status         string     `json:"status" enum:"pending,scheduled,applied,cancelled,failed" doc:"pending: waiting for its PayIn; scheduled: waiting for the next renewal; failed: its PayIn failed."`
	FromPolicyID   uuid.UUID  `json:"from_policy_id"`
	ToPolicyID     uuid.UUID  `json:"to_policy_id"`
	Charge         Money      `json:"charge" doc:"What it charged: 0 for downgrades and admin changes."`
	PayInID        *uuid.UUID `json:"payin_id,omitempty" doc:"The tier_upgrade PayIn paying an upgrade."`
	EffectiveAt    time.Time  `json:"effective_at"`
	CreatedAt      time.Time  `json:"created_at"`
	AppliedAt      *time.Time `json:"applied_at,omitempty"`
	CancelledAt    *time.Time `json:"cancelled_at,omitempty"`
}

func tierChangeFrom(c sql.TierChange) TierChange {
	return TierChange{
		ID: c.ID, LicenseID: c.LicenseID, SubscriptionID: c.SubscriptionID, Kind: string(c.Kind), Status: string(c.Status),
		FromPolicyID: c.FromPolicyID, ToPolicyID: c.ToPolicyID, Charge: Money{Currency: string(c.ChargeCurrency), Value: c.ChargeValue},
		PayInID: c.PayInID, EffectiveAt: c.EffectiveAt, CreatedAt: c.CreatedAt, AppliedAt: c.AppliedAt, CancelledAt: c.CancelledAt,
	}
}

// TierChangeOutput is one tier change.
type TierChangeOutput struct {
	Body TierChange
}

// TierInput names a licence by its key and the policy it would move to.
type TierInput struct {
	Body struct {
		Key    string `json:"key" maxLength:"512" doc:"The licence key." example:"TSR1.AZKf...Q"`
		Policy string `json:"policy" pattern:"^[a-z0-9][a-z0-9._-]{0,99}$" example:"pro" doc:"The slug of the target policy, a tier of the licence's product."`
	}
}

// TierQuoteOutput is what a tier change would cost.
type TierQuoteOutput struct {
	Body struct {
		LicenseID     uuid.UUID  `json:"license_id"`
		FromPolicyID  uuid.UUID  `json:"from_policy_id"`
		ToPolicyID    uuid.UUID  `json:"to_policy_id"`
		Direction     string     `json:"direction" enum:"upgrade,downgrade"`
		Charge        Money      `json:"charge" doc:"What the buyer owes now: 0 for a downgrade."`
		Effective     string     `json:"effective" enum:"immediate,next_renewal" doc:"An upgrade applies once paid; a recurring downgrade at the next renewal."`
		EffectiveAt   time.Time  `json:"effective_at"`
		RemainingDays *int32     `json:"remaining_days,omitempty" doc:"Recurring: the days left in the paid period that the charge covers (a started day counts)."`
		NextRenewalAt *time.Time `json:"next_renewal_at,omitempty"`
		NextRenewal   *Money     `json:"next_renewal,omitempty" doc:"Recurring: what each renewal charges after the change, for next_renewal_period_days."`
		NextPeriod    *int32     `json:"next_renewal_period_days,omitempty"`
	}
}

// TierUpgradeOutput is a started upgrade with the PayIn paying it.
type TierUpgradeOutput struct {
	Body struct {
		TierChange TierChange `json:"tier_change"`
		PayIn      PayIn      `json:"payin" doc:"Poll GET /v1/payins/{id} until PENDING for the checkout URL; the licence moves when it is PAID."`
	}
}

// TierDowngradeCancelInput names the licence whose scheduled downgrade to cancel.
type TierDowngradeCancelInput struct {
	Body struct {
		Key string `json:"key" maxLength:"512" doc:"The licence key." example:"TSR1.AZKf...Q"`
	}
}

// TierChangeAdminInput moves a licence to another policy at once.
type TierChangeAdminInput struct {
	ID   uuid.UUID `path:"id"`
	Body struct {
		PolicyID uuid.UUID `json:"policy_id" doc:"A live policy of the licence's product, recurring if the licence has a subscription, perpetual otherwise."`
	}
}

// TierChangeAdminOutput is an applied admin change with the licence as it is now.
type TierChangeAdminOutput struct {
	Body struct {
		TierChange TierChange `json:"tier_change"`
		License    License    `json:"license"`
	}
}

// TierChangeListInput pages through a licence's tier changes.
type TierChangeListInput struct {
	ID uuid.UUID `path:"id"`
	PageParams
}

// TierChangeListOutput is a page of tier changes.
type TierChangeListOutput struct {
	Body Page[TierChange]
}

const tierBuyerDescription = "Authenticated by the licence key: a malformed, forged or unknown key is 401 whatever the target; " +
	"an unknown target policy is 404. The licence and its subscription must be active (409 otherwise). Tiers are the policies of the " +
	"licence's product, ordered by tier_rank (at equal ranks, by price per day). "

const tierPricingDescription = "Perpetual licences pay the flat difference of the listed prices (Standard 2500 -> Pro 7500 = 5000 cents). " +
	"Subscriptions pay the difference per day over the days left in the paid period: " +
	"floor(remaining_days * (new_price * old_period - old_price * new_period) / (new_period * old_period)), remaining_days rounded up " +
	"(a started day counts), the amount rounded down to a whole minor unit; the next renewal charges the new price for the new period. "

func (s *Server) registerTierChanges() {
	huma.Register(s.api, buyerOperation(tierUpgradeQuoteOperation, s.tenantOfLicenseKey), s.tierUpgradeQuote)
	huma.Register(s.api, buyerOperation(tierUpgradeOperation, s.tenantOfLicenseKey), s.tierUpgrade)
	huma.Register(s.api, buyerOperation(tierDowngradeOperation, s.tenantOfLicenseKey), s.tierDowngrade)
	huma.Register(s.api, buyerOperation(tierDowngradeCancelOperation, s.tenantOfLicenseKey), s.tierDowngradeCancel)
	huma.Register(s.api, adminOperation(licenseChangeTierOperation), s.licenseChangeTier)
	huma.Register(s.api, adminOperation(licenseTierChangeListOperation), s.licenseTierChangeList)
}

var tierChangeTags = []string{"Tier changes"}

var tierUpgradeQuoteOperation = huma.Operation{
	OperationID: "tier-upgrade-quote",
	Method:      http.MethodPost,
	Path:        "/v1/upgrade-quote",
	Summary:     "Quote a tier change of a licence (buyer)",
	Description: tierBuyerDescription + tierPricingDescription + "A recurring downgrade is quoted free, effective at the next renewal; " +
		"a perpetual downgrade is admin-only (400).",
	Tags:     tierChangeTags,
	Errors:   []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict},
	Metadata: map[string]any{metadataReadOnly: true},
}

// tierUpgradeQuote prices a tier change of the licence whose key the buyer presents,
// changing nothing.
func (s *Server) tierUpgradeQuote(ctx context.Context, in *TierInput) (*TierQuoteOutput, error) {
	license, target, err := s.tierTarget(ctx, in)
	if err != nil {
		return nil, problem(ctx, err)
	}
	q, err := core.TierChangeQuote(ctx, s.conn(ctx), core.TierChangeQuoteParams{
		TenantID: license.TenantID, LicenseID: license.ID, ToPolicyID: target.ID, Path: core.TierQuote, Now: s.now(ctx),
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return tierQuoteFrom(q), nil
}

var tierUpgradeOperation = huma.Operation{
	OperationID: "tier-upgrade",
	Method:      http.MethodPost,
	Path:        "/v1/upgrade",
	Summary:     "Start a paid upgrade of a licence (buyer)",
	Description: tierBuyerDescription + tierPricingDescription + "The server quotes again (never trusting a client's quote) and creates a " +
		"tier_upgrade PayIn for the charge, invoiced at the current rate, with a pending tier change tied to it. Nothing changes until " +
		"it is PAID; then the same licence (id and key) takes the new policy's entitlements, max machines, grace and expiry, and its " +
		"subscription the new price and period (license.tier_changed). A downgrade or an upgrade that charges nothing is 400; a " +
		"second upgrade while one waits for its payment is 409.",
	Tags:          tierChangeTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict, http.StatusServiceUnavailable},
}

// tierUpgrade starts a paid upgrade of the licence whose key the buyer presents, at the
// current rate of the target policy's currency.
func (s *Server) tierUpgrade(ctx context.Context, in *TierInput) (*TierUpgradeOutput, error) {
	license, target, err := s.tierTarget(ctx, in)
	if err != nil {
		return nil, problem(ctx, err)
	}
	rate, err := s.rate(ctx, target.ListedCurrency)
	if err != nil {
		return nil, problem(ctx, err)
	}
	change, payin, err := core.TierUpgradeStart(ctx, tx(ctx), s.step(ctx, buyer(ctx, license.ID)), core.TierUpgradeStartParams{
		License: license, ToPolicyID: target.ID, Rate: rate,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &TierUpgradeOutput{}
	out.Body.TierChange = tierChangeFrom(change)
	if out.Body.PayIn, err = s.payInView(ctx, payin); err != nil {
		return nil, problem(ctx, err)
	}
	return out, nil
}

var tierDowngradeOperation = huma.Operation{
	OperationID: "tier-downgrade",
	Method:      http.MethodPost,
	Path:        "/v1/downgrade",
	Summary:     "Schedule a downgrade of a subscription for its next renewal (buyer)",
	Description: tierBuyerDescription + "Free: the next renewal applies it (the licence takes the lower tier, the renewal charges its " +
		"price) unless it is cancelled first; scheduling again replaces it. An upgrade, or a downgrade of a perpetual licence " +
		"(admin-only), is 400.",
	Tags:          tierChangeTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict},
}

// tierDowngrade schedules a downgrade of the licence whose key the buyer presents for its
// subscription's next renewal.
func (s *Server) tierDowngrade(ctx context.Context, in *TierInput) (*TierChangeOutput, error) {
	license, target, err := s.tierTarget(ctx, in)
	if err != nil {
		return nil, problem(ctx, err)
	}
	change, err := core.TierDowngradeSchedule(ctx, tx(ctx), s.step(ctx, buyer(ctx, license.ID)), core.TierDowngradeScheduleParams{License: license, ToPolicyID: target.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &TierChangeOutput{Body: tierChangeFrom(change)}, nil
}

var tierDowngradeCancelOperation = huma.Operation{
	OperationID: "tier-downgrade-cancel",
	Method:      http.MethodPost,
	Path:        "/v1/downgrade/cancel",
	Summary:     "Cancel the downgrade scheduled for a subscription (buyer)",
	Description: "Authenticated by the licence key (401 otherwise). No scheduled downgrade is 404.",
	Tags:        tierChangeTags,
	Errors:      []int{http.StatusUnauthorized, http.StatusNotFound},
}

// tierDowngradeCancel cancels the downgrade scheduled for the licence whose key the buyer
// presents.
func (s *Server) tierDowngradeCancel(ctx context.Context, in *TierDowngradeCancelInput) (*TierChangeOutput, error) {
	license, err := s.licenseByKey(ctx, in.Body.Key)
	if err != nil {
		return nil, problem(ctx, err)
	}
	change, err := core.TierDowngradeCancel(ctx, tx(ctx), s.step(ctx, buyer(ctx, license.ID)), license)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &TierChangeOutput{Body: tierChangeFrom(change)}, nil
}

var licenseChangeTierOperation = huma.Operation{
	OperationID: "license-change-tier",
	Method:      http.MethodPost,
	Path:        "/v1/admin/licenses/{id}/change-tier",
	Summary:     "Move a licence to another tier at once",
	Description: "Free and immediate, in any direction (perpetual downgrades included): the licence (same id and key) takes the " +
		"policy's entitlements, max machines, grace and expiry, its subscription the policy's price and period from the next renewal. " +
		"A downgrade scheduled by the buyer is cancelled. Audited; emits license.tier_changed. The same policy, a policy of another " +
		"product, or a change between recurring and perpetual is 400; an archived policy is 409.",
	Tags:   tierChangeTags,
	Errors: []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict},
}

// licenseChangeTier moves one of the caller's licences to another of its policies at once.
func (s *Server) licenseChangeTier(ctx context.Context, in *TierChangeAdminInput) (*TierChangeAdminOutput, error) {
	change, l, err := core.TierChangeAdmin(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.TierChangeAdminParams{
		TenantID: tenantID(ctx), LicenseID: in.ID, ToPolicyID: in.Body.PolicyID,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &TierChangeAdminOutput{}
	out.Body.TierChange, out.Body.License = tierChangeFrom(change), licenseFrom(l)
	return out, nil
}

var licenseTierChangeListOperation = huma.Operation{
	OperationID: "license-tier-change-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/licenses/{id}/tier-changes",
	Summary:     "List a licence's tier changes, newest first",
	Tags:        tierChangeTags,
	Errors:      []int{http.StatusNotFound},
}

// licenseTierChangeList reads a page of a licence's tier changes.
func (s *Server) licenseTierChangeList(ctx context.Context, in *TierChangeListInput) (*TierChangeListOutput, error) {
	if _, err := s.license(ctx, in.ID); err != nil {
		return nil, problem(ctx, err)
	}
	after, fetch := in.cursor()
	rows, err := s.queries.TierChangeList(ctx, s.conn(ctx), sql.TierChangeListParams{TenantID: tenantID(ctx), LicenseID: in.ID, After: after, RowLimit: fetch})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &TierChangeListOutput{Body: page(rows, fetch, tierChangeFrom, func(c sql.TierChange) uuid.UUID { return c.ID })}, nil
}

// tierTarget authenticates a buyer's tier request by its key (first, so that an invalid key
// reveals nothing about the target) and finds the target policy among the licence's
// tenant's.
func (s *Server) tierTarget(ctx context.Context, in *TierInput) (sql.License, sql.Policy, error) {
	license, err := s.licenseByKey(ctx, in.Body.Key)
	if err != nil {
		return sql.License{}, sql.Policy{}, err
	}
	policy, err := s.queries.PolicyGetBySlug(ctx, s.conn(ctx), sql.PolicyGetBySlugParams{TenantID: license.TenantID, Slug: in.Body.Policy})
	if err != nil {
		return sql.License{}, sql.Policy{}, fmt.Errorf("policy %q: %w", in.Body.Policy, err)
	}
	return license, policy, nil
}

// tierQuoteFrom is the answer of a tier change quote.
func tierQuoteFrom(q sql.TierChangeQuoteRow) *TierQuoteOutput {
	out := &TierQuoteOutput{}
	b := &out.Body
	b.LicenseID, b.FromPolicyID, b.ToPolicyID, b.Direction = q.LicenseID, q.FromPolicyID, q.ToPolicyID, q.Direction
	b.Charge = Money{Currency: string(q.ToCurrency), Value: q.ChargeValue}
	b.Effective, b.EffectiveAt = "immediate", q.EffectiveAt
	if q.Direction == "downgrade" {
		b.Effective = "next_renewal"
	}
	if q.SubscriptionID != nil {
		b.RemainingDays, b.NextRenewalAt, b.NextPeriod = &q.RemainingDays, q.NextRenewalAt, &q.ToPeriodDays
		b.NextRenewal = &Money{Currency: string(q.ToCurrency), Value: q.ToValue}
	}
	return out
}
