# test/pooler/harness.sh — pooled and concurrent load, shared by
# scripts/test (suite_pooler) and bench/pooler.  Sourced after scripts/lib.sh,
# with a cluster running (cluster_start, with a keyring root key).
#
# One run: pgbench, CLIENTS (16) clients over the fixture's tenants, through
# PgBouncer in transaction mode (pooler_start) or straight to the server,
# while in the background
#   - a misbehaving client connects again and again and tries to give its
#     server connection a session-wide tenant (tenant 7): SET, set_config(...,
#     false), and domi.set_tenant() outside a transaction, then disconnects;
#   - an administrator rotates tenant keys and re-keys the table
#     (domi.rotate_tenant_key, CALL domi.rekey) straight on the server.
# The pgbench scripts write every anomaly into the table leaks: rows of a
# tenant other than the one set, values that do not decrypt, missing rows.

POOLER_SRC=$REPO/test/pooler
POOLER_WORK=$BUILD/pooler-work
POOLER_CLIENTS=${POOLER_CLIENTS:-16}

pooler_psql() {
	as_run_user "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -d postgres "$@"
}

# pooler_fixture TENANTS ROWS: the fixture, and the scripts where the
# unprivileged user can read them.
pooler_fixture() {
	POOLER_TENANTS=$1
	POOLER_ROWS=$2
	as_run_user rm -rf "$POOLER_WORK"
	as_run_user mkdir -p "$POOLER_WORK"
	tar -C "$POOLER_SRC" -cf - . | as_run_user tar -C "$POOLER_WORK" -xf -
	pooler_psql -v tenants="$POOLER_TENANTS" -v rows="$POOLER_ROWS" -f "$POOLER_WORK/setup.sql" >/dev/null
	# The misbehaving client's statements, 10 rounds per connection.
	local t7 i
	t7=$(pooler_psql -At -c 'SELECT pooler_tenant(7)')
	for i in $(seq 1 10); do
		echo "SET domi.tenant_id = '$t7';"
		echo "SELECT set_config('domi.tenant_id', '$t7', false);"
		echo "SELECT domi.set_tenant('$t7');"
	done | as_run_user tee "$POOLER_WORK/misbehave.sql" >/dev/null
}

# Connection options of a target: pooler or direct.
pooler_target() {
	case $1 in
		pooler) echo "-h 127.0.0.1 -p $POOLER_PORT -d pooled" ;;
		direct) echo "-h $PGHOST -p $PGPORT -d postgres" ;;
	esac
}

# The misbehaving client, until the stop file exists: one connection per
# round.  Counts its statements and the refusals among them.
pooler_misbehave_loop() {
	local target=$1 stop=$2 log=$3 rounds=0
	: >"$log"
	while [ ! -e "$stop" ]; do
		# shellcheck disable=SC2046
		as_run_user "$PGBIN/psql" -X -q -U app $(pooler_target "$target") \
			-f "$POOLER_WORK/misbehave.sql" >/dev/null 2>>"$log" || true
		rounds=$((rounds + 1))
		sleep 0.1
	done
	echo "rounds $rounds" >>"$log"
}

# Key rotation and re-keying, until the stop file exists.
pooler_rotate_loop() {
	local stop=$1 log=$2 k=0
	: >"$log"
	while [ ! -e "$stop" ]; do
		k=$((k % POOLER_TENANTS + 1))
		pooler_psql -At -c "SELECT domi.rotate_tenant_key(pooler_tenant($k))" >>"$log" 2>&1 &&
			echo "rotated" >>"$log"
		pooler_psql -c "CALL domi.rekey('items', 'secret', 'tenant_id', 100)" >>"$log" 2>&1 &&
			echo "rekeyed" >>"$log"
		sleep 0.2
	done
}

