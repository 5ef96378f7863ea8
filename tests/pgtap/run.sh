#!/usr/bin/env bash
# The adversarial suite: pgTAP (pg_prove) against a scratch cluster, as the application role and as
# the tables' non-superuser owner. Expects the extension installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
cluster_start pgtap
harness_workdir  # $WORK: private to root and postgres, removed with the cluster
eval "$(cluster_env pgtap)"
cluster_psql pgtap -q -d postgres -c "CREATE DATABASE adversarial"
cluster_psql pgtap -q -d adversarial -f "$here/fixture.sql" >/dev/null
pg_prove --dbname adversarial --username postgres --host "$PGHOST" --port "$PGPORT" --set copy_file="$WORK/copy.txt" \
  "$here/attacks_as_app.sql" "$here/attacks_as_owner.sql" "$here/hardened_context.sql" "$here/trust_boundaries.sql" "$here/catalog.sql" "$here/bad_input.sql" "$here/balance_engine.sql"
