#!/usr/bin/env bash
# ALTER EXTENSION inventory_ext UPDATE from every release to this checkout, end to end (docs/UPGRADING.md).
# For each release (scripts/build_release.sh lists them; 0.1.0 today), built from git history once:
#  1. a private copy of Debian's PostgreSQL 15 gets that release's files; a cluster (pg_cron and
#     inventory_ext preloaded) gets a database with data in every feature (upgrade/fixture_0.1.0.sql),
#     an empty one, and the contract suite's database, all at the old version; pg_dumpall --roles-only
#     and pg_dump of the data as docs/BACKUP_RECOVERY.md takes them;
#  2. this version's files replace the old ones, as a package upgrade does, and the server restarts onto
#     the new library: before the update the old SQL still works, and refuses what it must (window.sql);
#  3. ALTER EXTENSION inventory_ext UPDATE in each database; the empty one then describes exactly as a
#     database where this version was created does (upgrade/describe.sql: functions with signatures
#     and attributes, grants, policies, triggers, tables, columns, indexes, comments); the data checks
#     pass (checks.sql: balances equal ledger sums, isolation, the hardened context, postings, reconcile
#     history, the pg_cron job, slots); the contract suite passes in its updated database;
#  4. the 0.1.0 dump restores into a second cluster with this version (restored.sql);
#  5. the updated database, dumped and restored, keeps the DBA's grants and the registrations (roundtrip.sql).
# The library's symbols: every C function of the old SQL names a symbol this library exports.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/../harness/cluster.sh"
from=${UPGRADE_FROM:-0.1.0}

old_files=$("$repo/scripts/build_release.sh" "$from")
new_files=$("$repo/scripts/build_release.sh" current)
version=$(sed -nE "s/^default_version = '(.*)'/\1/p" "$new_files"/usr/share/postgresql/15/extension/inventory_ext.control)
echo "upgrade: $from → $version"

harness_private_postgres
# Each check passed is one TAP line ("ok N - …", which scripts/test.sh counts); a failed one ends the
# script with fail. passed: a phase's conclusion; check: a checks file, whose upgrade_fixture.expect
# calls print "ok: …" (the bare results of its set-up calls are left out).
# A database's C functions of the extension: "symbol arguments -> result", one a line, sorted for comm.
c_symbols() {
  cluster_psql upgrade -qAt -d "$1" -c "SELECT prosrc || ' ' || pg_get_function_identity_arguments(oid) || ' -> ' || prorettype::regtype
    FROM pg_proc WHERE probin IS NOT NULL AND pronamespace = 'inventory'::regnamespace" | LC_ALL=C sort
}
checks=0
passed() { checks=$((checks + 1)); echo "ok $checks - upgrade: $*"; }
check() {
  local line
  cluster_psql "$@" -qAt -v ON_ERROR_STOP=1 >"$WORK/check.out" || fail "a check of ${*: -1} failed (above)"
  while IFS= read -r line; do
    case $line in
      "ok: "*) passed "${line#ok: }" ;;
      t | "") ;;
      *) echo "upgrade:   $line" ;;
    esac
  done <"$WORK/check.out"
}

# --- 1. the old release, in use
harness_install "$old_files"
cluster_start upgrade "cron.database_name = 'data'" "max_prepared_transactions = 4"
cluster_psql upgrade -q -d postgres -c "CREATE DATABASE data" -c "CREATE DATABASE empty" -c "CREATE DATABASE inventory_regress"
cluster_psql upgrade -q -d data -f "$here/upgrade/fixture_$from.sql" >/dev/null
for db in empty inventory_regress; do cluster_psql upgrade -q -d "$db" -c "CREATE EXTENSION inventory_ext"; done
installed=$(cluster_psql upgrade -qAt -d data -c "SELECT string_agg(DISTINCT extversion, ',') FROM pg_extension WHERE extname = 'inventory_ext'")
[ "$installed" = "$from" ] || fail "the old release installed $installed, not $from"
old_symbols=$(c_symbols empty)
(
  eval "$(cluster_env upgrade)"
  cd "$WORK"
  pg_dumpall --roles-only --file=roles.sql
  pg_dump --format=custom --dbname=data --file=data.dump
)
passed "$from in use: a database with data in every feature, dumped; an empty one; the suite's"

# --- 2. the new library under the old SQL
harness_install "$new_files"
cluster_restart upgrade
check upgrade -d data -f "$here/upgrade/window.sql"
# Every symbol the old SQL names is in this library (with the old SQL's arguments: the same entry in a
# new database has them, or it is one the library keeps for old SQL and refuses with, as window.sql showed).
missing=$(for s in $(echo "$old_symbols" | cut -d' ' -f1 | sort -u); do
  nm -D --defined-only "$HARNESS_PG/usr/lib/postgresql/15/lib/inventory_ext.so" | grep -qw "$s" || echo "$s"; done)
[ -z "$missing" ] || fail "symbols the $from SQL names are missing from the library: $missing"
passed "before the update, $from's SQL runs on the $version library: reads and tenants work, writes wait (55000)"

