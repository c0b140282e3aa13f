-- +goose Up
-- The revocation pick (RevocationQueue) without scoring every eligible licence: each pending
-- licence keeps an upper bound of its risk score, indexed, so the pick re-scores exactly only
-- the few licences whose bound can still beat the best exact score found.

-- revocation_weights: the weights of the risk score's six terms (SPEC 5), one row for all
-- processes. They are configuration (TESSERA_REVOCATION_WEIGHT_*), written here as a process
-- starts (RevocationWeightsSet); the stored bounds are computed with them, and
-- RevocationQueue scores with them, so the pick and its bounds always agree.
CREATE TABLE revocation_weights (
    id                boolean PRIMARY KEY DEFAULT true CHECK (id),
    revoked_count     float8  NOT NULL CHECK (revoked_count >= 0),
    recent_revocation float8  NOT NULL CHECK (recent_revocation >= 0),
    revoked_hours     float8  NOT NULL CHECK (revoked_hours >= 0),
    owner_hours       float8  NOT NULL CHECK (owner_hours >= 0),
    license_age       float8  NOT NULL CHECK (license_age >= 0),
    staleness         float8  NOT NULL CHECK (staleness >= 0)
);
INSERT INTO revocation_weights (id, revoked_count, recent_revocation, revoked_hours, owner_hours, license_age, staleness)
VALUES (true, 10, 10, 2, 1, 1, 1);

