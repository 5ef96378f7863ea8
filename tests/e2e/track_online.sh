#!/usr/bin/env bash
# track_balances_online under load: a 400,000-row ledger with no balance tracking yet, six pgbench
# clients posting to it for a bounded time (single rows, multi-row inserts, a transaction that posts,
# sleeps and posts again across the moment tracking starts, a savepoint whose posting is rolled back
# and one whose posting is kept), while the ledger's balances are tracked online and then tracked online
# a second time (an online rebuild). Every posting must be counted exactly once: after the load every
# balance equals its ledger sum and reconcile finds nothing. No posting may fail.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
harness_workdir
seconds=${LOAD_SECONDS:-14}
cluster_start trackonline "max_connections = 40"
eval "$(cluster_env trackonline)"
trap 'cluster_stop_all' EXIT
cluster_psql trackonline -q -d postgres >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
CREATE TABLE public.moves (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text NOT NULL, lot text,
                           qty numeric(20, 4) NOT NULL);
INSERT INTO public.moves (item, lot, qty)
SELECT 'item-' || (g % 300), CASE WHEN g % 3 = 0 THEN NULL ELSE 'lot-' || (g % 4) END, (g % 11) - 4.25
  FROM generate_series(1, 400000) g;
VACUUM ANALYZE public.moves;
SQL
script=$WORK/post.sql
cat >"$script" <<'SQL'
\set i random(0, 299)
\set l random(0, 4)
\set kind random(1, 5)
\if :kind = 1
INSERT INTO public.moves (item, lot, qty) VALUES ('item-' || :i, NULLIF('lot-' || :l, 'lot-4'), 1.5);
\elif :kind = 2
INSERT INTO public.moves (item, lot, qty) SELECT 'item-' || ((:i + g) % 300), NULL, -0.25 FROM generate_series(1, 5) g;
\elif :kind = 3
BEGIN;
INSERT INTO public.moves (item, lot, qty) VALUES ('item-' || :i, 'lot-1', 2);
SELECT pg_sleep(0.05);
INSERT INTO public.moves (item, lot, qty) VALUES ('item-' || :i, 'lot-1', 3);
COMMIT;
\elif :kind = 4
BEGIN;
SAVEPOINT a;
INSERT INTO public.moves (item, lot, qty) VALUES ('item-' || :i, NULL, 100);
ROLLBACK TO SAVEPOINT a;
SAVEPOINT b;
INSERT INTO public.moves (item, lot, qty) VALUES ('item-' || :i, NULL, 7);
RELEASE SAVEPOINT b;
COMMIT;
\else
SELECT count(*) FROM public.moves WHERE item = 'item-' || :i;
\endif
SQL
pgbench -n -c 6 -j 2 -T "$seconds" -f "$script" postgres >"$WORK/pgbench.log" 2>&1 &
bench=$!
sleep 3
started=$(date +%s%N)
cluster_psql trackonline -q -d postgres -c "CALL inventory.track_balances_online('public.moves', 'public.move_balances', ARRAY['item', 'lot'], 'qty')" \
  || fail "track_balances_online failed"
first_ms=$(( ($(date +%s%N) - started) / 1000000 ))
sleep 3
cluster_psql trackonline -q -d postgres -c "CALL inventory.track_balances_online('public.moves', 'public.move_balances', ARRAY['item', 'lot'], 'qty')" \
  || fail "track_balances_online (again) failed"
wait "$bench" || { cat "$WORK/pgbench.log"; fail "pgbench failed"; }
grep -q "number of failed transactions: 0" "$WORK/pgbench.log" || { cat "$WORK/pgbench.log"; fail "a posting failed"; }
transactions=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench.log")
read -r balances wrong < <(cluster_psql trackonline -qAt -F ' ' -d postgres <<'SQL'
WITH sums AS (SELECT item, lot, sum(qty) AS qty, max(id) AS last_id FROM public.moves GROUP BY item, lot),
     kept AS (SELECT item, lot, qty, last_ledger_id FROM public.move_balances)
SELECT (SELECT count(*) FROM kept),
       (SELECT count(*) FROM (SELECT * FROM sums EXCEPT ALL SELECT * FROM kept) a)
     + (SELECT count(*) FROM (SELECT * FROM kept EXCEPT ALL SELECT * FROM sums) b);
SQL
)
[ "$wrong" = 0 ] || fail "$wrong of $balances balances differ from their ledger sums"
findings=$(cluster_psql trackonline -qAt -d postgres -c "SELECT count(*) FROM inventory.reconcile('public.moves')")
[ "$findings" = 0 ] || fail "reconcile found $findings differences"
echo "track_online: $transactions transactions posted meanwhile, none failed; tracked online in ${first_ms} ms, then again;"
echo "track_online: all $balances balances equal their ledger sums and last ids; reconcile: no findings"