# --- 3. the update
for db in data empty inventory_regress; do
  # As docs/UPGRADING.md runs it.
  cluster_psql upgrade -q -d "$db" -c "SET lock_timeout = '30s'" -c "ALTER EXTENSION inventory_ext UPDATE" >"$WORK/update-$db.log" 2>&1 \
    || { cat "$WORK/update-$db.log"; fail "ALTER EXTENSION inventory_ext UPDATE failed in $db"; }
done
# The update went on past the ledgers it could not update, each with a WARNING (checks.sql shows them).
grep -q 'WARNING:  ledger public."Inherited" was not updated: .*inheritance' "$WORK/update-data.log" \
  || fail "no warning for the ledger the update could not track: $(cat "$WORK/update-data.log")"
grep -q 'WARNING:  ledger public."SharedA" was not updated: its balance table public."SharedBalance" keeps another' "$WORK/update-data.log" \
  || fail "no warning for the ledgers that share a balance table: $(cat "$WORK/update-data.log")"
grep -q 'WARNING:  removed the registration of a ledger that no longer exists' "$WORK/update-data.log" \
  || fail "no warning for the dropped ledger's registration: $(cat "$WORK/update-data.log")"
cluster_psql upgrade -q -d postgres -c "CREATE DATABASE fresh"
cluster_psql upgrade -q -d fresh -c "CREATE EXTENSION inventory_ext"
cluster_psql upgrade -qAtX -d empty -f "$here/upgrade/describe.sql" >"$WORK/updated.txt"
cluster_psql upgrade -qAtX -d fresh -f "$here/upgrade/describe.sql" >"$WORK/created.txt"
if ! diff "$WORK/updated.txt" "$WORK/created.txt" >"$WORK/describe.diff"; then
  sed 's/\\n/\n      /g' "$WORK/describe.diff" | head -100
  fail "a database updated from $from differs from one created at $version (< updated, > created)"
fi
passed "updated from $from and created at $version describe the same: $(wc -l <"$WORK/created.txt") lines"
# The DBA's grants stay the DBA's: the data database's initial privileges are a fresh install's.
cluster_psql upgrade -qAtX -d data -f "$here/upgrade/describe.sql" | grep '^initial privileges' >"$WORK/data-init.txt"
grep '^initial privileges' "$WORK/created.txt" | diff "$WORK/data-init.txt" - \
  || fail "initial privileges (pg_init_privs) of the updated data database differ from a fresh install's: a dump would lose grants"
new_symbols=$(c_symbols fresh)
changed=$(LC_ALL=C comm -23 <(echo "$old_symbols") <(echo "$new_symbols") | grep -vE '^(append_only_guard_wrapper|balance_maintenance_wrapper) ' || true)
[ -z "$changed" ] || fail "symbols whose SQL signature changed since $from (the old SQL would call them wrongly): $changed"
check upgrade -d data -f "$here/upgrade/checks.sql"
passed "the data survived: balances equal ledger sums, isolation and the hardened context hold, postings and reconcile work"
(
  eval "$(cluster_env upgrade)"
  cd "$WORK"
  pg_dumpall --roles-only --file=updated-roles.sql
  pg_dump --format=custom --dbname=data --file=updated.dump
)
# The suite expects a cluster where every role may choose its tenant (the fixture hardened this one).
cluster_psql upgrade -q -d data -c "SELECT inventory.grant_tenant_switch('public')" >/dev/null
REGRESS_OUT=$WORK/regress "$repo/tests/pg_regress/run.sh" --existing "$(cluster_dir upgrade)" "${CLUSTER_PORT[upgrade]}" \
  || fail "the contract suite fails in a database updated from $from"
passed "the contract suite passes in a database updated from $from"
grep -E 'TRAP:|terminated by signal|PANIC' "$(cluster_dir upgrade)/server.log" && fail "the server crashed"

# --- 4. the old dump into a server with the new version (docs/BACKUP_RECOVERY.md's restore)
cluster_start restore "cron.database_name = 'data'"
(
  eval "$(cluster_env restore)"
  cd "$WORK"
  psql --quiet --dbname=postgres --file=roles.sql 2>&1 | grep -v 'role "postgres" already exists' || true
  createdb data
  pg_restore --dbname=data data.dump
)
check restore -d data -f "$here/upgrade/restored.sql"
passed "a $from dump restores into $version; inventory.update_balance_triggers() brings its ledgers' triggers up to date"

# --- 5. the updated database dumped and restored: the DBA's grants and the registrations come back
cluster_start roundtrip "cron.database_name = 'data'"
(
  eval "$(cluster_env roundtrip)"
  cd "$WORK"
  psql --quiet --dbname=postgres --file=updated-roles.sql 2>&1 | grep -v 'role "postgres" already exists' || true
  createdb data
  pg_restore --dbname=data updated.dump
)
check roundtrip -d data -f "$here/upgrade/roundtrip.sql"
passed "the updated database restores from a dump with its grants and registrations"
