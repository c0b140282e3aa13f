-- +goose Up
-- JobList (queries/jobs.sql): a tenant's River jobs, newest first, a page at a time. Every
-- job of a tenant carries its tenant id in its metadata (and the tag tenant_<id>), added as it
-- is inserted (jobargs.TenantJob). River's own GIN index on metadata finds a tenant's jobs but
-- not in id order, so every page of a tenant with many jobs would fetch and sort all of them;
-- this index walks a tenant's jobs in id order from the cursor, and JobGet's tenant check
-- needs nothing more than the primary key. Partial: jobs across tenants (the sweeps) have no
-- tenant and are not in it. It does not change River's schema, which River UI reads.
CREATE INDEX river_job_tenant_idx ON river_job ((metadata ->> 'tenant_id'), id)
    WHERE metadata ->> 'tenant_id' IS NOT NULL;

-- +goose Down
DROP INDEX river_job_tenant_idx;
