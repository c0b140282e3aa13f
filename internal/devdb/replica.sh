#!/usr/bin/env bash
# replica.sh: start (or reuse) a small Postgres primary cluster and its streaming replica in
# DIR, and print their URLs on stdout: the primary's on the first line, the replica's on the
# second (database postgres). The read-replica tests start one (internal/testdb.Replicated);
# the README's "Read replica" section uses one to try TESSERA_READ_DATABASE_URL.
#
#   internal/devdb/replica.sh start DIR  create what is missing, start what is stopped, print the URLs
#   internal/devdb/replica.sh kill DIR   stop the replica at once (pg_ctl stop -m immediate), as a
#                                        crash would; start brings it back, and it catches up
#   internal/devdb/replica.sh stop DIR   stop both
#
# The primary is created with initdb; the replica is a pg_basebackup -R of it, which streams
# the primary's WAL and replays it (hot standby: it answers read-only queries). Both listen only
# on Unix sockets in DIR/run (the primary on port 5432, the replica on 5433: no TCP port to
# collide with) and trust local connections. Like the embedded database (devdb.sh) they trade
# durability for speed (fsync=off): the pair is throwaway. The primary keeps 256 MB of WAL
# (wal_keep_size), so a replica that was killed catches up without a replication slot. Postgres
# refuses to run as root, so as root they run as the `postgres` user, and DIR is given to it.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"

log() { echo "replica: $*" >&2; }
# shellcheck source=internal/devdb/lib.sh
. "$root/internal/devdb/lib.sh"

if [ $# -ne 2 ]; then
	log "usage: $0 start|kill|stop DIR"
	exit 2
fi
dir="$2"
primary="$dir/primary"
replica="$dir/replica"
sock="$dir/run"
primary_port=5432
replica_port=5433

bindir="$("$root/internal/devdb/devdb.sh" bindir)"

# running DATA: whether the cluster in DATA is running.
running() { [ -f "$1/PG_VERSION" ] && as_owner "$bindir/pg_ctl" -D "$1" status >/dev/null 2>&1; }

case "$1" in
kill)
	if running "$replica"; then as_owner "$bindir/pg_ctl" -D "$replica" -m immediate stop >&2; fi
	exit 0
	;;
stop)
	for data in "$replica" "$primary"; do
		if running "$data"; then as_owner "$bindir/pg_ctl" -D "$data" -m immediate stop >&2; fi
	done
	exit 0
	;;
start) ;;
*)
	log "usage: $0 start|kill|stop DIR"
	exit 2
	;;
esac

prepare_dir "$dir" "$sock" "use a shorter DIR"
as_owner mkdir -p "$sock"

# start_cluster DATA PORT: start the cluster in DATA on PORT unless it runs.
start_cluster() {
	if ! running "$1"; then
		as_owner "$bindir/pg_ctl" -D "$1" -l "$1.log" -w -t 60 start \
			-o "-c listen_addresses='' -k $sock -p $2 -c fsync=off -c full_page_writes=off -c wal_keep_size=256MB" >/dev/null
	fi
}

if [ ! -f "$primary/PG_VERSION" ]; then
	as_owner "$bindir/initdb" -D "$primary" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 --no-sync >/dev/null
fi
start_cluster "$primary" "$primary_port"

if [ ! -f "$replica/PG_VERSION" ]; then
	# -R writes standby.signal and primary_conninfo (this socket, this port); -X stream copies
	# the WAL written during the copy; --no-sync because the pair is throwaway.
	as_owner "$bindir/pg_basebackup" -h "$sock" -p "$primary_port" -U postgres -D "$replica" -R -X stream -c fast --no-sync
fi
start_cluster "$replica" "$replica_port"

for port in "$primary_port" "$replica_port"; do
	echo "postgres://postgres@/postgres?host=$sock&port=$port&sslmode=disable"
done
