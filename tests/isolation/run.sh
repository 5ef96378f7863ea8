#!/usr/bin/env bash
# The concurrency specs: pg_isolation_regress (PGXS) against a scratch cluster. Expects the extension
# installed. Prints the diffs and exits non-zero on any difference.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
ISOLATION=${PG_ISOLATION_REGRESS:-/usr/lib/postgresql/$PG_MAJOR/lib/pgxs/src/test/isolation/pg_isolation_regress}
out=${ISOLATION_OUT:-$(mktemp -d)}
cluster_start isolation "deadlock_timeout = '100ms'"
status=0
"$ISOLATION" --inputdir="$here" --outputdir="$out" --bindir="$PG_BIN" \
  --host="$(cluster_dir isolation)" --port="${CLUSTER_PORT[isolation]}" --user=postgres \
  --dbname=inventory_isolation --load-extension=inventory_ext --schedule="${ISO_SCHEDULE:-$here/schedule}" \
  || { cat "$out/regression.diffs" 2>/dev/null || true; status=1; }
[ -n "${ISOLATION_OUT:-}" ] || rm -rf "$out"
exit $status
