-- +goose Up
-- Bounds of the amounts and counts a tenant sets, the same the API publishes (maximum in the
-- OpenAPI document), so that no conversion to sats, proration, payment or sum of them can
-- overflow a bigint (or max_machines plus a referral bonus an integer). NOT VALID: enforced on
-- every row written from now on, without refusing the migration over an older row.
ALTER TABLE policies
    ADD CONSTRAINT policies_listed_value_max CHECK (listed_value <= 1000000000000) NOT VALID,
    ADD CONSTRAINT policies_max_machines_max CHECK (max_machines <= 1000000) NOT VALID,
    ADD CONSTRAINT policies_tier_rank_range CHECK (tier_rank BETWEEN -1000000 AND 1000000) NOT VALID;
-- A custodial balance holds at most every bitcoin there will ever be (21,000,000 BTC), so that
-- adding a credit grant or an overpayment to it cannot overflow.
ALTER TABLE balances
    ADD CONSTRAINT balances_max CHECK (amount <= 2100000000000000) NOT VALID;

-- +goose Down
ALTER TABLE balances DROP CONSTRAINT balances_max;
ALTER TABLE policies
    DROP CONSTRAINT policies_tier_rank_range,
    DROP CONSTRAINT policies_max_machines_max,
    DROP CONSTRAINT policies_listed_value_max;
