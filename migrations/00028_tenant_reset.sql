-- +goose Up
-- tenant_data_tables lists the tables that hold a tenant's data: every table of the public
-- schema with a tenant_id column (partitions are reached through their parent), except the
-- tenant's identity — tenants itself, its API keys and its signing key — in an order the
-- foreign keys accept for deleting (each table before every table it references; a table
-- referencing itself is deleted in one statement) and, reversed, for copying. It reads the
-- catalog, so a table added later is listed without changing it.
-- +goose StatementBegin
CREATE FUNCTION tenant_data_tables() RETURNS TABLE (table_name text, round int)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    remaining oid[];
    ready oid[];
    n int := 0;
BEGIN
    SELECT coalesce(array_agg(c.oid), '{}') INTO remaining
    FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND c.relname NOT IN ('tenants', 'api_keys', 'tenant_signing_keys');
    WHILE cardinality(remaining) > 0 LOOP
        -- Ready: the remaining tables that no other remaining table references.
        SELECT coalesce(array_agg(r), '{}') INTO ready
        FROM unnest(remaining) r
        WHERE NOT EXISTS (
            SELECT FROM pg_constraint f
            WHERE f.contype = 'f' AND f.confrelid = r AND f.conrelid <> r AND f.conrelid = ANY (remaining));
        IF cardinality(ready) = 0 THEN
            RAISE EXCEPTION 'tenant tables reference each other in a cycle: %', remaining::regclass[];
        END IF;
        n := n + 1;
        RETURN QUERY SELECT c.relname::text, n FROM pg_class c WHERE c.oid = ANY (ready);
        remaining := ARRAY(SELECT unnest(remaining) EXCEPT SELECT unnest(ready));
    END LOOP;
END
$$;
-- +goose StatementEnd

-- tenant_reset deletes all of a sandbox tenant's data: every row of every table
-- tenant_data_tables lists, the audit log included, and its River jobs that have not
-- finished (those carrying its tenant_id in their metadata, see river_job_tenant_idx). The
-- tenant row, its API keys and its signing key stay. restart_at, when not NULL, is where
-- its clock then stands: any instant, even before the clock — nothing is left that
-- happened after it. It returns how many rows it deleted per table (river_job for the
-- jobs). A live tenant is refused (check violation tenants_sandbox_only) before anything is
-- deleted, so a live tenant's data can never be reset.
--
-- The two guards it passes are opened for this tenant only, and only while it runs:
-- tessera.tenant_reset, a transaction-local setting it sets to the tenant's id and clears
-- before returning, lets audit_log_delete_guard delete that tenant's audit rows and
-- tenants_clock_guard move that tenant's clock backwards. Ordinary writes never set it.
-- +goose StatementBegin
CREATE FUNCTION tenant_reset(reset_tenant uuid, restart_at timestamptz)
RETURNS TABLE (table_name text, deleted bigint) LANGUAGE plpgsql AS $$
DECLARE
    sandbox boolean;
    t text;
    n bigint;
BEGIN
    SELECT clock_at IS NOT NULL INTO sandbox FROM tenants WHERE id = reset_tenant FOR UPDATE;
    IF sandbox IS NULL THEN
        RAISE EXCEPTION 'tenant % does not exist', reset_tenant USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT sandbox THEN
        RAISE EXCEPTION 'tenant % is live: only a sandbox tenant can be reset', reset_tenant
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tenants_sandbox_only';
    END IF;
    PERFORM set_config('tessera.tenant_reset', reset_tenant::text, true);
    DELETE FROM river_job
    WHERE metadata ->> 'tenant_id' = reset_tenant::text
      AND state NOT IN ('completed', 'cancelled', 'discarded');
    GET DIAGNOSTICS n = ROW_COUNT;
    table_name := 'river_job'; deleted := n;
    RETURN NEXT;
    FOR t IN SELECT d.table_name FROM tenant_data_tables() d ORDER BY d.round, d.table_name LOOP
        EXECUTE format('DELETE FROM %I WHERE tenant_id = $1', t) USING reset_tenant;
        GET DIAGNOSTICS n = ROW_COUNT;
        table_name := t; deleted := n;
        RETURN NEXT;
    END LOOP;
    IF restart_at IS NOT NULL THEN
        UPDATE tenants SET clock_at = restart_at WHERE id = reset_tenant;
    END IF;
    PERFORM set_config('tessera.tenant_reset', '', true);
END
$$;
-- +goose StatementEnd

-- audit_log stays append-only: updates and truncation are refused as before, and a delete is
-- refused unless tenant_reset is deleting that row's tenant.
DROP TRIGGER audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- +goose StatementBegin
CREATE FUNCTION audit_log_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.tenant_id::text IS DISTINCT FROM nullif(current_setting('tessera.tenant_reset', true), '') THEN
        RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_log_delete_guard
    BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_delete_guard();

-- tenants_clock_guard, as in 00026, and a sandbox clock moves backwards only while
-- tenant_reset restarts that tenant (its data deleted in the same statement).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tenants_clock_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.clock_at IS NULL) <> (NEW.clock_at IS NULL) THEN
        RAISE EXCEPTION 'a tenant cannot switch between live and sandbox time'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tenants_clock_mode';
    END IF;
    IF NEW.clock_at < OLD.clock_at
       AND NEW.id::text IS DISTINCT FROM nullif(current_setting('tessera.tenant_reset', true), '') THEN
        RAISE EXCEPTION 'a sandbox clock cannot move backwards (from % to %)', OLD.clock_at, NEW.clock_at
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tenants_clock_forward';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tenants_clock_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.clock_at IS NULL) <> (NEW.clock_at IS NULL) THEN
        RAISE EXCEPTION 'a tenant cannot switch between live and sandbox time'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tenants_clock_mode';
    END IF;
    IF NEW.clock_at < OLD.clock_at THEN
        RAISE EXCEPTION 'a sandbox clock cannot move backwards (from % to %)', OLD.clock_at, NEW.clock_at
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tenants_clock_forward';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
DROP TRIGGER audit_log_delete_guard ON audit_log;
DROP FUNCTION audit_log_delete_guard();
DROP TRIGGER audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
DROP FUNCTION tenant_reset(uuid, timestamptz);
DROP FUNCTION tenant_data_tables();
