-- name: AuditLogAppend :exec
-- AuditLogAppend records one state change; it runs in the transaction of the change.
INSERT INTO audit_log (tenant_id, id, occurred_at, actor_type, actor_id, action, subject_type, subject_id, details, request_id)
VALUES (@tenant_id::uuid, @id::uuid, @now::timestamptz, @actor_type::text, @actor_id::text, @action::text,
        @subject_type::text, @subject_id::text, @details::jsonb, sqlc.narg(request_id)::text);

-- name: AuditLogList :many
-- AuditLogList pages through a tenant's audit log, newest first, before the cursor id
-- (primary key order; ids are UUIDv7).
SELECT * FROM audit_log
WHERE tenant_id = @tenant_id::uuid
  AND (sqlc.narg(after)::uuid IS NULL OR id < sqlc.narg(after)::uuid)
ORDER BY id DESC
LIMIT @row_limit::int;
