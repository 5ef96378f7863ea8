#!/usr/bin/env bash
# The example's tests, from a clean checkout: npm ci when node_modules is missing, prisma generate, a
# scratch cluster with the extension (tests/harness/cluster.sh; the extension must be installed:
# scripts/install.sh), the original Prisma schema (tests/fixtures/prisma_legacy.sql) migrated by running
# docs/MIGRATION_GUIDE.md's SQL blocks (as tests/e2e/migration.sh does), sql/app_setup.sql, then
#   node --test --test-reporter=tap
# whose top-level "ok N - name" / "not ok N - name" lines scripts/test.sh counts. The cluster is stopped
# and removed when the script exits, also on failure. Clusters from HARNESS_BASE_PORT (default 56500).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$here"
export HARNESS_BASE_PORT=${HARNESS_BASE_PORT:-56500}
source "$repo/tests/harness/cluster.sh"

start=$SECONDS
# Node 20 or later with npm (this machine kind has them; Debian 12's own nodejs is 18).
if ! command -v npm >/dev/null || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  echo "# prisma-app: needs Node 20 or later and npm (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
# The generator does not use the schema engine, which cannot be downloaded here.
PRISMA_SCHEMA_ENGINE_BINARY=${PRISMA_SCHEMA_ENGINE_BINARY:-/bin/true} npx --no-install prisma generate >/dev/null
echo "# prisma-app: dependencies and client ready ($((SECONDS - start)) s)"

cluster_start prismaapp
cluster_psql prismaapp -q -d postgres -c "CREATE DATABASE shop"
cluster_psql prismaapp -q -d shop -v ledger_rows=5000 -f "$repo/tests/fixtures/prisma_legacy.sql" >/dev/null
guide_log=$(mktemp)
trap 'rm -f "$guide_log"; cluster_stop_all' EXIT
python3 "$repo/tests/e2e/docs/sql_blocks.py" "$repo/docs/MIGRATION_GUIDE.md" | cluster_psql prismaapp -d shop -f - >"$guide_log" 2>&1 \
  || { tail -30 "$guide_log"; echo "# prisma-app: a block of the migration guide failed"; exit 1; }
cluster_psql prismaapp -q -d shop -f sql/app_setup.sql
echo "# prisma-app: schema migrated by the guide's SQL ($((SECONDS - start)) s)"

eval "$(cluster_env prismaapp)"
export PGDATABASE=shop APP_DB_USER=prisma ADMIN_DB_USER=postgres
node --test --test-reporter=tap test/*.test.js
