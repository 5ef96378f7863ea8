#!/usr/bin/env bash
# Builds inventory_ext and installs it into Debian's PostgreSQL 15 (needs root, as sessions and CI run).
# INVENTORY_RELEASE=1 builds with the release profile (for benchmarks); the default is a debug build.
# INVENTORY_PG_CONFIG installs into another PostgreSQL 15 (the assert layer's, scripts/cassert_pg.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${INVENTORY_PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
profile=()
[ "${INVENTORY_RELEASE:-0}" = 1 ] && profile=(--release)
cargo pgrx install "${profile[@]}" --pg-config "$PG_CONFIG" >/tmp/inventory_ext-install.log 2>&1 \
  || { cat /tmp/inventory_ext-install.log >&2; exit 1; }
echo "install: inventory_ext installed into $($PG_CONFIG --pkglibdir)"
