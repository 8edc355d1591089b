#!/usr/bin/env bash
# test/fuzz/build.sh OUTDIR — build the libFuzzer harnesses of test/fuzz
# with AddressSanitizer and UndefinedBehaviorSanitizer (clang 14).
#
# Each harness is linked outside the server: domi's parser files compiled
# against PostgreSQL's server headers, test/fuzz/pgshim.c for the backend's
# memory contexts and ereport, libpgcommon for the JSON lexer, libsodium.
# Functions the parser files reference but the harness never reaches (SPI,
# jsonb, GUC registration, ...) get stubs that abort, generated from the
# linker's list of undefined symbols, so a harness that strays into them
# fails loudly instead of linking against nothing.
#
#   PG_CONFIG=... test/fuzz/build.sh /tmp/fuzz-build
set -euo pipefail

OUT=${1:?usage: test/fuzz/build.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
CC=${FUZZ_CC:-clang-14}
SERVER_INC=$($PG_CONFIG --includedir-server)
PG_LIBDIR=$($PG_CONFIG --pkglibdir)
# libpgcommon and libpgport are installed next to pg_config's libraries.
PG_STATIC=$(dirname "$PG_CONFIG")/../lib

SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
# PostgreSQL's own flags that change semantics: wrapping signed arithmetic.
CFLAGS="-g -O1 -fno-omit-frame-pointer -fwrapv -fno-strict-aliasing \
	-Wall -Wno-ignored-attributes -Wno-unused-function -Werror \
	-I$SERVER_INC -I$REPO/src -I$HERE"
LIBS="$PG_STATIC/libpgcommon.a $PG_STATIC/libpgport.a -lsodium -lm"

# harness: the domi sources it links (a harness may also #include one).
declare -A SOURCES=(
	[journal]="lineage_journal lineage_util"
	[snapshot]="lineage_util lineage_snapshot_diff"
	[uuid]=""
	[secretbox]="crypto"
	[wrapped_key]=""
	[prisma]="lineage_prisma lineage_util lineage_findings"
)
# harness: functions of its domi sources that it replaces (made weak in its copy).
declare -A REPLACES=(
	[prisma]="lineage_table_name lineage_require_columns lineage_read_rows"
)
HARNESSES=${FUZZ_HARNESSES:-journal snapshot uuid secretbox wrapped_key prisma}

mkdir -p "$OUT/obj"
compile() {  # compile SRC OBJ [extra flags]
	local src=$1 obj=$2; shift 2
	# shellcheck disable=SC2086
	$CC $CFLAGS $SAN "$@" -c "$src" -o "$obj"
}

compile "$HERE/pgshim.c" "$OUT/obj/pgshim.o" -fsanitize=fuzzer-no-link
for h in $HARNESSES; do
	objs=("$OUT/obj/pgshim.o")
	compile "$HERE/fuzz_$h.c" "$OUT/obj/fuzz_$h.o" -fsanitize=fuzzer-no-link
	objs+=("$OUT/obj/fuzz_$h.o")
	for s in ${SOURCES[$h]}; do
		compile "$REPO/src/$s.c" "$OUT/obj/$s.o" -fsanitize=fuzzer-no-link
		if [ -n "${REPLACES[$h]:-}" ]; then
			# shellcheck disable=SC2046
			objcopy $(printf -- ' -W %s' ${REPLACES[$h]}) "$OUT/obj/$s.o" "$OUT/obj/$s.weak-$h.o"
			objs+=("$OUT/obj/$s.weak-$h.o")
		else
			objs+=("$OUT/obj/$s.o")
		fi
	done
	# First link: collect what is missing, and stub it.
	stubs=$OUT/obj/stubs_$h.c
	echo 'extern void shim_unreachable(const char *name);' >"$stubs"
	# shellcheck disable=SC2086
	$CC $SAN -fsanitize=fuzzer "${objs[@]}" $LIBS -o "$OUT/fuzz_$h" 2>"$OUT/obj/link_$h.log" || true
	sed -n "s/.*undefined reference to \`\([A-Za-z_][A-Za-z0-9_]*\)'.*/\1/p" "$OUT/obj/link_$h.log" |
		sort -u | while read -r sym; do
			echo "void $sym(void); void $sym(void) { shim_unreachable(\"$sym\"); }" >>"$stubs"
		done
	compile "$stubs" "$OUT/obj/stubs_$h.o" -Wno-missing-prototypes
	# shellcheck disable=SC2086
	$CC $SAN -fsanitize=fuzzer "${objs[@]}" "$OUT/obj/stubs_$h.o" $LIBS -o "$OUT/fuzz_$h"
	echo "built $OUT/fuzz_$h ($(($(wc -l <"$stubs") - 1)) unreachable stubs)"
done