-- revocation_terms: the six weighted terms of a licence's risk score at instant "at" (SPEC 5),
-- from its owner's aggregates s (NULL when the owner has none), its acquisition time and
-- stale_from, the start of its staleness (its last answered check, else its import):
--   [1] +w * ln(1 + licences of the owner gone upstream)
--   [2] +w / (1 + days since the owner's last revocation), 0 if none
--   [3] +w * ln(1 + hours the owner held licences before they went)
--   [4] -w * ln(1 + hours of the owner's other unrevoked licences)
--   [5] -w * ln(1 + hours since this licence was acquired)
--   [6] +w * hours since stale_from
-- The score is their sum, added in this order. Epochs are date_part (float8), not extract
-- (numeric, several times slower per row). STABLE (date_part of a timestamptz is) and inlined.
-- +goose StatementBegin
CREATE FUNCTION revocation_terms(w revocation_weights, at timestamptz, s upstream_owner_stats,
                                 acquired_at timestamptz, stale_from timestamptz) RETURNS float8[]
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT ARRAY[
    w.revoked_count * ln(1 + coalesce(s.revoked_count, 0)),
    CASE WHEN s.last_revoked_at IS NULL THEN 0::float8
         ELSE w.recent_revocation / (1 + greatest(0, date_part('epoch', at - s.last_revoked_at)) / 86400)
    END,
    w.revoked_hours * ln(1 + coalesce(s.revoked_seconds, 0)::float8 / 3600),
    -w.owner_hours * ln(1 + greatest(0,
        (coalesce(s.unrevoked_count, 0) * date_part('epoch', at)
         - coalesce(s.unrevoked_start_sum, 0)
         - date_part('epoch', at - acquired_at)) / 3600)),
    -w.license_age * ln(1 + greatest(0, date_part('epoch', at - acquired_at)) / 3600),
    w.staleness * greatest(0, date_part('epoch', at - stale_from)) / 3600
]::float8[]
$$;
-- +goose StatementEnd

-- revocation_score: the risk score at instant "at", the sum of revocation_terms in order.
-- PL/pgSQL so that each call is an expression with a plan cached for the session (a SQL
-- function holding the terms in a FROM could not be inlined, and would be planned again at
-- every statement of the triggers below).
-- +goose StatementBegin
CREATE FUNCTION revocation_score(w revocation_weights, at timestamptz, s upstream_owner_stats,
                                 acquired_at timestamptz, stale_from timestamptz) RETURNS float8
    LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    t float8[] := revocation_terms(w, at, s, acquired_at, stale_from);
BEGIN
    RETURN t[1] + t[2] + t[3] + t[4] + t[5] + t[6];
END
$$;
-- +goose StatementEnd

-- revocation_bound: the stored, time-free part of an upper bound of a licence's score: at any
-- instant T at or after stale_from, while its owner's aggregates only change as the triggers
-- below allow, score(T) <= revocation_bound + w.staleness * epoch(T) / 3600. It is the
-- score at stale_from (where term 6 is 0) minus the staleness line's value there: terms 2, 4
-- and 5 only fall as time passes (4 because the licence counts among its owner's unrevoked
-- ones, so the owner's other hours grow with time), 1 and 3 are fixed, and 6 grows along
-- that line.
-- +goose StatementBegin
CREATE FUNCTION revocation_bound(w revocation_weights, s upstream_owner_stats,
                                 acquired_at timestamptz, stale_from timestamptz) RETURNS float8
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT revocation_score(w, stale_from, s, acquired_at, stale_from) - w.staleness * date_part('epoch', stale_from) / 3600
$$;
-- +goose StatementEnd

-- priority_bound: revocation_bound of the licence with the current weights and its owner's
-- aggregates, kept by the triggers below. A row not yet computed is +infinity: always
-- re-scored, never skipped.
ALTER TABLE upstream_licenses ADD COLUMN priority_bound float8 NOT NULL DEFAULT 'Infinity';

-- upstream_licenses_bound computes a licence's bound as it is imported, re-owned or checked.
-- +goose StatementBegin
CREATE FUNCTION upstream_licenses_bound() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT revocation_bound(w, s, NEW.acquired_at, coalesce(NEW.last_checked_at, NEW.imported_at))
    INTO NEW.priority_bound
    FROM revocation_weights w
    LEFT JOIN upstream_owner_stats s ON s.tenant_id = NEW.tenant_id AND s.customer_id = NEW.customer_id;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER upstream_licenses_bound BEFORE INSERT OR UPDATE OF customer_id, acquired_at, imported_at, last_checked_at
    ON upstream_licenses FOR EACH ROW EXECUTE FUNCTION upstream_licenses_bound();

-- upstream_owner_stats_bounds recomputes the bounds of an owner's pending licences when the
-- owner's aggregates change in a way that could raise a score: a revocation (terms 1-3 grow)
-- or a licence leaving (term 4 grows). One more unrevoked licence, acquired at A (the sum's
-- change), only adds hours T - A to the others' term 4, which never raises it once T >= A,
-- so only the licences whose staleness starts before A are recomputed (an import touches
-- none of an owner's earlier imports of the same batch).
-- +goose StatementBegin
CREATE FUNCTION upstream_owner_stats_bounds() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER upstream_owner_stats_bounds AFTER INSERT OR UPDATE ON upstream_owner_stats
    FOR EACH ROW EXECUTE FUNCTION upstream_owner_stats_bounds();

-- revocation_weights_bounds recomputes every pending licence's bound when the weights change.
-- +goose StatementBegin
CREATE FUNCTION revocation_weights_bounds() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER revocation_weights_bounds AFTER UPDATE ON revocation_weights
    FOR EACH ROW EXECUTE FUNCTION revocation_weights_bounds();

UPDATE revocation_weights SET id = true; -- computes the bounds of existing licences

-- RevocationQueue walks each enabled store's pending licences from the highest bound down.
CREATE INDEX upstream_licenses_priority_idx ON upstream_licenses (tenant_id, store_id, priority_bound DESC)
    WHERE gone_at IS NULL;
-- RevocationQueue always re-scores the licences whose staleness starts after @now (a bound
-- holds only from stale_from on): normally none.
CREATE INDEX upstream_licenses_stale_from_idx ON upstream_licenses (tenant_id, store_id, (coalesce(last_checked_at, imported_at)))
    WHERE gone_at IS NULL;

-- +goose Down
DROP INDEX upstream_licenses_stale_from_idx;
DROP INDEX upstream_licenses_priority_idx;
DROP TRIGGER revocation_weights_bounds ON revocation_weights;
DROP FUNCTION revocation_weights_bounds();
DROP TRIGGER upstream_owner_stats_bounds ON upstream_owner_stats;
DROP FUNCTION upstream_owner_stats_bounds();
DROP TRIGGER upstream_licenses_bound ON upstream_licenses;
DROP FUNCTION upstream_licenses_bound();
ALTER TABLE upstream_licenses DROP COLUMN priority_bound;
DROP FUNCTION revocation_bound(revocation_weights, upstream_owner_stats, timestamptz, timestamptz);
DROP FUNCTION revocation_score(revocation_weights, timestamptz, upstream_owner_stats, timestamptz, timestamptz);
DROP FUNCTION revocation_terms(revocation_weights, timestamptz, upstream_owner_stats, timestamptz, timestamptz);
DROP TABLE revocation_weights;
