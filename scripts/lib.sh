# scripts/lib.sh — shared by scripts/demo and scripts/test.  Sourced, not run.
#
# Sets everything up on a fresh Debian 12 machine (as root, or as a user with
# sudo), builds and installs domi, and runs throwaway PostgreSQL clusters under
# the build tree.  PostgreSQL refuses to run as root, so when we are root the
# server, pg_regress and the TAP tests run as the unprivileged "postgres" user.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${DOMI_BUILD_DIR:-$REPO/build}
PGPORT_DOMI=${DOMI_PGPORT:-54329}
PG_MAJOR=15
# DOMI_PG_CONFIG points at another PostgreSQL 15 installation, such as a
# private copy made by scripts/private-pg for side-by-side work trees.
PG_CONFIG=${DOMI_PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}

# Debian packages the build, the demo and every test suite need.
APT_PACKAGES=(
	build-essential
	postgresql-$PG_MAJOR
	postgresql-server-dev-$PG_MAJOR
	postgresql-contrib
	libsodium-dev
	libpq-dev
	libipc-run-perl
	nodejs
	npm
	jq
	pgbouncer
	# test/fuzz: libFuzzer and the sanitizers of clang 14
	clang-14
	libclang-rt-14-dev
)

say() { printf '\n==> %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# The user that runs servers and tests: ourselves, unless we are root.
if [ "$(id -u)" -eq 0 ]; then RUN_USER=postgres; else RUN_USER=$(id -un); fi

as_run_user() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$RUN_USER" -- "$@"
	else
		"$@"
	fi
}

install_packages() {
	local missing=() pkg
	for pkg in "${APT_PACKAGES[@]}"; do
		# node and npm may come from elsewhere than Debian (nodesource, nvm): fine.
		case $pkg in
			nodejs) command -v node >/dev/null && continue ;;
			npm) command -v npm >/dev/null && continue ;;
		esac
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		say "installing Debian packages: ${missing[*]}"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

build_and_install() {
	say "building domi (warnings are errors)"
	make -C "$REPO" -s PG_CONFIG="$PG_CONFIG" PG_CFLAGS=-Werror >/dev/null
	say "installing domi into $($PG_CONFIG --pkglibdir)"
	as_root make -C "$REPO" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
}

# The unprivileged user must be able to reach and write the build tree.
prepare_build_dir() {
	mkdir -p "$BUILD"
	if [ "$(id -u)" -eq 0 ]; then
		local dir=$BUILD
		while ! runuser -u "$RUN_USER" -- test -x "$BUILD" 2>/dev/null && [ "$dir" != / ]; do
			dir=$(dirname "$dir")
			if ! runuser -u "$RUN_USER" -- test -x "$dir" 2>/dev/null; then
				say "letting $RUN_USER traverse $dir (chmod o+x) to reach the build tree"
				chmod o+x "$dir"
			fi
		done
		chown -R "$RUN_USER" "$BUILD"
	fi
}

setup() {
	install_packages
	PGBIN=$($PG_CONFIG --bindir)
	build_and_install
	prepare_build_dir
}

# cluster_start NAME [extra postgresql.conf lines...]
# A throwaway cluster in $BUILD/NAME with domi preloaded, its own port and
# socket directory.  Stopped by cluster_stop (callers trap EXIT).
cluster_start() {
	local name=$1; shift
	local data=$BUILD/$name/data sock=$BUILD/$name/sock
	CLUSTER_DATA=$data
	CLUSTER_SOCK=$sock
	as_run_user rm -rf "$BUILD/$name"
	as_run_user mkdir -p "$data" "$sock"
	as_run_user "$PGBIN/initdb" -D "$data" -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
	{
		echo "port = $PGPORT_DOMI"
		echo "listen_addresses = 'localhost'"
		echo "unix_socket_directories = '$sock'"
		echo "shared_preload_libraries = 'domi'"
		echo "fsync = off"
		for line in "$@"; do echo "$line"; done
	} | as_run_user tee -a "$data/postgresql.conf" >/dev/null
	as_run_user "$PGBIN/pg_ctl" -D "$data" -l "$BUILD/$name/server.log" -w start >/dev/null
	export PGHOST=$sock PGPORT=$PGPORT_DOMI PGUSER=$RUN_USER
}

