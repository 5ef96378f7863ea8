#!/usr/bin/env bash
# DROP EXTENSION leaves nothing behind (issue 12.9): in pg_cron's database, create the extension, use
# it (tenants, postings, a scheduled reconcile beside a job of the DBA's own), drop it, and check the
# catalogs: no object of the extension, no pg_cron job that runs it, no cluster-wide SET grant on
# app.org_id that its CREATE EXTENSION made. What it did not make stays: a DBA's own grant, a hardened
# cluster (which a later CREATE EXTENSION must not open again).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
cluster_start dropext
q() { cluster_psql dropext -X -qAt -v ON_ERROR_STOP=1 -d postgres "$@"; }
acl() { q -c "SELECT coalesce((SELECT paracl::text FROM pg_parameter_acl WHERE parname = 'app.org_id'), 'none')"; }

q >/dev/null <<'SQL'
CREATE EXTENSION pg_cron;
SELECT cron.schedule('dba-vacuum', '0 4 * * *', 'VACUUM');
CREATE ROLE dropext_app LOGIN;
SQL
[ "$(acl)" = none ] || fail "the cluster starts with an ACL on app.org_id: $(acl)"

# 1. Create, use, drop.
q >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
SELECT inventory.grant_app_access('dropext_app');
INSERT INTO inventory.organizations (id, name) VALUES ('d0000000-0000-4000-8000-00000000000d', 'Drop');
SET app.org_id = 'd0000000-0000-4000-8000-00000000000d';
INSERT INTO inventory.items (id, sku, name) VALUES ('d0000000-0000-4000-a000-000000000001', 'D', 'Drop item');
INSERT INTO inventory.locations (id, code, name) VALUES ('d0000000-0000-4000-b000-000000000001', 'L', 'Shelf');
SELECT inventory.post('d0000000-0000-4000-a000-000000000001', 'd0000000-0000-4000-b000-000000000001', 5);
RESET app.org_id;
SELECT inventory.schedule_reconcile('0 2 * * *');
SELECT inventory.schedule_reconcile('30 2 * * *', 'inventory-reconcile-late');
SQL
made=$(acl)
[ "$made" != none ] || fail "CREATE EXTENSION made no SET grant on app.org_id"
[ "$(q -c "SELECT count(*) FROM cron.job WHERE command ~ 'inventory'")" = 2 ] || fail "the reconcile jobs were not scheduled"
echo "drop_extension: created and used; app.org_id ACL $made; 2 reconcile jobs and the DBA's own job"

q -c "DROP EXTENSION inventory_ext" 2>&1 | sed 's/^/drop_extension: /'
[ "$(acl)" = none ] || fail "DROP EXTENSION left the SET grant it made: $(acl)"
left=$(q -c "SELECT string_agg(jobname, ',' ORDER BY jobname) FROM cron.job")
[ "$left" = dba-vacuum ] || fail "cron jobs after DROP EXTENSION: $left (want only the DBA's own)"
leftovers=$(q <<'SQL'
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'inventory'::regnamespace)
     + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'inventory'::regnamespace)
     + (SELECT count(*) FROM pg_type WHERE typnamespace = 'inventory'::regnamespace)
     + (SELECT count(*) FROM pg_event_trigger)
     + (SELECT count(*) FROM pg_class WHERE relname IN ('ledger', 'balances', 'organizations', 'tracked_ledgers'))
     + (SELECT count(*) FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND refobjid NOT IN (SELECT oid FROM pg_extension))
SQL
)
[ "$leftovers" = 0 ] || fail "$leftovers catalog entries of the extension survived DROP EXTENSION"
# PostgreSQL creates the control file's schema for CREATE EXTENSION without making it a member, so an
# empty schema is all that stays; a plain DROP SCHEMA (no CASCADE) proves it is empty.
q -c "DROP SCHEMA inventory"
echo "drop_extension: dropped: no grant, no job of ours, no function, event trigger, type or table left (the empty schema dropped without CASCADE)"

# The same through DROP SCHEMA inventory CASCADE, which takes the extension along.
q -c "CREATE EXTENSION inventory_ext" -c "SELECT inventory.schedule_reconcile()" >/dev/null
q -c "DROP SCHEMA inventory CASCADE" >/dev/null 2>&1
[ "$(acl)" = none ] || fail "DROP SCHEMA inventory CASCADE left the SET grant: $(acl)"
[ "$(q -c "SELECT string_agg(jobname, ',' ORDER BY jobname) FROM cron.job")" = dba-vacuum ] || fail "DROP SCHEMA CASCADE left a job"
[ "$(q -c "SELECT count(*) FROM pg_extension WHERE extname = 'inventory_ext'")" = 0 ] || fail "the extension survived"
echo "drop_extension: DROP SCHEMA inventory CASCADE undoes the same"

# 2. A grant the DBA made before CREATE EXTENSION is the DBA's: DROP EXTENSION leaves it.
q -c "GRANT SET ON PARAMETER app.org_id TO PUBLIC"
own=$(acl)
q -c "CREATE EXTENSION inventory_ext" -c "DROP EXTENSION inventory_ext" >/dev/null
[ "$(acl)" = "$own" ] || fail "DROP EXTENSION took the DBA's own grant: $(acl)"
q -c "REVOKE SET ON PARAMETER app.org_id FROM PUBLIC"
echo "drop_extension: a grant made before CREATE EXTENSION survives its DROP"

# 3. A hardened cluster stays hardened through DROP and a new CREATE EXTENSION (as after a restore).
q -c "CREATE EXTENSION inventory_ext" -c "SELECT inventory.revoke_tenant_switch('public')" >/dev/null
hardened=$(acl)
q -c "DROP EXTENSION inventory_ext" -c "CREATE EXTENSION inventory_ext" >/dev/null
[ "$(acl)" = "$hardened" ] || fail "DROP and CREATE EXTENSION changed a hardened cluster's ACL: $hardened -> $(acl)"
if out=$(cluster_psql dropext -X -qAt -U dropext_app -d postgres -c "SET app.org_id = 'd0000000-0000-4000-8000-00000000000d'" 2>&1); then
  fail "after DROP and CREATE EXTENSION a hardened cluster lets an application role choose its tenant"
fi
echo "$out" | grep -q "permission denied" || fail "unexpected answer: $out"
q -c "SELECT inventory.grant_tenant_switch('public')" >/dev/null
[ "$(acl)" = "$made" ] || fail "grant_tenant_switch('public') did not restore the entry CREATE EXTENSION makes: $(acl)"
echo "drop_extension: a hardened cluster ($hardened) stays hardened through DROP and CREATE EXTENSION; opening it restores $made"
