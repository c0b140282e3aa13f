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

// ReferralSettings are a tenant's referral reward rules (SPEC 6).
type ReferralSettings struct {
	BatchSize       int32      `json:"batch_size" example:"3" doc:"Every batch_size qualified referrals earn bonus_per_batch bonus units. Default 3."`
	BonusPerBatch   int32      `json:"bonus_per_batch" example:"5" doc:"Bonus units per batch; they add to max_machines on the referrer's licences, at most 1,000,000 units in all. Default 5."`
	VerifiedBadgeAt int32      `json:"verified_badge_at" example:"3" doc:"Qualified referrals for the verified_referrer badge. Default 3."`
	EliteBadgeAt    int32      `json:"elite_badge_at" example:"10" doc:"Qualified referrals for the elite_referrer badge; above verified_badge_at. Default 10."`
	CooldownDays    int32      `json:"cooldown_days" example:"7" doc:"A referral's account and subscription must be older than this; 0 disables. Default 7."`
	IPWindowDays    int32      `json:"ip_window_days" example:"30" doc:"A referral sharing an IP hash the referrer used within this many days does not count. Default 30."`
	RequireIPHash   bool       `json:"require_ip_hash" example:"true" doc:"A referral whose registered event has no IP hash does not count. Default true."`
	UpdatedAt       *time.Time `json:"updated_at" doc:"When the tenant last changed them; null while it uses the defaults."`
}

func referralSettingsFrom(s sql.ReferralSettingsEffective) ReferralSettings {
	return ReferralSettings{
		BatchSize: s.BatchSize, BonusPerBatch: s.BonusPerBatch, VerifiedBadgeAt: s.VerifiedBadgeAt, EliteBadgeAt: s.EliteBadgeAt,
		CooldownDays: s.CooldownDays, IPWindowDays: s.IPWindowDays, RequireIPHash: s.RequireIPHash, UpdatedAt: s.UpdatedAt,
	}
}

// ReferralSettingsOutput is a tenant's referral settings.
type ReferralSettingsOutput struct {
	Body ReferralSettings
}

// ReferralSettingsUpdateInput changes referral settings; fields left out keep their value.
type ReferralSettingsUpdateInput struct {
	Body struct {
		BatchSize       *int32 `json:"batch_size,omitempty" minimum:"1" maximum:"1000000"`
		BonusPerBatch   *int32 `json:"bonus_per_batch,omitempty" minimum:"0" maximum:"1000000"`
		VerifiedBadgeAt *int32 `json:"verified_badge_at,omitempty" minimum:"1" maximum:"1000000"`
		EliteBadgeAt    *int32 `json:"elite_badge_at,omitempty" minimum:"2" maximum:"1000000"`
		CooldownDays    *int32 `json:"cooldown_days,omitempty" minimum:"0" maximum:"3650"`
		IPWindowDays    *int32 `json:"ip_window_days,omitempty" minimum:"1" maximum:"3650"`
		RequireIPHash   *bool  `json:"require_ip_hash,omitempty"`
	}
}

// ReferralSnapshot is a referrer's referrals as the rules decide them now.
type ReferralSnapshot struct {
	CustomerID              uuid.UUID  `json:"customer_id"`
	ReferredTotal           int32      `json:"referred_total" doc:"Every customer this one referred."`
	QualifiedTotal          int32      `json:"qualified_total"`
	DisqualifiedCooldown    int32      `json:"disqualified_cooldown" doc:"Account or subscription younger than cooldown_days."`
	DisqualifiedMissingIP   int32      `json:"disqualified_missing_ip" doc:"No IP hash on the registered event while one is required."`
	DisqualifiedSharedIP    int32      `json:"disqualified_shared_ip" doc:"IP hash the referrer used within the IP window."`
	DisqualifiedDuplicateIP int32      `json:"disqualified_duplicate_ip" doc:"IP hash of another qualified referral: one counts."`
	CooldownDays            int32      `json:"cooldown_days"`
	BonusUnits              int32      `json:"bonus_units"`
	Badge                   *string    `json:"badge" enum:"verified_referrer,elite_referrer" doc:"null below verified_badge_at."`
	ComputedAt              time.Time  `json:"computed_at" doc:"Now: the snapshot is computed live."`
	StoredBonusUnits        int32      `json:"stored_bonus_units" doc:"The bonus the last recompute stored, which licences use; it catches up with bonus_units at the next recompute."`
	StoredComputedAt        *time.Time `json:"stored_computed_at" doc:"When a recompute last changed the stored reward; null when none."`
}

