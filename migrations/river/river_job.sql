-- River's job table as sqlc needs to know it, so that queries can ask whether an object still
-- has a live job (the orphan sweeps in queries/payins.sql), count the jobs waiting in each
-- queue (queries/river_jobs.sql) and list a tenant's jobs (queries/jobs.sql). River creates
-- and owns the real table (rivermigrate, run by `tessera migrate` before goose); goose never
-- runs this file (migrations.FS embeds only the top-level *.sql). Only the columns Tessera's
-- queries read are listed, with River's types.
CREATE TYPE river_job_state AS ENUM ('available', 'cancelled', 'completed', 'discarded', 'pending', 'retryable', 'running', 'scheduled');

CREATE TABLE river_job (
    id           bigserial       PRIMARY KEY,
    state        river_job_state NOT NULL,
    attempt      smallint        NOT NULL,
    max_attempts smallint        NOT NULL,
    attempted_at timestamptz,
    created_at   timestamptz     NOT NULL,
    finalized_at timestamptz,
    scheduled_at timestamptz     NOT NULL,
    priority     smallint        NOT NULL,
    args         jsonb           NOT NULL,
    errors       jsonb[],
    kind         text            NOT NULL,
    metadata     jsonb           NOT NULL,
    queue        text            NOT NULL,
    tags         varchar(255)[]  NOT NULL
);
