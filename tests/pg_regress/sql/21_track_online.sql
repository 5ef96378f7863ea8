-- track_balances_online: the balances track_balances would make, its errors. (Under concurrent postings:
-- tests/e2e/track_online.sh.) It commits, so this file drops what it made at the end.
CREATE TABLE public.online_moves (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text NOT NULL,
                                  lot text, qty numeric(12, 2) NOT NULL);
INSERT INTO public.online_moves (item, lot, qty)
SELECT 'item-' || (g % 4), CASE WHEN g % 2 = 0 THEN NULL ELSE 'lot-1' END, g / 4.0 FROM generate_series(1, 1000) g;
CALL inventory.track_balances_online('public.online_moves', 'public.online_balances', ARRAY['item', 'lot'], 'qty');
SELECT item, lot, qty, last_ledger_id FROM public.online_balances ORDER BY item, lot;
-- Every balance is its ledger sum, and the triggers keep it from here.
INSERT INTO public.online_moves (item, lot, qty) VALUES ('item-0', NULL, 0.5), ('item-9', 'lot-2', -3);
SELECT count(*) AS differing FROM (
    SELECT item, lot, sum(qty), max(id) FROM public.online_moves GROUP BY item, lot
    EXCEPT ALL SELECT item, lot, qty, last_ledger_id FROM public.online_balances) d;
SELECT count(*) AS findings FROM inventory.reconcile('public.online_moves');
-- Called again, it starts over: the same balances.
CALL inventory.track_balances_online('public.online_moves', 'public.online_balances', ARRAY['item', 'lot'], 'qty');
SELECT count(*) AS balances, sum(qty) AS total FROM public.online_balances;
-- The registry names the fill's worker while it runs (tracked_ledgers.fill_worker; reconcile skips the
-- ledger meanwhile: tests/e2e/online_interrupted.sh). A worker that is gone — cancelled, killed — leaves
-- a PID that names no such process and counts for nothing: reconcile checks the ledger and reports
-- the balance it never filled; a rebuild puts it back.
UPDATE inventory.tracked_ledgers SET fill_worker = pg_backend_pid() WHERE ledger = 'public.online_moves'::regclass;
DELETE FROM public.online_balances WHERE item = 'item-1';
SELECT count(*) AS findings FROM inventory.reconcile('public.online_moves');
SELECT status FROM inventory.reconcile_runs ORDER BY id DESC LIMIT 1;
SELECT inventory.rebuild_balances('public.online_moves') AS rebuilt;
SELECT count(*) AS balances, sum(qty) AS total FROM public.online_balances;
-- An empty ledger: no balances.
CREATE TABLE public.online_empty (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text NOT NULL, qty numeric NOT NULL);
CALL inventory.track_balances_online('public.online_empty', 'public.online_empty_balances', ARRAY['item'], 'qty');
SELECT count(*) AS balances FROM public.online_empty_balances;

-- Not in a transaction block (25001); bad arguments as track_balances answers them (22023, 42703); a
-- ledger whose negative-stock rule would judge postings against incomplete balances (0A000).
BEGIN;
CALL inventory.track_balances_online('public.online_moves', 'public.online_balances', ARRAY['item', 'lot'], 'qty');
ROLLBACK;
CALL inventory.track_balances_online(NULL, 'public.online_balances', ARRAY['item'], 'qty');
CALL inventory.track_balances_online('public.online_moves', 'public.online_balances', ARRAY['item', 'nope'], 'qty');
CALL inventory.track_balances_online('inventory.ledger', 'inventory.balances', ARRAY['item_id', 'location_id', 'lot_id'], 'qty');

SET client_min_messages = warning;
SELECT inventory.untrack_balances('public.online_moves');
SELECT inventory.untrack_balances('public.online_empty');
DROP TABLE public.online_moves, public.online_balances, public.online_empty, public.online_empty_balances;
RESET client_min_messages;