// ReferralSnapshotOutput is a referrer's snapshot.
type ReferralSnapshotOutput struct {
	Body ReferralSnapshot
}

// ReferralLeader is a referrer on the leaderboard, from the stored rewards.
type ReferralLeader struct {
	CustomerID     uuid.UUID `json:"customer_id"`
	Email          string    `json:"email"`
	QualifiedTotal int32     `json:"qualified_total"`
	ReferredTotal  int32     `json:"referred_total"`
	BonusUnits     int32     `json:"bonus_units"`
	Badge          *string   `json:"badge" enum:"verified_referrer,elite_referrer"`
	ComputedAt     time.Time `json:"computed_at"`
}

func referralLeaderFrom(r sql.ReferralLeaderboardRow) ReferralLeader {
	return ReferralLeader{
		CustomerID: r.CustomerID, Email: r.Email, QualifiedTotal: r.QualifiedTotal, ReferredTotal: r.ReferredTotal,
		BonusUnits: r.BonusUnits, Badge: badgeString(r.Badge), ComputedAt: r.ComputedAt,
	}
}

// ReferralLeaderboardInput pages through the leaderboard.
type ReferralLeaderboardInput struct {
	PageParams
}

// ReferralLeaderboardOutput is a page of the leaderboard.
type ReferralLeaderboardOutput struct {
	Body Page[ReferralLeader]
}

// ReferralRecomputeOutput acknowledges an enqueued recompute.
type ReferralRecomputeOutput struct {
	Body struct {
		Enqueued bool `json:"enqueued" doc:"false when an identical recompute was already waiting or running: it covers this request."`
	}
}

// referralSettingsConstraints words referral_settings' constraint violations.
var referralSettingsConstraints = map[string]string{
	"referral_settings_badges_check": "elite_badge_at must be greater than verified_badge_at",
}

func badgeString(b *sql.ReferralBadge) *string {
	if b == nil {
		return nil
	}
	s := string(*b)
	return &s
}

func (s *Server) registerReferrals() {
	huma.Register(s.api, adminOperation(referralSettingsGetOperation), s.referralSettingsGet)
	huma.Register(s.api, adminOperation(referralSettingsUpdateOperation), s.referralSettingsUpdate)
	huma.Register(s.api, adminOperation(referralRecomputeOperation), s.referralRecompute)
	huma.Register(s.api, adminOperation(customerReferralsGetOperation), s.customerReferralsGet)
	huma.Register(s.api, adminOperation(referralLeaderboardOperation), s.referralLeaderboard)
}

var referralTags = []string{"Referrals"}

var referralSettingsGetOperation = huma.Operation{
	OperationID: "referral-settings-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/referrals/settings",
	Summary:     "Read the referral settings",
	Description: "The defaults until the tenant changes them.",
	Tags:        referralTags,
}

// referralSettingsGet reads the caller's tenant's referral settings, the defaults where it
// set none.
func (s *Server) referralSettingsGet(ctx context.Context, _ *struct{}) (*ReferralSettingsOutput, error) {
	settings, err := s.queries.ReferralSettingsGet(ctx, s.conn(ctx), tenantID(ctx))
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("read referral settings: %w", err))
	}
	return &ReferralSettingsOutput{Body: referralSettingsFrom(settings)}, nil
}

var referralSettingsUpdateOperation = huma.Operation{
	OperationID: "referral-settings-update",
	Method:      http.MethodPatch,
	Path:        "/v1/admin/referrals/settings",
	Summary:     "Change the referral settings",
	Description: "Fields left out keep their value. elite_badge_at must stay above verified_badge_at (422). " +
		"The change is audited and enqueues a recompute of every referrer's reward.",
	Tags: referralTags,
}

// referralSettingsUpdate changes the referral settings that the request sends.
func (s *Server) referralSettingsUpdate(ctx context.Context, in *ReferralSettingsUpdateInput) (*ReferralSettingsOutput, error) {
	b := in.Body
	settings, err := core.ReferralSettingsUpdate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.ReferralSettingsUpdateParams{
		TenantID: tenantID(ctx), BatchSize: b.BatchSize, BonusPerBatch: b.BonusPerBatch, VerifiedBadgeAt: b.VerifiedBadgeAt,
		EliteBadgeAt: b.EliteBadgeAt, CooldownDays: b.CooldownDays, IPWindowDays: b.IPWindowDays, RequireIPHash: b.RequireIPHash,
		Details: func(s sql.ReferralSettingsEffective) any { return referralSettingsFrom(s) },
	})
	if err != nil {
		return nil, problem(ctx, constraintError(err, referralSettingsConstraints))
	}
	return &ReferralSettingsOutput{Body: referralSettingsFrom(settings)}, nil
}

