#!/usr/bin/env bash
# test/lineage/make-fixtures.sh — regenerate test/lineage/fixtures with the
# real drizzle-kit of package.json (npm ci first).  Each scenario folder is
# what drizzle-kit generate (and generate --custom) wrote from the schemas
# in schema/, plus, for the merged ones, what a team does by hand when it
# merges two branches (merge-branch.js).  The test (lineage.test.js) applies
# them with drizzle-kit migrate and edits them as each scenario says.
#
#   clean        0000_init, 0001_posts, 0002_user_email: nothing wrong
#   placeholder  0000_init, 0001_seed (generate --custom, still the placeholder):
#                the test migrates it, then writes SQL into it
#   collision    main: 0000_init, 0001_posts, 0002_user_email; a branch from
#                0001 ran generate --custom (0002_backfill) and wrote SQL; merged
#                as 0003_backfill with its prevId still on 0001 (two children of
#                0001) and its snapshot without users.email (stale)
#   skipped/before  0000_init, 0001_comments: what staging has applied
#   skipped/after   + 0002_tags, from a branch generated before 0001_comments
#                (an earlier "when"), merged with its prevId re-chained
#   merged/before  0000_init, 0001_archived (conversations.archived_at): main
#   merged/after   + 0002_edited (messages.edited_at), generated on a branch
#                from 0000 and merged with its prevId still on 0000: a
#                collision, and a generated snapshot without archived_at
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error

# drizzle-kit wants its out folder relative to here.
work=.fixture-work
rm -rf "$work"
trap 'rm -rf "$work"' EXIT

# gen DIR SCHEMA NAME [--custom]
gen() {
	local dir=$1 schema=$2 name=$3
	shift 3
	npx --no-install drizzle-kit generate --dialect=postgresql \
		--schema="schema/$schema.ts" --out="$dir" --name="$name" "$@" >/dev/null
	# Distinct "when"s: drizzle-kit takes Date.now().
	sleep 0.01
}

rm -rf fixtures
mkdir -p fixtures

gen fixtures/clean base init
gen fixtures/clean posts posts
gen fixtures/clean email user_email

gen fixtures/placeholder base init
gen fixtures/placeholder base seed --custom

gen "$work/main" base init
gen "$work/main" posts posts
cp -r "$work/main" "$work/branch"
gen "$work/main" email user_email
gen "$work/branch" posts backfill --custom
printf '\nUPDATE "posts" SET "title" = trim("title");\n' >>"$work/branch/0002_backfill.sql"
node merge-branch.js "$work/main" "$work/branch" 0002_backfill 0003_backfill fixtures/collision

gen "$work/s-main" base init
cp -r "$work/s-main" "$work/s-branch"
gen "$work/s-branch" tags tags
gen "$work/s-main" comments comments
mkdir -p fixtures/skipped
cp -r "$work/s-main" fixtures/skipped/before
node merge-branch.js "$work/s-main" "$work/s-branch" 0001_tags 0002_tags fixtures/skipped/after --rechain

gen "$work/c-main" chat init
cp -r "$work/c-main" "$work/c-branch"
gen "$work/c-main" chat-archived archived
gen "$work/c-branch" chat-edited edited
mkdir -p fixtures/merged
cp -r "$work/c-main" fixtures/merged/before
node merge-branch.js "$work/c-main" "$work/c-branch" 0001_edited 0002_edited fixtures/merged/after

echo "fixtures written by drizzle-kit $(npx --no-install drizzle-kit --version 2>/dev/null | sed -n 's/^drizzle-kit: //p')"
