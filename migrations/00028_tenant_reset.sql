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

-- tenant_clone_map is, while tenant_clone runs, what changes in the copy: the source
-- tenant's id to the clone's, each globally unique id (a PayIn's) to a new one, each licence
-- key to the clone's re-signed key, and each of these ids also as 32 hex digits.
-- tenant_clone_text applies it to text: every uuid (with or without its dashes) or sandbox
-- licence key in it that the map names is replaced.
-- +goose StatementBegin
CREATE FUNCTION tenant_clone_text(t text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    m text;
    n text;
BEGIN
    IF t IS NULL THEN
        RETURN NULL;
    END IF;
    FOR m IN SELECT DISTINCT x[1] FROM regexp_matches(t,
        '(TST1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})', 'g') x
    LOOP
        SELECT new INTO n FROM tenant_clone_map WHERE old = m;
        IF n IS NOT NULL THEN
            t := replace(t, m, n);
        END IF;
    END LOOP;
    RETURN t;
END
$$;
-- +goose StatementEnd

-- tenant_clone copies all of a sandbox tenant's data (every table tenant_data_tables lists,
-- parents first, but idempotency_keys: a clone's client replays nothing of the source's) into
-- clone, a new sandbox tenant without data, and its unfinished River jobs. Rows keep their
-- (tenant_id, id) keys but for the tenant; what must differ across tenants changes
-- consistently in every column: a value of a unique index without tenant_id (payins.id,
-- payin_invoices' provider invoice id) — a uuid gets a new id with the same time prefix, so
-- ids keep their order; a text, the index's last column, when no mapped id changes it, gets
-- "~" and the clone's id —
-- and each licence key becomes the key re-signed for the clone (old_keys[i] → new_keys[i],
-- signed in Go with the clone's signing key). The map applies to every uuid, uuid[], text,
-- text[] and jsonb column (events, audit details, job args), and the jobs' metadata and tags.
-- A copied job has no unique key (River computes it on insert) and a running one is
-- available again. It returns the rows copied per table (river_job for the jobs). Both
-- tenants must be sandboxes (tenants_sandbox_only) and the clone must have no data.
-- +goose StatementBegin
CREATE FUNCTION tenant_clone(source uuid, clone uuid, old_keys text[], new_keys text[])
RETURNS TABLE (table_name text, copied bigint) LANGUAGE plpgsql AS $$
DECLARE
    t record;
    col record;
    exprs text[];
    cols text[];
    n bigint;
BEGIN
    IF (SELECT count(*) FROM tenants WHERE id IN (source, clone) AND clock_at IS NOT NULL) <> 2 THEN
        RAISE EXCEPTION 'only a sandbox tenant can be cloned, into a sandbox tenant'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tenants_sandbox_only';
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS tenant_clone_map (old text PRIMARY KEY, new text NOT NULL) ON COMMIT DROP;
    TRUNCATE tenant_clone_map;
    INSERT INTO tenant_clone_map VALUES (source::text, clone::text);
    INSERT INTO tenant_clone_map SELECT o, k FROM unnest(old_keys, new_keys) AS u(o, k);
    -- Globally unique uuids: a new id each, keeping the 60 bits of UUIDv7 time and sequence.
    FOR col IN
        SELECT c.relname AS tbl, a.attname AS att
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
        WHERE i.indisunique AND i.indnkeyatts = 1 AND a.atttypid = 'uuid'::regtype AND a.attname <> 'tenant_id'
          AND c.relname IN (SELECT d.table_name FROM tenant_data_tables() d)
    LOOP
        EXECUTE format('INSERT INTO tenant_clone_map SELECT %1$I::text, left(%1$I::text, 19) || right(gen_random_uuid()::text, 17) FROM %2$I WHERE tenant_id = $1',
            col.att, col.tbl) USING source;
    END LOOP;
    -- Each id also as 32 hex digits, as a sandbox invoice's id (sbx_ and its PayIn's) spells it.
    INSERT INTO tenant_clone_map SELECT replace(old, '-', ''), replace(new, '-', '') FROM tenant_clone_map WHERE old ~ '^[0-9a-f]{8}-';
    FOR t IN SELECT d.table_name FROM tenant_data_tables() d WHERE d.table_name <> 'idempotency_keys' ORDER BY d.round DESC, d.table_name LOOP
        SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum),
               array_agg(CASE
                   WHEN a.atttypid = 'uuid'::regtype THEN
                       format('coalesce((SELECT new::uuid FROM tenant_clone_map WHERE old = %1$I::text), %1$I)', a.attname)
                   WHEN a.atttypid = 'uuid[]'::regtype THEN
                       format('ARRAY(SELECT coalesce((SELECT new::uuid FROM tenant_clone_map WHERE old = x::text), x) FROM unnest(%1$I) x)', a.attname)
                   WHEN a.atttypid = 'text'::regtype AND EXISTS (
                       SELECT FROM pg_index i
                       WHERE i.indrelid = a.attrelid AND i.indisunique AND a.attnum = i.indkey[i.indnkeyatts - 1]
                         AND NOT EXISTS (SELECT FROM pg_attribute k WHERE k.attrelid = a.attrelid AND k.attname = 'tenant_id' AND k.attnum = ANY (i.indkey))) THEN
                       format('CASE WHEN tenant_clone_text(%1$I) = %1$I THEN %1$I || %2$L ELSE tenant_clone_text(%1$I) END', a.attname, '~' || clone::text)
                   WHEN a.atttypid = 'text'::regtype THEN format('tenant_clone_text(%I)', a.attname)
                   WHEN a.atttypid = 'text[]'::regtype THEN format('ARRAY(SELECT tenant_clone_text(x) FROM unnest(%I) x)', a.attname)
                   WHEN a.atttypid = 'jsonb'::regtype THEN format('tenant_clone_text(%I::text)::jsonb', a.attname)
                   ELSE quote_ident(a.attname)
               END ORDER BY a.attnum)
        INTO cols, exprs
        FROM pg_attribute a
        WHERE a.attrelid = ('public.' || quote_ident(t.table_name))::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
        EXECUTE format('INSERT INTO %I (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %I WHERE tenant_id = $1',
            t.table_name, array_to_string(cols, ', '), array_to_string(exprs, ', '), t.table_name) USING source;
        GET DIAGNOSTICS n = ROW_COUNT;
        table_name := t.table_name; copied := n;
        RETURN NEXT;
    END LOOP;
    INSERT INTO river_job (state, attempt, max_attempts, attempted_at, created_at, scheduled_at, priority, args, errors, kind, metadata, queue, tags)
    SELECT CASE WHEN state = 'running' THEN 'available'::river_job_state ELSE state END, attempt, max_attempts, attempted_at,
           created_at, scheduled_at, priority, tenant_clone_text(args::text)::jsonb, errors, kind,
           tenant_clone_text(metadata::text)::jsonb, queue, ARRAY(SELECT tenant_clone_text(x) FROM unnest(tags) x)::varchar(255)[]
    FROM river_job
    WHERE metadata ->> 'tenant_id' = source::text AND state NOT IN ('completed', 'cancelled', 'discarded')
    ORDER BY id;
    GET DIAGNOSTICS n = ROW_COUNT;
    table_name := 'river_job'; copied := n;
    RETURN NEXT;
    TRUNCATE tenant_clone_map;
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
DROP FUNCTION tenant_clone(uuid, uuid, text[], text[]);
DROP FUNCTION tenant_clone_text(text);
DROP FUNCTION tenant_reset(uuid, timestamptz);
DROP FUNCTION tenant_data_tables();