# pooler_run TARGET TXNS [SCRIPT@WEIGHT ...]
# Defaults to scoped.sql@9 notenant.sql@1 with the misbehaving client and
# the rotation (POOLER_MISBEHAVE=0 / POOLER_ROTATE=0 turn them off).  Sets
# RUN_TXNS RUN_TPS RUN_ABORTED RUN_FOREIGN RUN_BAD RUN_MISSING
# RUN_MISBEHAVE_ROUNDS RUN_REFUSED RUN_ROTATIONS RUN_REKEYS.
pooler_run() {
	local target=$1 txns=$2; shift 2
	local scripts=("$@") args=() s out=$POOLER_WORK/pgbench.out rc=0
	local stop=$POOLER_WORK/stop misbehave_pid='' rotate_pid=''
	[ ${#scripts[@]} -gt 0 ] || scripts=(scoped.sql@9 notenant.sql@1)
	for s in "${scripts[@]}"; do args+=(-f "$POOLER_WORK/$s"); done
	pooler_psql -c 'TRUNCATE leaks'
	as_run_user rm -f "$stop"
	if [ "${POOLER_MISBEHAVE:-1}" = 1 ]; then
		pooler_misbehave_loop "$target" "$stop" "$POOLER_WORK/misbehave.log" &
		misbehave_pid=$!
	fi
	if [ "${POOLER_ROTATE:-1}" = 1 ]; then
		pooler_rotate_loop "$stop" "$POOLER_WORK/rotate.log" &
		rotate_pid=$!
	fi
	# shellcheck disable=SC2046
	as_run_user "$PGBIN/pgbench" -n -U app $(pooler_target "$target") \
		-c "$POOLER_CLIENTS" -j 2 -t $((txns / POOLER_CLIENTS)) \
		-D tenants="$POOLER_TENANTS" -D rows="$POOLER_ROWS" "${args[@]}" >"$out" 2>&1 || rc=$?
	as_run_user touch "$stop"
	[ -z "$misbehave_pid" ] || wait "$misbehave_pid"
	[ -z "$rotate_pid" ] || wait "$rotate_pid"

	RUN_TXNS=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
	RUN_TPS=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$out")
	RUN_ABORTED=$(grep -c 'aborted in command' "$out" || true)
	if [ "$rc" -ne 0 ] && [ "$RUN_ABORTED" -eq 0 ]; then RUN_ABORTED=1; fi
	if [ "$RUN_ABORTED" -ne 0 ]; then grep -m 5 -E 'aborted|ERROR|FATAL' "$out" >&2 || true; fi
	read -r RUN_FOREIGN RUN_BAD RUN_MISSING < <(pooler_psql -At -F ' ' -c "
		SELECT coalesce(sum(foreign_rows), 0), coalesce(sum(bad_values), 0),
			count(*) FILTER (WHERE script <> 'no tenant' AND seen <> $POOLER_ROWS)
		FROM leaks")
	RUN_MISBEHAVE_ROUNDS=0 RUN_REFUSED=0 RUN_ROTATIONS=0 RUN_REKEYS=0
	if [ -n "$misbehave_pid" ]; then
		RUN_MISBEHAVE_ROUNDS=$(sed -n 's/^rounds //p' "$POOLER_WORK/misbehave.log")
		RUN_REFUSED=$(grep -cE 'cannot set a session-wide tenant|outside a transaction block' "$POOLER_WORK/misbehave.log" || true)
	fi
	if [ -n "$rotate_pid" ]; then
		RUN_ROTATIONS=$(grep -c '^rotated$' "$POOLER_WORK/rotate.log" || true)
		RUN_REKEYS=$(grep -c '^rekeyed$' "$POOLER_WORK/rotate.log" || true)
	fi
	: "${RUN_TXNS:=0}" "${RUN_TPS:=0}"
}

# Every stored value still opens under its tenant's keys, after all the
# rotations and re-keys: the number that does not.
pooler_undecryptable() {
	pooler_psql -At -c "SELECT count(*) FROM items
		WHERE domi.decrypt_text(secret, tenant_id) IS DISTINCT FROM 'note ' || id"
}
