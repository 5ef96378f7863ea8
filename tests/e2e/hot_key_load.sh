#!/usr/bin/env bash
# End-to-end load on one hot key spread over slots (issue 14): pgbench, 8 clients as an application role,
# single postings to one guarded item at one location (allow_negative false), the built-in ledger with
# 16 slots. Each posting goes through hot_load.post_or_short(qty), which counts a 23514 refusal and lets
# every other error fail the transaction (and pgbench). Two phases of HOT_LOAD_SECONDS each (default 10):
#   1. receipts and issues of 1 to 3 in equal measure, stock ample (100,000), after a 2-second warm-up in
#      which the key spreads (its first contended postings make the slots' rows): no transaction fails, no
#      refusal, and pg_stat_activity, sampled every 20 ms, never shows a posting waiting for a row or
#      transaction lock (the slots keep writers apart: nobody queues behind the hot key's row);
#   2. from 200 units, issues three times as often as receipts: the stock runs out and refusals (23514)
#      come, nothing else (no deadlock: decreases that gather lock the slots in slot order).
# Meanwhile a superuser runs inventory.reconcile() every half second (it folds quiet keys' slots). After
# each phase: the total equals the ledger's sum, no slot is below zero, no reconcile found anything.
#   3. maintenance and rule changes beside postings (see the phase).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
seconds=${HOT_LOAD_SECONDS:-10}
cluster_start hot "max_connections = 50"
eval "$(cluster_env hot)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; cluster_stop_all' EXIT
psql_q() { cluster_psql hot -d postgres -qAt "$@"; }
psql_q >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
CREATE ROLE hot_app LOGIN;
SELECT inventory.grant_app_access('hot_app');
INSERT INTO inventory.organizations (id, name) VALUES ('10000000-0000-4000-8000-000000000001', 'Flash sale');
SET app.org_id = '10000000-0000-4000-8000-000000000001';
INSERT INTO inventory.items (id, sku, name) VALUES ('a0000000-0000-4000-8000-000000000001', 'HOT', 'The hot item');
INSERT INTO inventory.items (id, sku, name, allow_negative) VALUES ('a0000000-0000-4000-8000-000000000002', 'LOW', 'Scarce', true);
INSERT INTO inventory.locations (id, code, name) VALUES ('b0000000-0000-4000-8000-000000000001', 'WH', 'Warehouse');
SELECT inventory.set_balance_slots('inventory.ledger', 16);
SELECT inventory.post('a0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000001', 100000);
SELECT inventory.post('a0000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000001', 5);
RESET app.org_id;
CREATE SCHEMA hot_load;
CREATE TABLE hot_load.shorts (phase int, qty numeric);
GRANT USAGE ON SCHEMA hot_load TO hot_app;
GRANT INSERT ON hot_load.shorts TO hot_app;
-- One posting; a 23514 refusal is counted, anything else fails the transaction.
CREATE FUNCTION hot_load.post_or_short(phase int, qty numeric, item uuid DEFAULT 'a0000000-0000-4000-8000-000000000001')
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM inventory.post(item, 'b0000000-0000-4000-8000-000000000001', qty);
    RETURN true;
EXCEPTION WHEN check_violation THEN
    INSERT INTO hot_load.shorts VALUES (phase, qty);
    RETURN false;
END
$$;
GRANT EXECUTE ON FUNCTION hot_load.post_or_short(int, numeric, uuid) TO hot_app;
-- Flips the scarce item's allow_negative; turning it off while its balance is negative is refused (23514).
CREATE FUNCTION hot_load.toggle() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inventory.items SET allow_negative = NOT allow_negative WHERE id = 'a0000000-0000-4000-8000-000000000002';
EXCEPTION WHEN check_violation THEN NULL;
END
$$;
GRANT EXECUTE ON FUNCTION hot_load.toggle() TO hot_app;
SQL

