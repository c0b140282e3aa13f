-- +goose Up
-- upstream_licenses: the revocation-check state of each imported licence (origin
-- 'external'). acquired_at is when the buyer got it from the store; gone_at is set once a
-- check found it removed upstream and never cleared. last_checked_at is the last check that
-- got an answer (exists or gone); retry_after holds a licence back after an error (the short
-- backoff) and while a check of it is in flight (its lease).
CREATE TABLE upstream_licenses (
    tenant_id       uuid        NOT NULL,
    license_id      uuid        NOT NULL,
    store_id        uuid        NOT NULL,
    customer_id     uuid        NOT NULL,
    acquired_at     timestamptz NOT NULL,
    imported_at     timestamptz NOT NULL,
    gone_at         timestamptz,
    last_checked_at timestamptz,
    retry_after     timestamptz,
    check_errors    integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, license_id),
    FOREIGN KEY (tenant_id, license_id) REFERENCES licenses (tenant_id, id),
    FOREIGN KEY (tenant_id, store_id) REFERENCES upstream_stores (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

-- RevocationQueue scans the licences not yet gone; the partial index keeps gone ones out.
CREATE INDEX upstream_licenses_pending_idx ON upstream_licenses (tenant_id, customer_id) WHERE gone_at IS NULL;

-- upstream_owner_stats: per-owner aggregates of the risk score, maintained in the
-- transactions that import licences and record gone checks, so RevocationQueue never
-- aggregates licences. Unrevoked licence-hours at any @now are
-- (unrevoked_count * epoch(@now) - unrevoked_start_sum) / 3600.
CREATE TABLE upstream_owner_stats (
    tenant_id           uuid        NOT NULL,
    customer_id         uuid        NOT NULL,
    revoked_count       integer     NOT NULL DEFAULT 0 CHECK (revoked_count >= 0),
    last_revoked_at     timestamptz,
    revoked_seconds     bigint      NOT NULL DEFAULT 0 CHECK (revoked_seconds >= 0),
    unrevoked_count     integer     NOT NULL DEFAULT 0 CHECK (unrevoked_count >= 0),
    unrevoked_start_sum bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, customer_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

CREATE TYPE upstream_check_outcome AS ENUM ('exists', 'gone', 'error');

-- upstream_license_checks: every check of an imported licence.
CREATE TABLE upstream_license_checks (
    tenant_id       uuid                   NOT NULL,
    id              uuid                   NOT NULL,
    license_id      uuid                   NOT NULL,
    store_id        uuid                   NOT NULL,
    checked_at      timestamptz            NOT NULL,
    outcome         upstream_check_outcome NOT NULL,
    upstream_status integer,
    error           text,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, license_id) REFERENCES upstream_licenses (tenant_id, license_id),
    FOREIGN KEY (tenant_id, store_id) REFERENCES upstream_stores (tenant_id, id)
);

-- UpstreamCheckList: a licence's checks, newest first.
CREATE INDEX upstream_license_checks_license_idx ON upstream_license_checks (tenant_id, license_id, id);

-- revocation_limiter: the global rate limit of upstream requests, one row for all
-- processes. A firing of revocation.check may make requests only after moving
-- next_allowed_at forward with a guarded update (RevocationLimiterAcquire).
CREATE TABLE revocation_limiter (
    id              boolean     PRIMARY KEY DEFAULT true CHECK (id),
    next_allowed_at timestamptz NOT NULL
);
INSERT INTO revocation_limiter (id, next_allowed_at) VALUES (true, '-infinity');

-- +goose Down
DROP TABLE revocation_limiter;
DROP TABLE upstream_license_checks;
DROP TYPE upstream_check_outcome;
DROP TABLE upstream_owner_stats;
DROP TABLE upstream_licenses;
