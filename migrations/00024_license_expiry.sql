-- +goose Up
-- tessera_license_expiry is the one statement of the rule "a paid-up licence expires at its
-- period's end plus the policy's grace days", used by every query that sets or
-- checks such an expiry: LicenseIssue (the first period ends @now plus period_days),
-- LicenseApplyRenewal, TierChangeApply and SubscriptionLapseDueAllTenants (a past_due
-- subscription lapses once this moment has passed). Days are calendar days, added as
-- `timestamptz + interval` adds them (in the session's TimeZone, as the expressions it
-- replaces did): that addition is only STABLE in Postgres, so the function is STABLE, not
-- IMMUTABLE, and is inlined into the queries that call it. NULL in, NULL out.
-- +goose StatementBegin
CREATE FUNCTION tessera_license_expiry(period_end timestamptz, grace_days int) RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT period_end + make_interval(days => grace_days) $$;
-- +goose StatementEnd
COMMENT ON FUNCTION tessera_license_expiry(timestamptz, int) IS
    'When a licence paid up to period_end expires: period_end plus grace_days calendar days.';

-- +goose Down
DROP FUNCTION tessera_license_expiry(timestamptz, int);
