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

// ReferralRecomputeEnqueueParams names the tenant whose referral rewards to recompute.
type ReferralRecomputeEnqueueParams struct {
	TenantID uuid.UUID
}

// ReferralRecomputeEnqueue enqueues, in tx, a full recompute of a tenant's referral rewards
// (a referral.recompute job of all its referrers, unique by its args while one is waiting or
// running: jobargs.ReferralRecompute), for changes that can move any referrer (settings, a
// policy's qualifies_for_referrals, the clock). It reports whether a job was enqueued: false
// when an identical one already waits or runs (and will do the work).
func ReferralRecomputeEnqueue(ctx context.Context, tx pgx.Tx, st Step, p ReferralRecomputeEnqueueParams) (bool, error) {
	res, err := st.Jobs.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: jobargs.ReferralRecompute{TenantID: p.TenantID}}})
	if err != nil {
		return false, fmt.Errorf("enqueue referral recompute: %w", err)
	}
	return len(res) == 1 && !res[0].UniqueSkippedAsDuplicate, nil
}

// ReferralRecomputeParams names the referral rewards to recompute.
type ReferralRecomputeParams struct {
	TenantID uuid.UUID
	// ReferrerIDs are the referrers whose rewards to recompute; nil recomputes every
	// referrer of the tenant, and an empty slice none.
	ReferrerIDs []uuid.UUID
}

// ReferralRecomputeResult is what a referral recompute did.
type ReferralRecomputeResult struct {
	// Processed is how many referrers were computed: those with referrals or a stored reward.
	Processed int
	// Updated is how many stored rewards changed (any count, the bonus or the badge).
	Updated int
	// RewardsChanged is how many referrers' bonus or badge changed: one
	// referral.reward_changed event each.
	RewardsChanged int
}

// referralAnnouncePage is how many changed rewards ReferralRecompute announces per
// ReferralRewardsAnnounce: what the process holds at once, however many changed.
const referralAnnouncePage = 500

// ReferralRecompute recomputes, in tx, the referral rewards p names — of given referrers
// (the maintenance a change runs in its own transaction) or of all the tenant's referrers (the
// full recompute, the periodic repair) — stores those whose values changed, and audits and
// emits referral.reward_changed for each referrer whose bonus or badge changed. It first takes
// the rewards' locks (ReferralRewardsLock: the referrers', or the tenant's exclusively for a
// full recompute), so concurrent recomputes of a referrer store in the order they computed,
// then computes and stores inside the database (ReferralRecomputeStore: all referrers with
// parallel workers, under the session of ReferralRecomputeSession), and announces the changed
// rewards a page at a time (ReferralRewardsAnnounce): what it holds never grows with the
// tenant's referrers.
func ReferralRecompute(ctx context.Context, tx pgx.Tx, st Step, p ReferralRecomputeParams) (ReferralRecomputeResult, error) {
	if p.ReferrerIDs != nil && len(p.ReferrerIDs) == 0 {
		return ReferralRecomputeResult{}, nil
	}
	if err := queries.ReferralRewardsLock(ctx, tx, sql.ReferralRewardsLockParams{TenantID: p.TenantID, ReferrerIds: p.ReferrerIDs}); err != nil {
		return ReferralRecomputeResult{}, fmt.Errorf("lock referral rewards of tenant %s: %w", p.TenantID, err)
	}
	if p.ReferrerIDs == nil {
		if err := queries.ReferralRecomputeSession(ctx, tx); err != nil {
			return ReferralRecomputeResult{}, fmt.Errorf("set the referral recompute's session: %w", err)
		}
	}
	stored, err := queries.ReferralRecomputeStore(ctx, CustomPlans{DB: tx}, sql.ReferralRecomputeStoreParams{TenantID: p.TenantID, Now: st.Now, ReferrerIds: p.ReferrerIDs})
	if err != nil {
		return ReferralRecomputeResult{}, fmt.Errorf("recompute referral rewards of tenant %s: %w", p.TenantID, err)
	}
	res := ReferralRecomputeResult{Processed: int(stored.Processed), Updated: int(stored.Updated), RewardsChanged: int(stored.RewardsChanged)}
	for announced := 0; announced < res.RewardsChanged; {
		page, err := queries.ReferralRewardsAnnounce(ctx, tx, sql.ReferralRewardsAnnounceParams{TenantID: p.TenantID, RowLimit: referralAnnouncePage})
		if err != nil {
			return ReferralRecomputeResult{}, fmt.Errorf("announce changed referral rewards of tenant %s: %w", p.TenantID, err)
		}
		if len(page) == 0 {
			return ReferralRecomputeResult{}, fmt.Errorf("announce changed referral rewards of tenant %s: %d of %d found", p.TenantID, announced, res.RewardsChanged)
		}
		for _, r := range page {
			data := ReferralRewardChangedEvent{
				CustomerID: r.CustomerID, QualifiedTotal: &r.QualifiedTotal, BonusUnits: &r.BonusUnits, Badge: r.Badge,
				PreviousBonusUnits: r.PreviousBonusUnits, PreviousBadge: r.PreviousBadge,
			}
			err := Record(ctx, tx, st, Change{TenantID: p.TenantID, Action: "referral.reward_change", SubjectType: "customer", SubjectID: r.CustomerID.String(), Event: data})
			if err != nil {
				return ReferralRecomputeResult{}, err
			}
		}
		announced += len(page)
	}
	return res, nil
}

// ReferralRecomputeReferrersOfParams names customers whose referrers to recompute.
type ReferralRecomputeReferrersOfParams struct {
	TenantID    uuid.UUID
	CustomerIDs []uuid.UUID
}

// ReferralRecomputeReferrersOf recomputes, in tx (ReferralRecompute), the rewards of the
// referrers of customers, those that have one: the step calling it changed something that
// can move those referrers' counts (the customers' status, referrer or subscriptions).
func ReferralRecomputeReferrersOf(ctx context.Context, tx pgx.Tx, st Step, p ReferralRecomputeReferrersOfParams) error {
	referrers, err := queries.ReferralReferrersOf(ctx, tx, sql.ReferralReferrersOfParams{TenantID: p.TenantID, CustomerIDs: p.CustomerIDs})
	if err != nil {
		return fmt.Errorf("find referrers of %d customers: %w", len(p.CustomerIDs), err)
	}
	_, err = ReferralRecompute(ctx, tx, st, ReferralRecomputeParams{TenantID: p.TenantID, ReferrerIDs: nonNil(referrers)})
	return err
}

// nonNil is ids, or an empty slice when nil (so that it names no referrer rather than all).
func nonNil(ids []uuid.UUID) []uuid.UUID {
	if ids == nil {
		return []uuid.UUID{}
	}
	return ids
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