# new_root_key_file NAME: write a fresh random keyring root key (64 hex
# characters) to $BUILD/keys/NAME.key, mode 0600, owned by the server's
# user, and print its path.  The key itself is never printed.
new_root_key_file() {
	local file=$BUILD/keys/$1.key
	as_run_user mkdir -p "$BUILD/keys"
	as_run_user chmod 0700 "$BUILD/keys"
	as_run_user rm -f "$file"
	as_run_user sh -c 'umask 077; od -An -tx1 -N32 /dev/urandom | tr -d " \n" >"$1"' sh "$file"
	echo "$file"
}

cluster_stop() {
	if [ -n "${CLUSTER_DATA:-}" ] && [ -f "$CLUSTER_DATA/postmaster.pid" ]; then
		as_run_user "$PGBIN/pg_ctl" -D "$CLUSTER_DATA" -m fast -w stop >/dev/null || true
	fi
}

# pooler_start: PgBouncer in transaction pooling mode in front of the
# running cluster (cluster_start first), as the unprivileged user, with its
# own ini file in $BUILD/pgbouncer, auth_type trust and a userlist of the
# roles given.  Listens on 127.0.0.1:$POOLER_PORT (DOMI_POOLER_PORT, default
# the cluster's port + 100) and exports POOLER_PORT.  Server connections are
# opened to the cluster's socket.  Stopped by pooler_stop.
#   pooler_start ROLE... [-- extra [pgbouncer] lines]
pooler_start() {
	local dir=$BUILD/pgbouncer roles=() extra=() role line
	while [ $# -gt 0 ] && [ "$1" != -- ]; do roles+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	extra=("$@")
	POOLER_DIR=$dir
	POOLER_PORT=${DOMI_POOLER_PORT:-$((PGPORT_DOMI + 100))}
	as_run_user mkdir -p "$dir"
	as_run_user rm -f "$dir/pgbouncer.log"
	for role in "${roles[@]}"; do printf '"%s" ""\n' "$role"; done | as_run_user tee "$dir/userlist.txt" >/dev/null
	{
		echo "[databases]"
		echo "pooled = host=$CLUSTER_SOCK port=$PGPORT_DOMI dbname=postgres"
		echo "[pgbouncer]"
		echo "listen_addr = 127.0.0.1"
		echo "listen_port = $POOLER_PORT"
		echo "unix_socket_dir ="
		echo "auth_type = trust"
		echo "auth_file = $dir/userlist.txt"
		echo "pool_mode = transaction"
		echo "max_client_conn = 200"
		echo "default_pool_size = 8"
		echo "logfile = $dir/pgbouncer.log"
		echo "pidfile = $dir/pgbouncer.pid"
		echo "ignore_startup_parameters = extra_float_digits"
		for line in "${extra[@]}"; do echo "$line"; done
	} | as_run_user tee "$dir/pgbouncer.ini" >/dev/null
	as_run_user "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" -d "$dir/pgbouncer.ini"
	# Wait until it accepts connections.
	local i
	for i in $(seq 1 50); do
		as_run_user "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$POOLER_PORT" -U "${roles[0]}" -d pooled \
			-c 'SELECT 1' >/dev/null 2>&1 && break
		sleep 0.2
	done
	export POOLER_PORT
}

pooler_stop() {
	local pid
	if [ -n "${POOLER_DIR:-}" ] && [ -f "$POOLER_DIR/pgbouncer.pid" ]; then
		pid=$(cat "$POOLER_DIR/pgbouncer.pid")
		as_run_user kill "$pid" 2>/dev/null || true
		while as_run_user kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
		as_run_user rm -f "$POOLER_DIR/pgbouncer.pid"
	fi
}
