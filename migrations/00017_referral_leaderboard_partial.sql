-- +goose Up
-- ReferralLeaderboard reads only referrers with qualified referrals: index only those. Most
-- referrers have none, and a full recompute at 1M customers spent about a fifth of its
-- 200 000 inserts maintaining their entries (bench/README.md); a reward that stays at zero
-- qualified is now updated without touching the index.
DROP INDEX referral_rewards_leaderboard_idx;
CREATE INDEX referral_rewards_leaderboard_idx ON referral_rewards (tenant_id, qualified_total DESC, customer_id)
    WHERE qualified_total > 0;

-- +goose Down
DROP INDEX referral_rewards_leaderboard_idx;
CREATE INDEX referral_rewards_leaderboard_idx ON referral_rewards (tenant_id, qualified_total DESC, customer_id);
