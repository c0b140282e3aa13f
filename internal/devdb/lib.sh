# lib.sh: what devdb.sh and replica.sh share, sourced by both (not run on its own).

# as_owner runs a command as the owner of the clusters: the `postgres` user when root (Postgres
# refuses to run as root), the caller otherwise.
as_owner() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# prepare_dir DIR SOCK HINT: create DIR for clusters whose Unix sockets go in SOCK, given to
# the postgres user when root; exits when SOCK is too long for a Unix socket (HINT says how to
# shorten it) or the postgres user cannot reach DIR.
prepare_dir() {
	if [ "${#2}" -gt 90 ]; then
		log "socket directory $2 is too long for a Unix socket; $3"
		exit 1
	fi
	mkdir -p "$1"
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$1"
		if ! runuser -u postgres -- test -x "$1"; then
			log "the postgres user cannot reach $1; make its parent directories world-searchable (chmod o+x)"
			exit 1
		fi
	fi
}
