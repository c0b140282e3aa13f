-- +goose Up
-- referral_settings: a tenant's referral reward rules (SPEC 6). A tenant without a row uses
-- the defaults, which are the column defaults below and the coalesces of
-- referral_settings_effective: keep the two in step.
CREATE TABLE referral_settings (
    tenant_id         uuid        NOT NULL REFERENCES tenants (id),
    -- Every batch_size qualified referrals earn bonus_per_batch bonus units.
    batch_size        integer     NOT NULL DEFAULT 3 CHECK (batch_size BETWEEN 1 AND 1000000),
    bonus_per_batch   integer     NOT NULL DEFAULT 5 CHECK (bonus_per_batch BETWEEN 0 AND 1000000),
    -- verified_referrer from verified_badge_at qualified referrals, elite_referrer from
    -- elite_badge_at.
    verified_badge_at integer     NOT NULL DEFAULT 3 CHECK (verified_badge_at >= 1),
    elite_badge_at    integer     NOT NULL DEFAULT 10,
    -- Both the account and the subscription of a referral must be older than this; 0
    -- disables the cooldown.
    cooldown_days     integer     NOT NULL DEFAULT 7 CHECK (cooldown_days BETWEEN 0 AND 3650),
    -- A referral sharing an IP hash the referrer used within this many days does not count.
    ip_window_days    integer     NOT NULL DEFAULT 30 CHECK (ip_window_days BETWEEN 1 AND 3650),
    -- A referral without a registered event carrying an IP hash does not count.
    require_ip_hash   boolean     NOT NULL DEFAULT true,
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id),
    CONSTRAINT referral_settings_badges_check CHECK (elite_badge_at > verified_badge_at)
);

-- referral_settings_effective: every tenant's referral settings, the defaults where it has
-- no row. Every referral query reads settings through it.
CREATE VIEW referral_settings_effective AS
SELECT t.id                                 AS tenant_id,
       coalesce(s.batch_size, 3)            AS batch_size,
       coalesce(s.bonus_per_batch, 5)       AS bonus_per_batch,
       coalesce(s.verified_badge_at, 3)     AS verified_badge_at,
       coalesce(s.elite_badge_at, 10)       AS elite_badge_at,
       coalesce(s.cooldown_days, 7)         AS cooldown_days,
       coalesce(s.ip_window_days, 30)       AS ip_window_days,
       coalesce(s.require_ip_hash, true)    AS require_ip_hash,
       s.updated_at                         AS updated_at
FROM tenants t
LEFT JOIN referral_settings s ON s.tenant_id = t.id;

CREATE TYPE referral_badge AS ENUM ('verified_referrer', 'elite_referrer');

-- referral_rewards: the stored reward of each referrer, as the last recompute that changed
-- it left it. A customer without a row has no reward (all zero). bonus_units adds to
-- max_machines on the referrer's licences (LicenseValidate, MachineActivate).
CREATE TABLE referral_rewards (
    tenant_id                  uuid           NOT NULL,
    customer_id                uuid           NOT NULL,
    referred_total             integer        NOT NULL CHECK (referred_total >= 0),
    qualified_total            integer        NOT NULL CHECK (qualified_total >= 0),
    disqualified_cooldown      integer        NOT NULL CHECK (disqualified_cooldown >= 0),
    disqualified_missing_ip    integer        NOT NULL CHECK (disqualified_missing_ip >= 0),
    disqualified_shared_ip     integer        NOT NULL CHECK (disqualified_shared_ip >= 0),
    disqualified_duplicate_ip  integer        NOT NULL CHECK (disqualified_duplicate_ip >= 0),
    bonus_units                integer        NOT NULL CHECK (bonus_units >= 0),
    badge                      referral_badge,
    -- computed_at is when a recompute last changed the row (recomputes that find the same
    -- values do not write).
    computed_at                timestamptz    NOT NULL,
    PRIMARY KEY (tenant_id, customer_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

-- ReferralLeaderboard: a tenant's referrers by qualified referrals.
CREATE INDEX referral_rewards_leaderboard_idx ON referral_rewards (tenant_id, qualified_total DESC, customer_id);

-- +goose Down
DROP TABLE referral_rewards;
DROP TYPE referral_badge;
DROP VIEW referral_settings_effective;
DROP TABLE referral_settings;
