#!/usr/bin/env bash
# Crash: 4 clients post (autocommit, each posting acknowledged only when psql returns success) while
# the postmaster is killed with SIGKILL. After a restart (crash recovery), every acknowledged posting is
# in the ledger, balances equal the ledger sums, and reconcile finds nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
harness_workdir
work=$WORK
clients=4

cluster_start crash
cluster_psql crash -q -d postgres >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
INSERT INTO inventory.organizations (id, name) VALUES ('c4000000-0000-4000-8000-0000000000c4', 'Crash');
SET app.org_id = 'c4000000-0000-4000-8000-0000000000c4';
INSERT INTO inventory.items (sku, name) SELECT 'SKU-' || i, 'Item ' || i FROM generate_series(1, 5) i;
INSERT INTO inventory.locations (code, name) VALUES ('L', 'Shelf');
ALTER DATABASE postgres SET app.org_id = 'c4000000-0000-4000-8000-0000000000c4';
SQL

client() {  # number: posts until the server is gone; records each acknowledged posting's reference
  local n=$1 i=0
  while :; do
    i=$((i + 1))
    cluster_psql crash -qAt -d postgres -c "SELECT inventory.post(
        (SELECT id FROM inventory.items ORDER BY random() LIMIT 1), (SELECT id FROM inventory.locations), 1,
        reference => 'c$n-$i')" >/dev/null 2>&1 || return 0
    echo "c$n-$i" >>"$work/acked"
  done
}
pids=()
for n in $(seq $clients); do client "$n" & pids+=($!); done
sleep 4
cluster_kill9 crash
for p in "${pids[@]}"; do wait "$p"; done
acked=$(wc -l <"$work/acked")
[ "$acked" -gt 0 ] || fail "no posting was acknowledged before the crash"
echo "crash: killed the postmaster with SIGKILL after $acked acknowledged postings from $clients clients"

cluster_start_again crash
cluster_psql crash -q -d postgres -c "CREATE TEMP TABLE acked (reference text)" -c "\\copy acked FROM '$work/acked'" \
  -c "CREATE TABLE public.crash_check AS SELECT (SELECT count(*) FROM acked) AS acked,
        (SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT FROM inventory.ledger l WHERE l.reference = a.reference)) AS lost,
        (SELECT count(*) FROM inventory.ledger) AS ledger_rows" >/dev/null
read -r n lost rows < <(cluster_psql crash -qAt -F ' ' -d postgres -c "SELECT * FROM public.crash_check")
echo "crash: after recovery: $rows ledger rows, $n acknowledged, $lost of them missing"
[ "$n" = "$acked" ] && [ "$lost" = 0 ] && [ "$rows" -ge "$acked" ] || fail "acknowledged postings were lost"
findings=$(cluster_psql crash -qAt -d postgres -c "SELECT count(*) FROM inventory.reconcile()")
[ "$findings" = 0 ] || fail "reconcile found $findings differences after crash recovery"
echo "crash: every acknowledged posting survived; balances equal the ledger (reconcile clean)"