var referralRecomputeOperation = huma.Operation{
	OperationID: "referral-recompute",
	Method:      http.MethodPost,
	Path:        "/v1/admin/referrals/recompute",
	Summary:     "Recompute every referrer's reward",
	Description: "Enqueues a referral.recompute job for all of the tenant's referrers (one set-based statement); " +
		"it also runs hourly.",
	Tags:          referralTags,
	DefaultStatus: http.StatusAccepted,
}

// referralRecompute enqueues a recompute of every referrer of the caller's tenant.
func (s *Server) referralRecompute(ctx context.Context, _ *struct{}) (*ReferralRecomputeOutput, error) {
	enqueued, err := core.ReferralRecomputeEnqueue(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.ReferralRecomputeEnqueueParams{TenantID: tenantID(ctx)})
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &ReferralRecomputeOutput{}
	out.Body.Enqueued = enqueued
	return out, nil
}

var customerReferralsGetOperation = huma.Operation{
	OperationID: "customer-referrals-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/customers/{id}/referrals",
	Summary:     "Read a customer's referral snapshot",
	Description: "Computed live by the same SQL as the recompute (referral_compute, through ReferralCompute), without storing it. " +
		"stored_bonus_units is what licences use: each change recomputes its referrer in its own transaction, and the hourly full recompute stores what time alone changed (cooldowns, the IP window).",
	Tags:   referralTags,
	Errors: []int{http.StatusNotFound},
}

// customerReferralsGet computes a customer's referrals now, as the recompute would, without
// storing anything.
func (s *Server) customerReferralsGet(ctx context.Context, in *CustomerIDInput) (*ReferralSnapshotOutput, error) {
	if _, err := s.customer(ctx, in.ID); err != nil {
		return nil, problem(ctx, err)
	}
	now := s.now(ctx)
	rows, err := s.queries.ReferralCompute(ctx, core.CustomPlans{DB: s.conn(ctx)}, sql.ReferralComputeParams{
		TenantID: tenantID(ctx), ReferrerIds: []uuid.UUID{in.ID}, Now: now,
	})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("compute referrals of customer %s: %w", in.ID, err))
	}
	settings, err := s.queries.ReferralSettingsGet(ctx, s.conn(ctx), tenantID(ctx))
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("read referral settings: %w", err))
	}
	out := &ReferralSnapshotOutput{Body: ReferralSnapshot{CustomerID: in.ID, CooldownDays: settings.CooldownDays, ComputedAt: now}}
	if len(rows) == 1 && rows[0].ReferrerID != nil {
		r := rows[0]
		out.Body.ReferredTotal, out.Body.QualifiedTotal = *r.ReferredTotal, *r.QualifiedTotal
		out.Body.DisqualifiedCooldown, out.Body.DisqualifiedMissingIP = *r.DisqualifiedCooldown, *r.DisqualifiedMissingIP
		out.Body.DisqualifiedSharedIP, out.Body.DisqualifiedDuplicateIP = *r.DisqualifiedSharedIP, *r.DisqualifiedDuplicateIP
		out.Body.BonusUnits, out.Body.Badge = *r.BonusUnits, badgeString(r.Badge)
		out.Body.StoredComputedAt = r.StoredComputedAt
		if r.PreviousBonusUnits != nil {
			out.Body.StoredBonusUnits = *r.PreviousBonusUnits
		}
	}
	return out, nil
}

var referralLeaderboardOperation = huma.Operation{
	OperationID: "referral-leaderboard",
	Method:      http.MethodGet,
	Path:        "/v1/admin/referrals/leaderboard",
	Summary:     "List referrers by qualified referrals",
	Description: "Referrers with at least one qualified referral, most first (ties by customer id), from the " +
		"stored rewards as the last recompute left them.",
	Tags: referralTags,
}

// referralLeaderboard reads a page of the leaderboard.
func (s *Server) referralLeaderboard(ctx context.Context, in *ReferralLeaderboardInput) (*ReferralLeaderboardOutput, error) {
	after, fetch := in.cursor()
	rows, err := s.queries.ReferralLeaderboard(ctx, s.conn(ctx), sql.ReferralLeaderboardParams{TenantID: tenantID(ctx), After: after, RowLimit: fetch})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("read referral leaderboard: %w", err))
	}
	return &ReferralLeaderboardOutput{Body: page(rows, fetch, referralLeaderFrom, func(r sql.ReferralLeaderboardRow) uuid.UUID { return r.CustomerID })}, nil
}
