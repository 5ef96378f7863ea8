#!/usr/bin/env bash
# Builds inventory_ext and installs it into Debian's PostgreSQL 15 (needs root, as sessions and CI run).
# INVENTORY_RELEASE=1 builds with the release profile (for benchmarks); the default is a debug build.
# INVENTORY_PG_CONFIG installs into another PostgreSQL: another 15 (the assert layer's, scripts/cassert_pg.sh)
# or another version (16, 17, 18: cargo pgrx builds with the feature that pg_config's version names;
# docs/INSTALL.md, "Other PostgreSQL versions").
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${INVENTORY_PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
profile=()
[ "${INVENTORY_RELEASE:-0}" = 1 ] && profile=(--release)
# The build's output goes to a private temporary file (mktemp: 0600), printed if the build fails and
# removed in any case.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "install: building inventory_ext (2–5 minutes the first time, about a minute after that: cargo pgrx install compiles the crate each time); output in $log until it ends"
cargo pgrx install "${profile[@]}" --pg-config "$PG_CONFIG" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
echo "install: inventory_ext installed into $($PG_CONFIG --pkglibdir)"
