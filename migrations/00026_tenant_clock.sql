-- +goose Up
-- tenants.clock_at is a tenant's clock. NULL is a live tenant: its requests, jobs and sweeps
-- run on the server's real time. Non-NULL is a sandbox tenant: its clock stands frozen at
-- clock_at, and everything it does (API calls, validation, its jobs) happens at that instant
-- until the clock is moved forward. A tenant's mode is fixed at creation.
ALTER TABLE tenants ADD COLUMN clock_at timestamptz;

-- tenants_clock_guard refuses, as a check violation:
--   * any change of a tenant's mode: a live tenant (clock_at NULL) never gets a sandbox
--     clock, and a sandbox tenant never loses its clock and becomes live — a live tenant's
--     subscriptions, keys and licences can never be put on sandbox time, nor a sandbox's
--     made real;
--   * any move of a sandbox clock backwards: time in a sandbox only goes forward, so every
--     state it reached stays reachable in the order its events happened.
-- +goose StatementBegin
CREATE FUNCTION tenants_clock_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER tenants_clock_guard BEFORE UPDATE OF clock_at ON tenants
FOR EACH ROW EXECUTE FUNCTION tenants_clock_guard();

-- +goose Down
DROP TRIGGER tenants_clock_guard ON tenants;
DROP FUNCTION tenants_clock_guard();
ALTER TABLE tenants DROP COLUMN clock_at;
