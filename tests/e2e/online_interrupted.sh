#!/usr/bin/env bash
# The online procedures stopped half-way and called again (issue 16; found by an attack review):
# - enable_tenant_isolation_online cancelled while its background worker builds an index (a transaction
#   older than the build keeps it waiting): the worker stops with the CALL, and the next call drops the
#   INVALID index it left and finishes; while one call's worker is still building, a second call is
#   refused with 55006 instead of dropping the index under it;
# - track_balances_online cancelled while its worker sums, then called again at once, and two calls at
#   the same time: the balances equal the ledger's sums (no fill is added twice).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
harness_workdir
cluster_start interrupted
eval "$(cluster_env interrupted)"
trap 'cluster_stop_all' EXIT
sql() { cluster_psql interrupted -X -qAt -d postgres "$@"; }
sql >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
INSERT INTO inventory.organizations (id, name) VALUES ('99999999-0000-4000-8000-000000000017', 'Interrupted');
CREATE TABLE public.parts (id bigint PRIMARY KEY, sku text UNIQUE, org_id uuid);
INSERT INTO public.parts SELECT g, 'SKU-' || g, NULL FROM generate_series(1, 20000) g;
CREATE TABLE public.moves (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item int NOT NULL, qty numeric NOT NULL);
INSERT INTO public.moves (item, qty) SELECT g % 1000, 1 FROM generate_series(1, 2000000) g;
VACUUM ANALYZE public.moves;
SQL
workers() { sql -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'inventory_ext background'"; }
wait_for_workers_to_stop() {
  local i; for i in $(seq 1 100); do [ "$(workers)" = 0 ] && return 0; sleep 0.1; done
  fail "a background worker was still running after its CALL ended"
}

# An old snapshot (a transaction on another table: no lock on this one) keeps CREATE INDEX CONCURRENTLY waiting.
sql -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class; SELECT pg_sleep(8); COMMIT;" >/dev/null &
holder=$!
sleep 0.5
out=$(sql -c "SET statement_timeout = '2s'" \
          -c "CALL inventory.enable_tenant_isolation_online('public.parts', 'org_id', '99999999-0000-4000-8000-000000000017')" 2>&1 || true)
echo "$out" | grep -q "canceling statement due to statement timeout" || fail "the first call was not cancelled: $out"
wait_for_workers_to_stop
invalid=$(sql -c "SELECT count(*) FROM pg_index WHERE indrelid = 'public.parts'::regclass AND NOT indisvalid")
[ "$invalid" = 1 ] || fail "expected the cancelled build's INVALID index, found $invalid"
# A call whose worker is still building (the snapshot is still held), and a second call meanwhile.
sql -c "CALL inventory.enable_tenant_isolation_online('public.parts', 'org_id', '99999999-0000-4000-8000-000000000017')" \
  >"$WORK/first.out" 2>&1 &
first=$!
for i in $(seq 1 50); do
  [ "$(sql -c "SELECT count(*) FROM pg_stat_progress_create_index WHERE relid = 'public.parts'::regclass")" = 1 ] && break
  sleep 0.1
done
out=$(sql -c "CALL inventory.enable_tenant_isolation_online('public.parts', 'org_id', '99999999-0000-4000-8000-000000000017')" 2>&1 || true)
echo "$out" | grep -q "is being built by another session" || fail "a second call did not refuse while a build runs: $out"
wait "$holder"
wait "$first" || { cat "$WORK/first.out"; fail "the call that went on after the cancelled one failed"; }
report=$(sql -c "SELECT count(*) FROM inventory.isolation_report(ARRAY['public']) WHERE severity = 'error'")
invalid=$(sql -c "SELECT count(*) FROM pg_index WHERE indrelid = 'public.parts'::regclass AND NOT indisvalid")
[ "$report" = 0 ] && [ "$invalid" = 0 ] || fail "after the calls: $report report errors, $invalid invalid indexes"
echo "online_interrupted: a cancelled isolation call stopped its worker; a second call was refused (55006) while a build ran; the next call finished (no invalid index, no report error)"

# track_balances_online cancelled while its worker sums 2,000,000 rows, then called again at once.
exact() {
  sql -c "SELECT count(*) FROM (SELECT item, sum(qty) FROM public.moves GROUP BY item
                                EXCEPT ALL SELECT item, qty FROM public.move_balances) d"
}
call_track="CALL inventory.track_balances_online('public.moves', 'public.move_balances', ARRAY['item'], 'qty')"
out=$(sql -c "SET statement_timeout = '300ms'" -c "$call_track" 2>&1 || true)
echo "$out" | grep -q "canceling statement" || fail "the tracking call was not cancelled: $out"
wait_for_workers_to_stop
# The stopped fill counts for nothing: reconcile checks the ledger (and finds what it never filled).
status=$(sql -c "SELECT count(*) FROM inventory.reconcile('public.moves', auto_correct => false)" \
             -c "SELECT status FROM inventory.reconcile_runs ORDER BY id DESC LIMIT 1" | tail -1)
