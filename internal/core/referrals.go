package core

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/sql"
)

// ReferralRecomputeEnqueueParams names the referral rewards to recompute.
type ReferralRecomputeEnqueueParams struct {
	TenantID uuid.UUID
	// ReferrerID is the one referrer whose reward to recompute; nil recomputes every
	// referrer of the tenant.
	ReferrerID *uuid.UUID
}

// ReferralRecomputeEnqueue enqueues, in tx, a recompute of a tenant's referral rewards (a
// referral.recompute job, unique by its args while one is waiting or running:
// jobargs.ReferralRecompute). It reports whether a job was enqueued: false when an
// identical one already waits or runs (and will do the work).
func ReferralRecomputeEnqueue(ctx context.Context, tx pgx.Tx, st Step, p ReferralRecomputeEnqueueParams) (bool, error) {
	res, err := st.Jobs.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: jobargs.ReferralRecompute{TenantID: p.TenantID, ReferrerID: p.ReferrerID}}})
	if err != nil {
		return false, fmt.Errorf("enqueue referral recompute: %w", err)
	}
	return len(res) == 1 && !res[0].UniqueSkippedAsDuplicate, nil
}

// ReferralRecomputeReferrerOfParams names the customer whose referrer to recompute.
type ReferralRecomputeReferrerOfParams struct {
	TenantID   uuid.UUID
	CustomerID uuid.UUID
}

// ReferralRecomputeReferrerOf enqueues, in tx, a recompute of the referrer of a customer if
// it has one: the step calling it changed something that can move that referrer's count
// (the customer's status, referrer or subscriptions).
func ReferralRecomputeReferrerOf(ctx context.Context, tx pgx.Tx, st Step, p ReferralRecomputeReferrerOfParams) error {
	referrer, err := queries.ReferralReferrerOf(ctx, tx, sql.ReferralReferrerOfParams{TenantID: p.TenantID, CustomerID: p.CustomerID})
	if err != nil {
		return fmt.Errorf("find referrer of customer %s: %w", p.CustomerID, err)
	}
	if referrer == nil {
		return nil
	}
	_, err = ReferralRecomputeEnqueue(ctx, tx, st, ReferralRecomputeEnqueueParams{TenantID: p.TenantID, ReferrerID: referrer})
	return err
}

// ReferralSettingsUpdateParams changes TenantID's referral settings; nil fields keep their
// value.
type ReferralSettingsUpdateParams struct {
	TenantID        uuid.UUID
	BatchSize       *int32
	BonusPerBatch   *int32
	VerifiedBadgeAt *int32
	EliteBadgeAt    *int32
	CooldownDays    *int32
	IPWindowDays    *int32
	RequireIPHash   *bool
	// Details gives the referral_settings.update audit entry's details for the stored
	// settings; nil records {}.
	Details func(sql.ReferralSettingsEffective) any
}

// ReferralSettingsUpdate stores a tenant's referral settings, the fields not given kept
// from its current (or default) ones, audits the change (referral_settings.update, on the
// tenant) and enqueues a recompute of every referrer's reward. Badges out of order are
// ErrInvalid naming referral_settings_badges_check.
func ReferralSettingsUpdate(ctx context.Context, tx pgx.Tx, st Step, p ReferralSettingsUpdateParams) (sql.ReferralSettingsEffective, error) {
	current, err := queries.ReferralSettingsGet(ctx, tx, p.TenantID)
	if err != nil {
		return sql.ReferralSettingsEffective{}, fmt.Errorf("read referral settings: %w", err)
	}
	stored, err := queries.ReferralSettingsPut(ctx, tx, sql.ReferralSettingsPutParams{
		TenantID: p.TenantID, BatchSize: valueOr(p.BatchSize, current.BatchSize), BonusPerBatch: valueOr(p.BonusPerBatch, current.BonusPerBatch),
		VerifiedBadgeAt: valueOr(p.VerifiedBadgeAt, current.VerifiedBadgeAt), EliteBadgeAt: valueOr(p.EliteBadgeAt, current.EliteBadgeAt),
		CooldownDays: valueOr(p.CooldownDays, current.CooldownDays), IPWindowDays: valueOr(p.IPWindowDays, current.IPWindowDays),
		RequireIPHash: valueOr(p.RequireIPHash, current.RequireIPHash), Now: st.Now,
	})
	if err != nil {
		return sql.ReferralSettingsEffective{}, err
	}
	settings := sql.ReferralSettingsEffective{
		TenantID: stored.TenantID, BatchSize: stored.BatchSize, BonusPerBatch: stored.BonusPerBatch, VerifiedBadgeAt: stored.VerifiedBadgeAt,
		EliteBadgeAt: stored.EliteBadgeAt, CooldownDays: stored.CooldownDays, IPWindowDays: stored.IPWindowDays,
		RequireIPHash: stored.RequireIPHash, UpdatedAt: &stored.UpdatedAt,
	}
	var details any
	if p.Details != nil {
		details = p.Details(settings)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "referral_settings.update", SubjectType: "tenant", SubjectID: p.TenantID.String(), Details: details,
	})
	if err != nil {
		return sql.ReferralSettingsEffective{}, err
	}
	_, err = ReferralRecomputeEnqueue(ctx, tx, st, ReferralRecomputeEnqueueParams{TenantID: p.TenantID})
	return settings, err
}

// valueOr is *p, or def when p is nil.
func valueOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// CustomPlans runs every query on db with a plan made for that call's arguments (pgx's
// cache-describe mode: an unnamed statement, parsed, planned for its arguments and executed
// in one round trip, so that it also runs through a transaction pooler outside a
// transaction). Queries whose best plan depends on their arguments use it, like
// ReferralRecompute, whose optional referrer filter needs an index lookup for one referrer
// and a scan for all: a cached generic plan would serve one of the two badly.
type CustomPlans struct {
	DB sql.DBTX
}

// Exec runs a statement with a custom plan.
func (c CustomPlans) Exec(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	return c.DB.Exec(ctx, query, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
}

// Query runs a query with a custom plan.
func (c CustomPlans) Query(ctx context.Context, query string, args ...any) (pgx.Rows, error) {
	return c.DB.Query(ctx, query, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
}

// QueryRow runs a one-row query with a custom plan.
func (c CustomPlans) QueryRow(ctx context.Context, query string, args ...any) pgx.Row {
	return c.DB.QueryRow(ctx, query, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
}
