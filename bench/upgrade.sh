#!/usr/bin/env bash
# How long ALTER EXTENSION inventory_ext UPDATE takes from 0.1.0, by ledger size (docs/UPGRADING.md,
# "How long it takes"): the update's only step that grows with the data recomputes each tracked ledger's
# balances. For each size in UPGRADE_ROWS (millions of ledger rows; default "1 5"): 0.1.0 installed in a
# private copy of PostgreSQL 15, the built-in ledger loaded through 0.1.0's trigger (1,000 keys of one
# tenant), this version installed, the server restarted, then the update timed. RELEASE_PROFILE=release
# measures release builds of both (scripts/build_release.sh; the default, dev, is what the tests use).
set -euo pipefail
if [ "${PG_VERSION:-15}" != 15 ]; then
  # 0.1.0 does not compile for PostgreSQL 18 (issue 18: a tuple descriptor's attributes): there is no
  # 0.1.0 on 18 to update from, so nothing to measure.
  echo "bench/upgrade: 0.1.0 was built for PostgreSQL 15 only; on $PG_VERSION nothing updates from it" >&2
  exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup.sh" >/dev/null
source "$repo/tests/harness/cluster.sh"
old_files=$("$repo/scripts/build_release.sh" 0.1.0)
new_files=$("$repo/scripts/build_release.sh" current)
harness_private_postgres
echo "upgrade bench: 0.1.0 → this checkout, ${RELEASE_PROFILE:-dev} builds; $(nproc) cores"
for millions in ${UPGRADE_ROWS:-1 5}; do
  harness_install "$old_files"
  name=u$millions
  cluster_start "$name" "shared_buffers = '1GB'" "max_wal_size = '4GB'"
  cluster_psql "$name" -q -d postgres -c "CREATE DATABASE d"
  cluster_psql "$name" -q -d d >/dev/null <<SQL
CREATE EXTENSION inventory_ext;
INSERT INTO inventory.organizations (id, name) VALUES ('a0000000-0000-4000-8000-00000000000a', 'A');
SET app.org_id = 'a0000000-0000-4000-8000-00000000000a';
INSERT INTO inventory.items (sku, name, allow_negative) SELECT 'S' || g, 'I', true FROM generate_series(1, 1000) g;
INSERT INTO inventory.locations (code, name) VALUES ('L', 'L');
INSERT INTO inventory.ledger (item_id, location_id, qty)
SELECT i.id, l.id, 1 FROM inventory.items i, inventory.locations l, generate_series(1, $millions * 1000) g;
SQL
  harness_install "$new_files"
  cluster_restart "$name"
  start=$(date +%s%N)
  cluster_psql "$name" -q -d d -c "ALTER EXTENSION inventory_ext UPDATE"
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  drift=$(cluster_psql "$name" -qAt -d d -c "SELECT count(*) FROM inventory.reconcile(auto_correct => false)")
  echo "upgrade bench: ${millions},000,000 ledger rows, 1,000 keys: ALTER EXTENSION inventory_ext UPDATE took $ms ms (findings after: $drift)"
  cluster_stop "$name"
done
