-- name: ReplicationFlushedLSN :one
-- ReplicationFlushedLSN is the primary's WAL position flushed to disk, as a byte offset
-- (pg_lsn minus 0/0, so that positions compare as numbers): every transaction committed
-- before it was read (with synchronous_commit on) lies before it, and a streaming replica can
-- only have received WAL up to it. The read-replica monitor (internal/replica) compares it
-- with ReplicationReplayedLSN. Reads no table.
SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint AS lsn;

-- name: ReplicationReplayedLSN :one
-- ReplicationReplayedLSN says whether the database is a standby (in recovery) and, if it is,
-- up to which byte offset of the primary's WAL it has replayed (-1 when it is not a standby):
-- its data holds every transaction committed before that offset. Reads no table.
SELECT pg_is_in_recovery()::boolean AS standby,
       COALESCE((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, -1)::bigint AS lsn;