[ "$status" != skipped ] || fail "reconcile skipped a ledger whose fill was cancelled"
sql -c "$call_track" >/dev/null || fail "tracking again after the cancel failed"
[ "$(exact)" = 0 ] || fail "after a cancelled fill and a second call, balances differ from the ledger"
# While a fill runs, reconcile leaves the ledger alone and set_balance_slots answers 55006.
sql -c "$call_track" >"$WORK/track_c.out" 2>&1 & c=$!
for i in $(seq 1 100); do
  [ "$(sql -c "SELECT count(*) FROM inventory.tracked_ledgers t, pg_stat_get_activity(t.fill_worker) a
                WHERE t.ledger = 'public.moves'::regclass AND a.backend_type = 'inventory_ext background'")" = 1 ] && break
  sleep 0.02
done
status=$(sql -c "SELECT count(*) FROM inventory.reconcile('public.moves')" \
             -c "SELECT status || ': ' || detail FROM inventory.reconcile_runs ORDER BY id DESC LIMIT 1" | tail -1)
slots=$(sql -c "SELECT inventory.set_balance_slots('public.moves', 2)" 2>&1 || true)
wait "$c" || { cat "$WORK/track_c.out"; fail "the tracking call failed"; }
case "$status" in "skipped: not reconciled while track_balances_online fills"*) ;; *) fail "reconcile during the fill: $status" ;; esac
echo "$slots" | grep -q "are being filled by track_balances_online" || fail "set_balance_slots during the fill: $slots"
[ "$(exact)" = 0 ] || fail "after the fill, balances differ from the ledger"
# Two calls at the same time: one waits for the other's set-up; the later fill wins, the earlier adds nothing.
sql -c "$call_track" >"$WORK/track_a.out" 2>&1 & a=$!
sql -c "$call_track" >"$WORK/track_b.out" 2>&1 & b=$!
wait "$a" || true; wait "$b" || true
grep -h "ERROR" "$WORK/track_a.out" "$WORK/track_b.out" | grep -v "called off" && fail "a concurrent tracking call failed otherwise"
wait_for_workers_to_stop
[ "$(exact)" = 0 ] || fail "after two concurrent calls, balances differ from the ledger"
sql -c "INSERT INTO public.moves (item, qty) VALUES (7, 2.5)"
[ "$(exact)" = 0 ] && [ "$(sql -c "SELECT count(*) FROM inventory.reconcile('public.moves')")" = 0 ] \
  || fail "a posting after the calls is not exactly in its balance"
echo "online_interrupted: a cancelled fill (reconcile then checks the ledger) and a call at once after it; reconcile skips and set_balance_slots waits (55006) while a fill runs; two calls at the same time: every balance equals its ledger sum"
