#!/usr/bin/env bash
# test/docs/run-examples.sh — run the SQL examples of the documentation.
#
#   run-examples.sh PSQL FILE.md...
#
# Extracts the fenced blocks whose info string is "sql runnable" or
# "sql runnable error" from each Markdown file and runs them, in the order
# they appear, against the server named by the PG* variables (a superuser
# connection), each block as one psql session with ON_ERROR_STOP:
#
# - every file gets a fresh database with domi created in it, so a page's
#   blocks build on each other (its first blocks are its setup) and pages do
#   not see each other's tables; the database, and the roles the page
#   created, are dropped afterwards;
# - a "sql runnable" block must run without an error;
# - a "sql runnable error" block must fail, and for each line
#   "-- ERROR:  message" in it, psql must have printed that message.
#
# Prints one TAP-style line per block ("ok N - file:line" or "not ok ...",
# with psql's output after a failure) and "docs: P passed, F failed";
# exits non-zero if any block failed.
set -uo pipefail

PSQL=$1; shift
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
n=0; ok=0; bad=0

q() { PGOPTIONS="-c client_min_messages=warning" "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d postgres -c "$1"; }

# extract FILE: writes $WORK/blocks/NNN.sql and NNN.meta ("line kind")
extract() {
	rm -rf "$WORK/blocks"; mkdir -p "$WORK/blocks"
	awk -v dir="$WORK/blocks" '
		/^```sql runnable( error)?[ \t]*$/ && !inside {
			inside = 1; k++; file = sprintf("%s/%03d.sql", dir, k)
			kind = ($0 ~ /error/) ? "error" : "ok"
			printf "%d %s\n", NR, kind > sprintf("%s/%03d.meta", dir, k)
			printf "" > file
			next
		}
		/^```/ && inside { inside = 0; close(file); next }
		inside { print > file }
	' "$1"
}

report() {  # report PASSED LABEL OUTPUTFILE
	n=$((n + 1))
	if [ "$1" = 1 ]; then
		echo "ok $n - $2"; ok=$((ok + 1))
	else
		echo "not ok $n - $2"; sed 's/^/#   /' "$3"; bad=$((bad + 1))
	fi
}

for md in "$@"; do
	extract "$md"
	ls "$WORK/blocks"/*.sql >/dev/null 2>&1 || continue
	name=${md#"${DOCS_ROOT:-}"}
	db=docs_examples
	q "DROP DATABASE IF EXISTS $db" >/dev/null
	q "CREATE DATABASE $db" >/dev/null
	"$PSQL" -X -q -d "$db" -c 'CREATE EXTENSION domi' >/dev/null
	roles_before=$(q "SELECT string_agg(quote_literal(rolname), ',') FROM pg_roles")
	for sql in "$WORK/blocks"/*.sql; do
		read -r line kind <"${sql%.sql}.meta"
		out=$WORK/out
		rc=0
		"$PSQL" -X -v ON_ERROR_STOP=1 -d "$db" -f "$sql" >"$out" 2>&1 || rc=$?
		passed=0
		if [ "$kind" = ok ]; then
			[ "$rc" -eq 0 ] && passed=1
		elif [ "$rc" -ne 0 ] && grep -q 'ERROR:' "$out"; then
			passed=1
			while IFS= read -r msg; do
				grep -qF -- "ERROR:  $msg" "$out" || passed=0
			done < <(sed -n 's/^-- ERROR:  //p' "$sql")
		fi
		suffix=; [ "$kind" = error ] && suffix=" (must fail)"
		report "$passed" "$name:$line$suffix" "$out"
	done
	q "DROP DATABASE $db" >/dev/null
	for r in $(q "SELECT quote_ident(rolname) FROM pg_roles WHERE rolname NOT IN ($roles_before)"); do
		q "DROP ROLE $r" >/dev/null
	done
done
echo "docs: $ok passed, $bad failed"
[ "$bad" -eq 0 ]
