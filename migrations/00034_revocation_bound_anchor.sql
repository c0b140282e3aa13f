-- +goose Up
-- Revocation bounds re-anchored (issue 15): a licence's priority_bound was its score at the
-- start of its staleness, minus the staleness line there, so it loosened as time passed
-- (license age and owner hours fall, the owner's last revocation recedes): about 23 points
-- on the bench's never-checked licences, so the pick re-scored every licence within 23 hours
-- of staleness of the best, a count that grows with the data set. Each bound now records the
-- instant it was computed at, priority_anchor, and is valid from there on; the check loop
-- re-anchors the licences its pick had to re-score (RevocationBoundsTighten), so bounds stay
-- tight near the head of the queue.

-- revocation_bound: the stored, time-free part of an upper bound of a licence's score,
-- computed at instant "at" (its anchor): at any instant T at or after "at", while its owner's
-- aggregates only change as the triggers below allow, score(T) <= revocation_bound +
-- w.staleness * epoch(T) / 3600. It is the score at "at" minus the staleness line's value
-- there: score(T) - w.staleness * epoch(T) / 3600 never rises as T grows, as terms 1 and 3
-- are fixed, terms 2, 4 and 5 only fall (4 because the licence counts among its owner's
-- unrevoked ones, so the owner's other hours grow with time) and term 6 minus the line is
-- -w.staleness * hours(min(T, stale_from)). Any anchor gives a valid bound; the closer to T,
-- the tighter.
-- +goose StatementBegin
CREATE FUNCTION revocation_bound(w revocation_weights, s upstream_owner_stats,
                                 acquired_at timestamptz, stale_from timestamptz, at timestamptz) RETURNS float8
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT revocation_score(w, at, s, acquired_at, stale_from) - w.staleness * date_part('epoch', at) / 3600
$$;
-- +goose StatementEnd

-- revocation_stores: the stores whose licences the revocation pick considers: enabled
-- ones, of a tenant with an enabled webhook endpoint subscribed to license.upstream_revoked
-- (the log channel), with whether the tenant is live (a sandbox tenant's checks come due by
-- its own clock). Read by RevocationQueue and RevocationBoundsTighten.
CREATE VIEW revocation_stores AS
SELECT st.tenant_id, st.id AS store_id, t.clock_at IS NULL AS live
FROM upstream_stores st
JOIN tenants t ON t.id = st.tenant_id
WHERE st.enabled
  AND st.tenant_id IN (SELECT e.tenant_id FROM webhook_endpoints e
                       WHERE e.enabled AND 'license.upstream_revoked' = ANY(e.event_types));

-- priority_anchor: the instant priority_bound was computed at; RevocationQueue uses the
-- bound only at or after it (and re-scores the licences anchored later than its @now).
ALTER TABLE upstream_licenses ADD COLUMN priority_anchor timestamptz NOT NULL DEFAULT '-infinity';
UPDATE upstream_licenses SET priority_anchor = coalesce(last_checked_at, imported_at) WHERE gone_at IS NULL;

-- upstream_licenses_bound anchors a licence's bound at the start of its staleness as it is
-- imported, re-owned or checked (an import or a check happens at its own now, so the bound is
-- tight then).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION upstream_licenses_bound() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.priority_anchor := coalesce(NEW.last_checked_at, NEW.imported_at);
    SELECT revocation_bound(w, s, NEW.acquired_at, NEW.priority_anchor, NEW.priority_anchor)
    INTO NEW.priority_bound
    FROM revocation_weights w
    LEFT JOIN upstream_owner_stats s ON s.tenant_id = NEW.tenant_id AND s.customer_id = NEW.customer_id;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

-- upstream_owner_stats_bounds recomputes, at their anchors, the bounds of an owner's pending
-- licences when the owner's aggregates change in a way that could raise a score: a revocation
-- (terms 1-3 grow) or a licence leaving (term 4 grows). One more unrevoked licence, acquired
-- at A (the sum's change), only adds hours T - A to the others' term 4, which never raises it
-- once T >= A, so only the licences anchored before A are recomputed (an import touches none
-- of an owner's earlier imports of the same batch).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION upstream_owner_stats_bounds() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    since timestamptz := 'infinity';
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.revoked_count = OLD.revoked_count AND NEW.revoked_seconds = OLD.revoked_seconds
       AND NEW.last_revoked_at IS NOT DISTINCT FROM OLD.last_revoked_at THEN
        IF NEW.unrevoked_count = OLD.unrevoked_count AND NEW.unrevoked_start_sum = OLD.unrevoked_start_sum THEN
            RETURN NULL;
        ELSIF NEW.unrevoked_count = OLD.unrevoked_count + 1 THEN
            since := to_timestamp(NEW.unrevoked_start_sum - OLD.unrevoked_start_sum);
        END IF;
    END IF;
    UPDATE upstream_licenses ul
    SET priority_bound = revocation_bound(w, NEW, ul.acquired_at, coalesce(ul.last_checked_at, ul.imported_at), ul.priority_anchor)
    FROM revocation_weights w
    WHERE ul.tenant_id = NEW.tenant_id AND ul.customer_id = NEW.customer_id AND ul.gone_at IS NULL
      AND ul.priority_anchor < since;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- revocation_weights_bounds recomputes every pending licence's bound, at its anchor, when the
-- weights change.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION revocation_weights_bounds() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE upstream_licenses ul
    SET priority_bound = revocation_bound(w, s, ul.acquired_at, coalesce(ul.last_checked_at, ul.imported_at), ul.priority_anchor)
    FROM revocation_weights w, upstream_licenses l
    LEFT JOIN upstream_owner_stats s ON s.tenant_id = l.tenant_id AND s.customer_id = l.customer_id
    WHERE l.tenant_id = ul.tenant_id AND l.license_id = ul.license_id AND ul.gone_at IS NULL;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

DROP FUNCTION revocation_bound(revocation_weights, upstream_owner_stats, timestamptz, timestamptz);

-- RevocationQueue always re-scores the licences anchored after @now (a bound holds only from
-- its anchor on): normally none.
DROP INDEX upstream_licenses_stale_from_idx;
CREATE INDEX upstream_licenses_anchor_idx ON upstream_licenses (tenant_id, store_id, priority_anchor)
    WHERE gone_at IS NULL;

-- +goose Down
DROP VIEW revocation_stores;
DROP INDEX upstream_licenses_anchor_idx;
CREATE INDEX upstream_licenses_stale_from_idx ON upstream_licenses (tenant_id, store_id, (coalesce(last_checked_at, imported_at)))
    WHERE gone_at IS NULL;
-- +goose StatementBegin
CREATE FUNCTION revocation_bound(w revocation_weights, s upstream_owner_stats,
                                 acquired_at timestamptz, stale_from timestamptz) RETURNS float8
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT revocation_score(w, stale_from, s, acquired_at, stale_from) - w.staleness * date_part('epoch', stale_from) / 3600
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION upstream_licenses_bound() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT revocation_bound(w, s, NEW.acquired_at, coalesce(NEW.last_checked_at, NEW.imported_at))
    INTO NEW.priority_bound
    FROM revocation_weights w
    LEFT JOIN upstream_owner_stats s ON s.tenant_id = NEW.tenant_id AND s.customer_id = NEW.customer_id;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION upstream_owner_stats_bounds() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    since timestamptz := 'infinity';
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.revoked_count = OLD.revoked_count AND NEW.revoked_seconds = OLD.revoked_seconds
       AND NEW.last_revoked_at IS NOT DISTINCT FROM OLD.last_revoked_at THEN
        IF NEW.unrevoked_count = OLD.unrevoked_count AND NEW.unrevoked_start_sum = OLD.unrevoked_start_sum THEN
            RETURN NULL;
        ELSIF NEW.unrevoked_count = OLD.unrevoked_count + 1 THEN
            since := to_timestamp(NEW.unrevoked_start_sum - OLD.unrevoked_start_sum);
        END IF;
    END IF;
    UPDATE upstream_licenses ul
    SET priority_bound = revocation_bound(w, NEW, ul.acquired_at, coalesce(ul.last_checked_at, ul.imported_at))
    FROM revocation_weights w
    WHERE ul.tenant_id = NEW.tenant_id AND ul.customer_id = NEW.customer_id AND ul.gone_at IS NULL
      AND coalesce(ul.last_checked_at, ul.imported_at) < since;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION revocation_weights_bounds() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE upstream_licenses ul
    SET priority_bound = revocation_bound(w, s, ul.acquired_at, coalesce(ul.last_checked_at, ul.imported_at))
    FROM revocation_weights w, upstream_licenses l
    LEFT JOIN upstream_owner_stats s ON s.tenant_id = l.tenant_id AND s.customer_id = l.customer_id
    WHERE l.tenant_id = ul.tenant_id AND l.license_id = ul.license_id AND ul.gone_at IS NULL;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
UPDATE revocation_weights SET id = true; -- recomputes the bounds at the start of staleness
DROP FUNCTION revocation_bound(revocation_weights, upstream_owner_stats, timestamptz, timestamptz, timestamptz);
ALTER TABLE upstream_licenses DROP COLUMN priority_anchor;