hot=a0000000-0000-4000-8000-000000000001
check() {  # phase → fails unless totals are exact, no slot is negative, reconcile found nothing
  local result
  result=$(psql_q -F ' ' -c "SELECT (SELECT sum(qty) FROM inventory.ledger WHERE item_id = '$hot'),
                                   (SELECT qty FROM inventory.stock WHERE item_id = '$hot'),
                                   (SELECT min(qty) FROM inventory.balances WHERE item_id = '$hot'),
                                   (SELECT count(*) FROM inventory.balances WHERE item_id = '$hot'),
                                   (SELECT coalesce(sum(findings), 0) FROM inventory.reconcile_runs)")
  read -r ledger total lowest rows findings <<<"$result"
  echo "hot-key load, phase $1: ledger sum $ledger, total $total, lowest slot $lowest, $rows rows, reconcile findings $findings"
  [ "$ledger" = "$total" ] || { echo "hot-key load: the total is not the ledger's sum"; exit 1; }
  [ "$(psql_q -c "SELECT $lowest >= 0")" = t ] || { echo "hot-key load: a slot of a guarded item went below zero"; exit 1; }
  [ "$findings" = 0 ] || { echo "hot-key load: reconcile reported drift under load"; exit 1; }
}

run_phase() {  # phase, pgbench script → prints "processed failed waiting_samples samples"
  local phase=$1 script=$2 log=$tmp/pgbench.$1
  (
    end=$((SECONDS + seconds))
    while [ $SECONDS -lt "$end" ]; do
      psql_q -c "SELECT count(*) FROM inventory.reconcile()" >/dev/null || exit 1
      sleep 0.5
    done
  ) &
  local reconciler=$!
  # Every 20 ms: is any posting waiting for a lock (a row's, a transaction's)?
  psql_q -c "DO \$\$
    DECLARE deadline timestamptz := clock_timestamp() + interval '$seconds seconds';
    BEGIN
      WHILE clock_timestamp() < deadline LOOP
        INSERT INTO hot_load_samples SELECT $phase, EXISTS (SELECT FROM pg_stat_activity
          WHERE usename = 'hot_app' AND state = 'active' AND wait_event_type = 'Lock'
                                                    AND wait_event IN ('tuple', 'transactionid'));
        PERFORM pg_stat_clear_snapshot();
        PERFORM pg_sleep(0.02);
      END LOOP;
    END \$\$" >/dev/null 2>&1 &
  local sampler=$!
  pgbench -n -U hot_app -c 8 -j 2 -T "$seconds" -f "$script" postgres >"$log" 2>&1 || { cat "$log"; echo "hot-key load: pgbench failed"; exit 1; }
  wait "$sampler" || true
  wait "$reconciler" || { echo "hot-key load: a reconcile beside the load failed"; exit 1; }
  grep -E "^(number of (transactions actually processed|failed transactions)|tps)" "$log" >&2 || true
  echo "$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$log") $(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$log")"
}
psql_q -c "CREATE TABLE hot_load_samples (phase int, waiting boolean)" >/dev/null

cat >"$tmp/balanced.sql" <<'SQL'
\set q random(1, 3)
\set sign random(0, 1)
BEGIN;
SELECT set_config('app.org_id', '10000000-0000-4000-8000-000000000001', true);
SELECT hot_load.post_or_short(1, CASE :sign WHEN 0 THEN -:q ELSE :q END);
COMMIT;
SQL
cat >"$tmp/draining.sql" <<'SQL'
\set q random(1, 3)
\set kind random(1, 4)
BEGIN;
SELECT set_config('app.org_id', '10000000-0000-4000-8000-000000000001', true);
SELECT hot_load.post_or_short(2, CASE WHEN :kind = 1 THEN :q ELSE -:q END);
COMMIT;
SQL

# Warm-up, not sampled: the key's first contended postings spread it (a gather makes every slot's row).
pgbench -n -U hot_app -c 8 -j 2 -T 2 -f "$tmp/balanced.sql" postgres >/dev/null 2>&1 || { echo "hot-key load: the warm-up failed"; exit 1; }
read -r processed failed < <(run_phase 1 "$tmp/balanced.sql")
read -r waiting samples < <(psql_q -F ' ' -c "SELECT count(*) FILTER (WHERE waiting), count(*) FROM hot_load_samples WHERE phase = 1")
shorts=$(psql_q -c "SELECT count(*) FROM hot_load.shorts WHERE phase = 1")
echo "hot-key load, phase 1 (balanced): $processed postings, $failed failed, $shorts refused; a posting waiting for a lock in $waiting of $samples samples"
[ "${processed:-0}" -gt 0 ] || { echo "hot-key load: no transaction ran"; exit 1; }
[ "${failed:-0}" = 0 ] && [ "$shorts" = 0 ] || { echo "hot-key load: postings failed with ample stock"; exit 1; }
[ "${samples:-0}" -gt 0 ] && [ "$waiting" = 0 ] || { echo "hot-key load: postings waited for a lock on the hot key"; exit 1; }
check 1
psql_q -c "SELECT slot, qty FROM inventory.balances ORDER BY slot" | tr '\n' ' '; echo

# Down to 200 units (one posting, which gathers and respreads them), then the drain.
psql_q -c "SET app.org_id = '10000000-0000-4000-8000-000000000001'" \
       -c "SELECT inventory.post('a0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000001',
                                 200 - inventory.on_hand('a0000000-0000-4000-8000-000000000001'))" >/dev/null
read -r processed failed < <(run_phase 2 "$tmp/draining.sql")
shorts=$(psql_q -c "SELECT count(*) FROM hot_load.shorts WHERE phase = 2")
echo "hot-key load, phase 2 (draining): $processed postings, $failed failed, $shorts refused with 23514 (stock short)"
[ "${failed:-0}" = 0 ] || { echo "hot-key load: a posting failed with something other than 23514"; exit 1; }
[ "$shorts" -gt 0 ] || { echo "hot-key load: the stock never ran short: the phase proved nothing"; exit 1; }
check 2

