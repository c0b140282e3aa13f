#!/usr/bin/env bash
# devdb.sh: start (or reuse) Tessera's embedded default database, a private Postgres cluster
# in a project-local directory, and print its DATABASE_URL on stdout.
#
#   internal/devdb/devdb.sh start   create the cluster if needed, start it if stopped, print the URL
#   internal/devdb/devdb.sh stop    stop it
#   internal/devdb/devdb.sh secret  print the development TESSERA_SECRET_KEY, creating it once
#   internal/devdb/devdb.sh operator-password
#                                   print the development TESSERA_OPERATOR_PASSWORD (River UI's
#                                   sign-in), creating it once
#   internal/devdb/devdb.sh bindir  print the directory of the Postgres server binaries, installing
#                                   them first when missing (replica.sh uses it)
#
# The cluster listens only on a Unix socket inside the directory (no TCP port to collide
# with) and trusts local connections. It trades durability for speed (the README's "The
# embedded database's settings"): synchronous_commit=off loses the last commits (about 0.6 s,
# already acknowledged) when Postgres crashes; fsync=off and full_page_writes=off let an
# operating-system crash keep some commits and not others, or corrupt the cluster. It is for
# development and tests, never for data you keep: production runs Postgres' defaults.
# It loads pg_stat_statements, with which the benchmarks count the statements of a path.
# Postgres refuses to run as root, so as root it runs as the `postgres` user. Missing Postgres
# binaries are installed from Debian's `postgresql` package.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${TESSERA_DEVDB_DIR:-$root/.tessera}"
data="$dir/pgdata"
sock="$dir/run"
port=5432
dbname=tessera

log() { echo "devdb: $*" >&2; }
# shellcheck source=internal/devdb/lib.sh
. "$root/internal/devdb/lib.sh"

# kept FILE MAKE: print the development secret kept in $dir/FILE, creating it once with the
# command MAKE, readable by its owner only.
kept() {
	mkdir -p "$dir"
	if [ ! -s "$dir/$1" ]; then
		(umask 077 && "$2" >"$dir/$1")
	fi
	cat "$dir/$1"
}
# A secret key is 32 random bytes in standard base64; a password 18, in base64url (24
# characters to type, none of them special to a shell or a URL).
new_secret_key() { head -c 32 /dev/urandom | base64; }
new_password() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }

case "${1:-}" in
secret)
	kept secret-key new_secret_key
	exit 0
	;;
operator-password)
	kept operator-password new_password
	exit 0
	;;
esac

find_bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		[ -x "$d/initdb" ] && { echo "$d"; return 0; }
	done
	return 1
}


bindir="$(find_bindir || true)"
if [ -z "$bindir" ]; then
	log "no Postgres server binaries found; installing Debian's postgresql package"
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
	else
		sudo apt-get update -qq >&2 && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
	fi
	bindir="$(find_bindir)"
fi

case "${1:-start}" in
bindir)
	echo "$bindir"
	exit 0
	;;
stop)
	[ -f "$data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$data" -m fast stop >&2
	exit 0
	;;
start) ;;
*)
	log "usage: $0 start|stop|bindir|secret|operator-password"
	exit 2
	;;
esac

prepare_dir "$dir" "$sock" "set TESSERA_DEVDB_DIR to a shorter path"

if [ ! -f "$data/PG_VERSION" ]; then
	log "creating a Postgres cluster in $data"
	as_owner mkdir -p "$data" "$sock"
	as_owner "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi

# Durability off (see the header); more connections and memory for the parallel tests;
# pg_stat_statements for the benchmarks (bench/README.md).
if ! as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
	as_owner mkdir -p "$sock"
	as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start \
		-o "-c listen_addresses='' -k $sock -p $port -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=256MB -c shared_preload_libraries=pg_stat_statements" >/dev/null
fi

if ! as_owner "$bindir/psql" -h "$sock" -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$dbname'" | grep -q 1; then
	as_owner "$bindir/createdb" -h "$sock" -p "$port" -U postgres "$dbname"
fi

echo "postgres://postgres@/$dbname?host=$sock&port=$port&sslmode=disable"
