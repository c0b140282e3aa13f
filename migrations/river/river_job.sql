-- River's job table as sqlc needs to know it, so that queries can ask whether an object still
-- has a live job (the orphan sweeps in queries/payins.sql) and count the jobs waiting in
-- each queue (queries/river_jobs.sql). River creates and owns the real
-- table (rivermigrate, run by `tessera migrate` before goose); goose never runs this file
-- (migrations.FS embeds only the top-level *.sql). Only the columns Tessera's queries read
-- are listed, with River's types.
CREATE TYPE river_job_state AS ENUM ('available', 'cancelled', 'completed', 'discarded', 'pending', 'retryable', 'running', 'scheduled');

CREATE TABLE river_job (
    id           bigserial       PRIMARY KEY,
    state        river_job_state NOT NULL,
    finalized_at timestamptz,
    args         jsonb           NOT NULL,
    kind         text            NOT NULL,
    queue        text            NOT NULL,
    scheduled_at timestamptz     NOT NULL
);
