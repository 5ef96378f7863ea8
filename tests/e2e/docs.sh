#!/usr/bin/env bash
# Runs every ```sql block of the docs that have a fixture (tests/e2e/docs/NAME.fixture.sql), in order,
# as the page says: against a scratch cluster prepared by the fixture, as the application role for the
# application developer's page. A block that fails (or does not fail as documented) fails the test.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/tests/harness/cluster.sh"
# docs/DBA.md's database is pg_cron's, so that its scheduling blocks run as written.
cluster_start docs "cron.database_name = 'shop'"

declare -A run_as=([APP_DEVELOPER]=docs_app)
declare -A database_of=([DBA]=shop)
for fixture in "$here"/docs/*.fixture.sql; do
  page=$(basename "$fixture" .fixture.sql)
  db=${database_of[$page]:-$(echo "docs_$page" | tr 'A-Z' 'a-z')}
  echo "docs: $page.md"
  cluster_psql docs -q -d postgres -c "CREATE DATABASE $db"
  cluster_psql docs -q -d "$db" -f "$fixture" >/dev/null
  {
    [ -n "${run_as[$page]:-}" ] && echo "SET ROLE ${run_as[$page]};"
    python3 "$here/docs/sql_blocks.py" "$repo/docs/$page.md"
  } | cluster_psql docs -d "$db" -f - || { echo "docs: $page.md failed"; exit 1; }
done
