-- name: MachineActivate :one
-- MachineActivate activates a fingerprint on an active licence if a slot is free: fewer
-- active machines than its effective limit, license_machine_limits (max_machines plus the
-- customer's stored referral bonus; NULL = unlimited). The caller has locked the licence
-- (LicenseGetForUpdate) in this transaction, so concurrent activations count one at a
-- time and exactly one can take the last slot. No row means no free slot or an inactive
-- licence; a fingerprint already active violates machines_active_fingerprint_key.
INSERT INTO machines (tenant_id, id, license_id, fingerprint, name, activated_at)
SELECT l.tenant_id, @id::uuid, l.id, @fingerprint::text, sqlc.narg(name)::text, sqlc.arg(now)::timestamptz
FROM licenses l
JOIN license_machine_limits ml ON ml.tenant_id = l.tenant_id AND ml.license_id = l.id
WHERE l.tenant_id = @tenant_id::uuid AND l.id = @license_id::uuid AND l.status = 'active'
  AND (ml.max_machines IS NULL OR ml.max_machines > (
        SELECT count(*) FROM machines m
        WHERE m.tenant_id = l.tenant_id AND m.license_id = l.id AND m.deactivated_at IS NULL))
RETURNING *;

-- name: MachineGetActiveByFingerprint :one
-- MachineGetActiveByFingerprint finds the active machine of a licence with a fingerprint
-- (machines_active_fingerprint_key).
SELECT * FROM machines
WHERE tenant_id = @tenant_id::uuid AND license_id = @license_id::uuid
  AND fingerprint = @fingerprint::text AND deactivated_at IS NULL;

-- name: MachineDeactivate :one
-- MachineDeactivate deactivates one active machine of a licence; no row means it is not
-- an active machine of that licence.
UPDATE machines SET deactivated_at = sqlc.arg(now)::timestamptz
WHERE tenant_id = @tenant_id::uuid AND license_id = @license_id::uuid AND id = @id::uuid
  AND deactivated_at IS NULL
RETURNING *;

-- name: MachineList :many
-- MachineList pages through a licence's machines, newest first; inactive ones only when
-- asked (machines_active_fingerprint_key covers the active ones; the licence has few).
SELECT * FROM machines
WHERE tenant_id = @tenant_id::uuid AND license_id = @license_id::uuid
  AND (@include_inactive::boolean OR deactivated_at IS NULL)
  AND (sqlc.narg(after)::uuid IS NULL OR id < sqlc.narg(after)::uuid)
ORDER BY id DESC
LIMIT @row_limit::int;

-- name: LicenseMachineLimit :one
-- LicenseMachineLimit is a licence's effective machine limit (license_machine_limits:
-- max_machines plus its customer's referral bonus; NULL = unlimited), which a refused
-- activation names. Primary keys.
SELECT ml.max_machines
FROM licenses l
LEFT JOIN license_machine_limits ml ON ml.tenant_id = l.tenant_id AND ml.license_id = l.id
WHERE l.tenant_id = @tenant_id::uuid AND l.id = @license_id::uuid;
