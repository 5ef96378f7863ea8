#!/usr/bin/env bash
# Runs every ```sql block of the docs that have a fixture (tests/e2e/docs/NAME.fixture.sql), in order,
# as the page says: against a scratch cluster prepared by the fixture, as the application role for the
# application developer's page. A block that fails (or does not fail as documented) fails the test.
# Each block is one test: "ok N - docs/PAGE.md:LINE" when it did what the page says, "not ok …" for the
# one that did not (the page's later blocks are not run; the other pages are).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/tests/harness/cluster.sh"
harness_workdir
# docs/DBA.md's database is pg_cron's, so that its scheduling blocks run as written.
cluster_start docs "cron.database_name = 'shop'"

declare -A run_as=([APP_DEVELOPER]=docs_app)
declare -A database_of=([DBA]=shop)
failed=()
for fixture in "$here"/docs/*.fixture.sql; do
  page=$(basename "$fixture" .fixture.sql)
  db=${database_of[$page]:-$(echo "docs_$page" | tr 'A-Z' 'a-z')}
  echo "docs: $page.md"
  cluster_psql docs -q -d postgres -c "CREATE DATABASE $db"
  cluster_psql docs -q -d "$db" -f "$fixture" >/dev/null
  {
    [ -n "${run_as[$page]:-}" ] && echo "SET ROLE ${run_as[$page]};"
    python3 "$here/docs/sql_blocks.py" --tap "$repo/docs/$page.md"
  } >"$WORK/$page.sql"
  cluster_psql docs -d "$db" -f "$WORK/$page.sql" 2>&1 | tee "$WORK/$page.out" && continue
  # The block that stopped psql: the last one begun; it did not print its "ok" line.
  blocks=$(grep -c "^\\\\echo '-- block at " "$WORK/$page.sql")
  passed=$(grep -cE '^ok [0-9]+ - ' "$WORK/$page.out" || true)
  block=$(grep -oE '^-- block at .*:[0-9]+$' "$WORK/$page.out" | tail -1 | grep -oE '[0-9]+$' || echo "?")
  echo "not ok $((passed + 1)) - docs/$page.md:$block"
  echo "docs: $page.md failed at the block at line $block; its $((blocks - passed - 1)) later blocks were not run"
  failed+=("$page.md")
done
[ ${#failed[@]} -eq 0 ] || fail "blocks failed in ${failed[*]}"
