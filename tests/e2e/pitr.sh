#!/usr/bin/env bash
# Point-in-time recovery with the commands of docs/DISASTER_RECOVERY.md: WAL archiving to a local
# directory, pg_basebackup, more postings, then recovery on a second cluster to a time between two known
# postings: exactly the postings before the target are there and the balances match them. Along the
# way, inventory.backup_status: healthy while archiving works, unhealthy when the last archive is older
# than max_age, and unhealthy with a failing archive_command (then healthy again once it is fixed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/cluster.sh"
harness_workdir
work=$WORK
archive=$work/wal_archive
mkdir "$archive"; chown postgres "$archive"

cluster_start primary "wal_level = replica" "archive_mode = on" \
  "archive_command = 'test ! -f $archive/%f && cp %p $archive/%f'" "archive_timeout = 0"
q() { cluster_psql "$1" -qAt -d postgres "${@:2}"; }
q primary >/dev/null <<'SQL'
CREATE EXTENSION inventory_ext;
INSERT INTO inventory.organizations (id, name) VALUES ('d0000000-0000-4000-8000-00000000000d', 'Recovery');
SET app.org_id = 'd0000000-0000-4000-8000-00000000000d';
INSERT INTO inventory.items (id, sku, name) VALUES ('d0000000-0000-4000-a000-000000000001', 'PITR', 'Item');
INSERT INTO inventory.locations (id, code, name) VALUES ('d0000000-0000-4000-b000-000000000001', 'L', 'Shelf');
SELECT inventory.post('d0000000-0000-4000-a000-000000000001', 'd0000000-0000-4000-b000-000000000001', 10, reference => 'A');
SQL
post() {  # cluster, qty, reference
  q "$1" -c "SET app.org_id = 'd0000000-0000-4000-8000-00000000000d'" \
    -c "SELECT inventory.post('d0000000-0000-4000-a000-000000000001', 'd0000000-0000-4000-b000-000000000001', $2, reference => '$3')" >/dev/null
}
# Switches to a new WAL segment and waits until the archiver has copied the one just closed.
archive_now() {
  local seg; seg=$(q primary -c "SELECT pg_walfile_name(pg_switch_wal())")
  for _ in $(seq 100); do
    [ "$(q primary -c "SELECT coalesce(last_archived_wal >= '$seg', false) FROM pg_stat_archiver")" = t ] && return 0
    sleep 0.2
  done
  fail "segment $seg was not archived"
}
status() { q primary -F ' ' -c "SELECT healthy, detail FROM inventory.backup_status(${1:-})"; }

archive_now
case $(status) in "t archiving works"*) ;; *) fail "backup_status with archiving working: $(status)";; esac
echo "pitr: backup_status while archiving works: $(status)"
case $(status "'1 microsecond'") in "f the last archived segment"*) ;; *) fail "a stale archive looked healthy: $(status "'1 microsecond'")";; esac

eval "$(cluster_env primary)"
base=$work/base
mkdir "$base"; chown postgres "$base"; chmod 700 "$base"
# --- the command of docs/DISASTER_RECOVERY.md ("Base backups")
runuser -u postgres -- pg_basebackup --pgdata="$base" --wal-method=stream --checkpoint=fast
# ---

post primary 20 B
target=$(q primary -c "SELECT clock_timestamp()")
sleep 1.2
post primary 40 C
archive_now
echo "pitr: A (10) before the base backup, B (20) before $target, C (40) after it"

# --- the settings of docs/DISASTER_RECOVERY.md ("Point-in-time recovery"), on a copy of the base backup
cluster_start_from recovered "$base" --recover \
  "restore_command = 'cp $archive/%f %p'" \
  "recovery_target_time = '$target'" \
  "recovery_target_action = 'promote'" \
  "archive_mode = off"
# ---
for _ in $(seq 150); do
  [ "$(q recovered -c "SELECT pg_is_in_recovery()")" = f ] && break
  sleep 0.2
done
[ "$(q recovered -c "SELECT pg_is_in_recovery()")" = f ] || fail "the recovered cluster did not finish recovery"
got=$(q recovered -c "SELECT string_agg(reference, ',' ORDER BY id) || ' ' || (SELECT string_agg(qty::text, ',') FROM inventory.balances) FROM inventory.ledger")
[ "$got" = "A,B 30" ] || fail "recovered to $target: postings and balance '$got', expected 'A,B 30'"
findings=$(q recovered -c "SELECT count(*) FROM inventory.reconcile()")
[ "$findings" = 0 ] || fail "reconcile found $findings differences on the recovered cluster"
echo "pitr: recovered to the target: postings A,B and balance 30, C not there; reconcile clean"

# A failing archive_command is reported, and recovers once it is fixed.
q primary -c "ALTER SYSTEM SET archive_command = 'false'" -c "SELECT pg_reload_conf()" >/dev/null
post primary 1 D
q primary -c "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 100); do
  [ "$(q primary -c "SELECT failed_count > 0 FROM pg_stat_archiver")" = t ] && break
  sleep 0.2
done
case $(status) in "f archiving is failing"*) ;; *) fail "a failing archive_command looked healthy: $(status)";; esac
echo "pitr: backup_status with a failing archive_command: $(status | cut -c1-80)…"
q primary -c "ALTER SYSTEM RESET archive_command" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 100); do
  case $(status) in "t "*) break;; esac
  sleep 0.3
done
case $(status) in "t archiving works"*) ;; *) fail "backup_status after fixing archive_command: $(status)";; esac
echo "pitr: and once archive_command works again: $(status)"