# 3. Maintenance and rule changes beside postings (an attack review's findings), each for the phase's
# length: (a) 6 clients post issues and receipts of a guarded item with 60 units while a superuser plants
# drift in one of its rows and reconciles (folding quiet keys at once) in a loop; (b) 6 clients post to
# a scarce item (5 units) while 2 clients flip its allow_negative. No transaction may fail (no deadlock
# between a gather and the allow_negative guard), and after each the totals equal the ledger's sums and
# a last reconcile finds nothing (a correction never counted a row twice).
psql_q >/dev/null <<'SQL'
SET app.org_id = '10000000-0000-4000-8000-000000000001';
INSERT INTO inventory.items (id, sku, name) VALUES ('a0000000-0000-4000-8000-000000000003', 'MID', 'Guarded');
SELECT inventory.post('a0000000-0000-4000-8000-000000000003', 'b0000000-0000-4000-8000-000000000001', 60);
SQL
cat >"$tmp/guarded.sql" <<'SQL'
\set q random(0, 4)
BEGIN;
SELECT set_config('app.org_id', '10000000-0000-4000-8000-000000000001', true);
SELECT hot_load.post_or_short(3, (ARRAY[-3, -2, -1, 1, 2])[:q + 1], 'a0000000-0000-4000-8000-000000000003');
COMMIT;
SQL
cat >"$tmp/scarce.sql" <<'SQL'
\set q random(0, 3)
BEGIN;
SELECT set_config('app.org_id', '10000000-0000-4000-8000-000000000001', true);
SELECT hot_load.post_or_short(3, (ARRAY[-4, -2, 3, 3])[:q + 1], 'a0000000-0000-4000-8000-000000000002');
COMMIT;
SQL
cat >"$tmp/toggle.sql" <<'SQL'
BEGIN;
SELECT set_config('app.org_id', '10000000-0000-4000-8000-000000000001', true);
SELECT hot_load.toggle();
COMMIT;
SQL
after_phase3() {  # label, pgbench logs… → fails on a failed transaction, inexact totals or a finding
  local label=$1; shift
  local failed processed findings exact
  failed=$(cat "$@" | sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
  processed=$(cat "$@" | sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
  findings=$(psql_q -c "SELECT count(*) FROM inventory.reconcile(NULL, '10000000-0000-4000-8000-000000000001')")
  exact=$(psql_q -c "SELECT bool_and(s.qty = l.qty) FROM inventory.stock s
                       JOIN (SELECT item_id, location_id, sum(qty) AS qty FROM inventory.ledger GROUP BY 1, 2) l USING (item_id, location_id)")
  echo "hot-key load, phase 3$label: $processed transactions, $failed failed; totals exact: $exact; a last reconcile finds $findings"
  [ "$failed" = 0 ] || { grep -h "ERROR" "$@" | sort | uniq -c; echo "hot-key load: a transaction failed (deadlock?)"; exit 1; }
  [ "$exact" = t ] && [ "$findings" = 0 ] || { echo "hot-key load: a correction or fold beside postings left the totals wrong"; exit 1; }
}
(
  end=$((SECONDS + seconds))
  while [ $SECONDS -lt "$end" ]; do
    psql_q -c "SET inventory.slot_fold_after = 0" -c "BEGIN" -c "UPDATE inventory.balances SET qty = qty + 0.001 WHERE ctid =
                 (SELECT ctid FROM inventory.balances WHERE item_id = 'a0000000-0000-4000-8000-000000000003'
                   ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED)" -c "COMMIT" \
           -c "SELECT count(*) FROM inventory.reconcile(NULL, '10000000-0000-4000-8000-000000000001')" >/dev/null || exit 1
  done
) &
drifter=$!
pgbench -n -U hot_app -c 6 -j 2 -T "$seconds" -f "$tmp/guarded.sql" postgres >"$tmp/guarded.log" 2>&1 || { cat "$tmp/guarded.log"; echo "hot-key load: pgbench failed"; exit 1; }
wait "$drifter" || { echo "hot-key load: planting drift or reconciling failed"; exit 1; }
after_phase3 "a (drift and reconcile beside postings)" "$tmp/guarded.log"
pgbench -n -U hot_app -c 2 -j 1 -T "$seconds" -f "$tmp/toggle.sql" postgres >"$tmp/toggle.log" 2>&1 &
toggler=$!
pgbench -n -U hot_app -c 6 -j 2 -T "$seconds" -f "$tmp/scarce.sql" postgres >"$tmp/scarce.log" 2>&1 || { cat "$tmp/scarce.log"; echo "hot-key load: pgbench failed"; exit 1; }
wait "$toggler" || { cat "$tmp/toggle.log"; echo "hot-key load: the allow_negative toggler failed"; exit 1; }
after_phase3 "b (allow_negative flipped beside postings)" "$tmp/scarce.log" "$tmp/toggle.log"
