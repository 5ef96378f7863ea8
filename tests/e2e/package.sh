#!/usr/bin/env bash
# End-to-end: the Debian package (scripts/package.sh) as a DBA uses it — apt, and Debian's own cluster
# tools — running docs/INSTALL.md's commands as written (tests/e2e/doc_commands.sh holds the page to that):
#   1. the packages of 0.1.0 (from git history) and of this checkout build. Debug builds
#      (RELEASE_PROFILE=dev, the default here), to keep CI's time down: a release package differs only in
#      cargo's profile (RELEASE_PROFILE=release tests/e2e/package.sh tests those)
#   2. the extension's files in the system directories (scripts/test.sh installs this checkout with
#      cargo pgrx before the e2e layer) are set aside and removed with the docs' command; an EXIT trap puts
#      them back when the test ends, also when it fails
#   3. apt installs 0.1.0's package: every file where Debian puts it, owned by the package, dpkg -V clean
#   4. pg_createcluster, pg_conftool (pg_cron and inventory_ext preloaded), pg_ctlcluster; CREATE EXTENSION
#      (0.1.0) in a database with a tenant and a posting
#   5. apt upgrades to this checkout's package; after a restart the new library serves the 0.1.0 SQL as
#      docs/UPGRADING.md says (reads; a posting refused with 55000 until the update); then ALTER EXTENSION
#      UPDATE: this checkout's version, the data intact, a posting, balances equal to the ledger's sums
#   6. the demo walkthrough (demo/walkthrough.sql, as scripts/demo.sh runs it) in a fresh database of that
#      cluster, compared with tests/e2e/expected/demo.out as tests/e2e/demo.sh compares it
#   7. removal as the docs say: DROP EXTENSION, inventory_ext out of shared_preload_libraries, restart,
#      apt-get purge: no file left, the cluster starts (and would not with the library still preloaded);
#      pg_dropcluster
#   8. a cargo pgrx install of the same version (scripts/install.sh) writes the same paths: apt takes
#      over its files silently, a cargo install over the package shows in dpkg -V (the last writer wins),
#      and purging the package removes what cargo wrote
# PACKAGE_PORT is the cluster's first port to try (default 54390); it listens on a private socket only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/tests/harness/cluster.sh"
source "$repo/tests/harness/walkthrough.sh"
cd "$repo"
export RELEASE_PROFILE=${RELEASE_PROFILE:-dev} DEBIAN_FRONTEND=noninteractive
pkg=postgresql-15-inventory-ext
lib=/usr/lib/postgresql/15/lib
ext=/usr/share/postgresql/15/extension
start=$SECONDS
say() { echo "package: $*"; }
phase() { say "$* (at $((SECONDS - start)) s)"; }
installed() { dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; }
# The extension's files in the system directories, whoever wrote them.
ours() { ls -d "$lib"/inventory_ext.so "$ext"/inventory_ext.control "$ext"/inventory_ext--*.sql 2>/dev/null || true; }
# docs/INSTALL.md's removal of a cargo pgrx install.
remove_files() {
  rm -f /usr/lib/postgresql/15/lib/inventory_ext.so /usr/share/postgresql/15/extension/inventory_ext.control /usr/share/postgresql/15/extension/inventory_ext--*.sql
}
package_files() { dpkg -L "$pkg" | while read -r f; do [ -d "$f" ] || echo "$f"; done; }
# Each file of the package (dpkg -L) is gone, and no file of the extension is left.
gone() {
  local when=$1 f; shift
  for f in "$@"; do [ ! -f "$f" ] || fail "$when: $f is still there"; done
  [ -z "$(ours)" ] || fail "$when: files of the extension are left: $(ours | tr '\n' ' ')"
}

installed && fail "$pkg is installed on this machine; the test would remove it (apt-get purge $pkg first)"
harness_workdir
log=$WORK/steps.log

phase "1. building the packages (RELEASE_PROFILE=$RELEASE_PROFILE)"
deb_old=$(scripts/package.sh 0.1.0)
deb=$(scripts/package.sh)
version=$(dpkg-deb -f "$deb" Version)
say "   built $(basename "$deb_old") and $(basename "$deb") ($((SECONDS - start)) s)"

phase "2. the extension's files in the system directories are set aside"
saved=$(ours)
if [ -n "$saved" ]; then
  # shellcheck disable=SC2086
  tar -cpf "$WORK/saved.tar" -P $saved
  # shellcheck disable=SC2086
  sha256sum $saved >"$WORK/saved.sha256"
fi
cluster=inventory_pkg_$$
db=shop
restore_system() {
  local status=$?
  trap - INT TERM
  # A failure inside a redirected command leaves its redirection in place: back to the test's own output.
  exec 1>&3 2>&4
  if [ $status -ne 0 ] && [ -s "$log" ]; then echo "package: the last lines of the steps' output:"; tail -30 "$log"; fi
  pg_lsclusters -h 2>/dev/null | awk '{print $2}' | grep -qx "$cluster" \
    && { pg_dropcluster --stop 15 "$cluster" || echo "package: could not drop cluster 15/$cluster"; }
  installed && { apt-get purge -y "$pkg" >>"$log" 2>&1 || echo "package: could not purge $pkg"; }
  remove_files
  if [ -f "$WORK/saved.tar" ]; then
    if tar -xpf "$WORK/saved.tar" -P && sha256sum --quiet -c "$WORK/saved.sha256"; then
      echo "package: the extension's files set aside are back: $(echo $saved | wc -w) files"
    else
      cp "$WORK/saved.tar" "/var/tmp/inventory_ext-saved-$$.tar"
      echo "package: RESTORING FAILED: the extension's files set aside are in /var/tmp/inventory_ext-saved-$$.tar"
      status=1
    fi
  fi
  cluster_stop_all
  exit $status
}
exec 3>&1 4>&2
trap restore_system EXIT
trap 'exit 130' INT TERM
remove_files
[ -z "$(ours)" ] || fail "the docs' rm command left $(ours)"
say "   $(echo $saved | wc -w) files set aside (restored at exit) and removed with docs/INSTALL.md's rm command"

phase "3. apt installs 0.1.0's package"
apt-get install -y "$deb_old" >>"$log" 2>&1
installed || fail "apt-get did not install $deb_old"
files=$(dpkg -L "$pkg")
for f in "$lib/inventory_ext.so" "$ext/inventory_ext.control" "$ext/inventory_ext--0.1.0.sql"; do
  grep -qx "$f" <<<"$files" && [ -f "$f" ] || fail "0.1.0's package did not install $f"
done
[ -z "$(dpkg -V "$pkg")" ] || fail "dpkg -V after installing 0.1.0: $(dpkg -V "$pkg")"
say "   $pkg $(dpkg-query -W -f='${Version}' "$pkg") installed; its files where Debian's extensions keep theirs; dpkg -V clean"

phase "4. a cluster made with Debian's tools, the extension created at 0.1.0"
port=${PACKAGE_PORT:-54390}
while pg_lsclusters -h | awk '{print $3}' | grep -qx "$port"; do port=$((port + 1)); done
mkdir -p "$WORK/socket"
chown postgres "$WORK/socket"
pg_createcluster 15 "$cluster" -p "$port" -s "$WORK/socket" >>"$log" 2>&1
pg_conftool 15 "$cluster" set listen_addresses ''
pg_conftool 15 "$cluster" set shared_preload_libraries pg_cron,inventory_ext
pg_conftool 15 "$cluster" set cron.database_name inventory_demo
pg_ctlcluster 15 "$cluster" start
# psql as postgres (Debian's clusters authenticate local connections by peer), from a directory it can enter.
q() { local d=$1; shift; (cd / && sudo -u postgres psql --cluster 15/"$cluster" -X -qAt -v ON_ERROR_STOP=1 -d "$d" "$@"); }
q postgres -c "CREATE DATABASE $db"
cd "$WORK"  # the documented psql commands run as postgres, who cannot enter every checkout
sudo -u postgres psql --cluster 15/"$cluster" -d "$db" -c 'CREATE EXTENSION inventory_ext'
cd "$repo"
q "$db" >/dev/null <<'SQL'
SELECT org_id FROM inventory.create_organization('Acme Corp', 'acme');
BEGIN;
SELECT inventory.set_org_by_subdomain('acme');
INSERT INTO inventory.items (sku, name) VALUES ('BOLT-M8', 'Bolt M8');
INSERT INTO inventory.locations (code, name) VALUES ('A1', 'Aisle 1');
SELECT inventory.post((SELECT id FROM inventory.items), (SELECT id FROM inventory.locations), 100, reason => 'receipt');
COMMIT;
SQL
# The stock of the one item, as the application reads it (on_hand, in the tenant's context).
on_hand() { q "$db" -c "SELECT inventory.set_org_by_subdomain('acme')" -c "SELECT inventory.on_hand((SELECT id FROM inventory.items))" | tail -1; }
post() {
  q "$db" -v VERBOSITY=verbose -c "BEGIN" -c "SELECT inventory.set_org_by_subdomain('acme')" \
    -c "SELECT inventory.post((SELECT id FROM inventory.items), (SELECT id FROM inventory.locations), $1)" -c "COMMIT" >/dev/null
}
extversion() { q "$1" -c "SELECT extversion FROM pg_extension WHERE extname = 'inventory_ext'"; }
[ "$(extversion "$db")" = 0.1.0 ] || fail "CREATE EXTENSION made version $(extversion "$db"), not 0.1.0"
[ "$(on_hand)" = 100 ] || fail "on_hand at 0.1.0 is $(on_hand), not 100"
say "   cluster 15/$cluster (port $port, socket in $WORK/socket) $(pg_conftool 15 "$cluster" show shared_preload_libraries); database $db at 0.1.0: a tenant, a posting, on_hand 100"

phase "5. apt upgrades to $version; restart; ALTER EXTENSION UPDATE"
apt-get install -y "$deb" >>"$log" 2>&1
[ "$(dpkg-query -W -f='${Version}' "$pkg")" = "$version" ] || fail "apt-get did not upgrade to $version"
[ -z "$(dpkg -V "$pkg")" ] || fail "dpkg -V after the upgrade: $(dpkg -V "$pkg")"
say "   $pkg $version installed over 0.1.0, dpkg -V clean: $(dpkg -L "$pkg" | grep "^$ext/inventory_ext" | xargs -n1 basename | tr '\n' ' ')"
pg_ctlcluster 15 "$cluster" restart
[ "$(extversion "$db")" = 0.1.0 ] || fail "the extension is at $(extversion "$db") before ALTER EXTENSION UPDATE"
# docs/UPGRADING.md: until the update, the new library serves the old SQL's reads and tenant context, and
# refuses a posting through 0.1.0's balance trigger (55000) rather than write a wrong balance.
[ "$(on_hand)" = 100 ] || fail "with the new library and 0.1.0's SQL, on_hand is $(on_hand) (want 100)"
err=$(post -10 2>&1 || true)
grep -q 'ERROR:  55000' <<<"$err" || fail "with the new library and 0.1.0's SQL, a posting did not fail with 55000: $err"
say "   restarted: the new library serves the database still at 0.1.0: on_hand 100; a posting refused until the update:"
sed -n 's/^ERROR:  55000: /package:     /p' <<<"$err"
cd "$WORK"  # the documented psql commands run as postgres, who cannot enter every checkout
sudo -u postgres psql --cluster 15/"$cluster" -d "$db" -c 'ALTER EXTENSION inventory_ext UPDATE'
cd "$repo"
[ "$(extversion "$db")" = "$version" ] || fail "after ALTER EXTENSION UPDATE the version is $(extversion "$db"), not $version"
post -10 || fail "after ALTER EXTENSION UPDATE a posting fails (above: why)"
[ "$(on_hand)" = 90 ] || fail "after the update on_hand is $(on_hand) after posting -10 (want 90)"
findings=$(q "$db" -c "SELECT count(*) FROM inventory.reconcile()")
[ "$findings" = 0 ] || fail "reconcile() after the update found $findings differences between balances and the ledger"
sums=$(q "$db" -c "SELECT (SELECT sum(qty) FROM inventory.ledger) || ' ' || (SELECT sum(qty) FROM inventory.balances)")
[ "$sums" = "90 90" ] || fail "ledger and balance sums after the update: $sums (want 90 90)"
say "   extversion $version; a posting of -10: on_hand 90; reconcile() finds nothing; ledger sum = balance sum = 90"

phase "6. the demo walkthrough in a fresh database of that cluster"
q postgres -c "CREATE DATABASE inventory_demo"
q inventory_demo -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION inventory_ext"
# As scripts/demo.sh runs it: the same psql options and file name (its error lines name the file), from a
# copy the postgres user can read.
mkdir -p "$WORK/demo"
cp demo/walkthrough.sql "$WORK/demo/"
(cd "$WORK" && sudo -u postgres psql --cluster 15/"$cluster" -X -v ON_ERROR_STOP=1 -d inventory_demo -v ON_ERROR_STOP=0 -e -f demo/walkthrough.sql) \
  >"$WORK/walkthrough.out" 2>&1
walkthrough_compare "$WORK/walkthrough.out" package

phase "7. removal: DROP EXTENSION in each database, out of shared_preload_libraries, restart, apt-get purge"
cd "$WORK"  # the documented psql commands run as postgres, who cannot enter every checkout
sudo -u postgres psql --cluster 15/"$cluster" -d "$db" -c 'DROP EXTENSION inventory_ext'
cd "$repo"
[ -z "$(extversion "$db")" ] || fail "the extension is still in $db"
pg_conftool 15 "$cluster" set shared_preload_libraries pg_cron
pg_ctlcluster 15 "$cluster" restart
files=$(package_files)
apt-get purge -y postgresql-15-inventory-ext >>"$log" 2>&1
! installed || fail "apt-get purge left $pkg installed"
# shellcheck disable=SC2086
gone "after apt-get purge" $files
say "   dropped in $db, no longer preloaded, purged: its $(echo $files | wc -w) files gone"
# A database forgotten (the walkthrough's, which still has the extension): its event triggers need the
# library, so every DDL statement there fails, DROP EXTENSION included. The docs' way out: the package
# again, DROP EXTENSION, purge.
err=$(q inventory_demo -c 'CREATE TABLE t (i int)' 2>&1 || true)
grep -q 'could not access file "inventory_ext"' <<<"$err" || fail "DDL in a database that still has the extension, files gone: $err"
apt-get install -y "$deb" >>"$log" 2>&1
# The walkthrough's tenant table uses the extension (its policy, default and foreign key): CASCADE.
q inventory_demo -c 'DROP EXTENSION inventory_ext CASCADE' >/dev/null 2>"$WORK/cascade.err" \
  || fail "DROP EXTENSION CASCADE in inventory_demo: $(cat "$WORK/cascade.err")"
[ -z "$(extversion inventory_demo)" ] || fail "the extension is still in inventory_demo"
apt-get purge -y postgresql-15-inventory-ext >>"$log" 2>&1
# shellcheck disable=SC2086
gone "after apt-get purge" $files
q inventory_demo -c 'CREATE TABLE t (i int)'
say "   a database forgotten: DDL there fails (could not access file \"inventory_ext\") until the package is back and DROP EXTENSION ran"
pg_ctlcluster 15 "$cluster" restart
err=$(q postgres -c "CREATE EXTENSION inventory_ext" 2>&1 || true)
grep -q 'is not available' <<<"$err" || fail "CREATE EXTENSION after the purge: $err"
say "   the cluster restarts without it; CREATE EXTENSION: extension is not available"
# What the docs warn of: the library preloaded but gone, and the server does not start.
pg_conftool 15 "$cluster" set shared_preload_libraries pg_cron,inventory_ext
if pg_ctlcluster 15 "$cluster" restart >>"$log" 2>&1; then fail "the cluster started with inventory_ext preloaded and not installed"; fi
grep -q 'could not access file "inventory_ext"' "/var/log/postgresql/postgresql-15-$cluster.log" \
  || fail "the failed start did not log that the library is missing"
pg_conftool 15 "$cluster" remove shared_preload_libraries
pg_ctlcluster 15 "$cluster" start
[ -z "$(q postgres -c 'SHOW shared_preload_libraries')" ] || fail "shared_preload_libraries is still set after pg_conftool remove"
say "   with inventory_ext still preloaded the server does not start (could not access file \"inventory_ext\"); it does once pg_conftool removes the setting"
pg_dropcluster --stop 15 "$cluster"
! pg_lsclusters -h | awk '{print $2}' | grep -qx "$cluster" || fail "pg_dropcluster left the cluster"
[ ! -e "/var/lib/postgresql/15/$cluster" ] && [ ! -e "/etc/postgresql/15/$cluster" ] || fail "pg_dropcluster left files of $cluster"
say "   cluster dropped (pg_dropcluster --stop): no data or configuration directory left"

phase "8. a cargo pgrx install of the same version (scripts/install.sh) and the package"
scripts/install.sh >>"$log" 2>&1
[ -f "$lib/inventory_ext.so" ] || fail "scripts/install.sh did not install the library"
dpkg -S /usr/lib/postgresql/15/lib/inventory_ext.so >"$WORK/owner" 2>&1 && fail "a package owns the library cargo installed: $(cat "$WORK/owner")"
grep -q 'no path found' "$WORK/owner" || fail "dpkg -S on the library cargo installed: $(cat "$WORK/owner")"
say "   cargo pgrx installed $(ours | wc -l) files; no package owns them (dpkg -S: no path found)"
apt-get install -y "$deb" >"$WORK/apt-over-cargo.log" 2>&1
cat "$WORK/apt-over-cargo.log" >>"$log"
! grep -qiE 'overwrit|replac|conflict|warning' "$WORK/apt-over-cargo.log" \
  || fail "apt-get over a cargo pgrx install said: $(grep -iE 'overwrit|replac|conflict|warning' "$WORK/apt-over-cargo.log")"
[ -z "$(dpkg -V "$pkg")" ] || fail "dpkg -V after apt over cargo: $(dpkg -V "$pkg")"
for f in $(ours); do dpkg -S "$f" >/dev/null 2>&1 || fail "after apt-get install, $f belongs to no package"; done
say "   apt-get install over it: no question, no warning; every file now the package's, dpkg -V clean (the package wrote last)"
scripts/install.sh >>"$log" 2>&1
dpkg -V postgresql-15-inventory-ext >"$WORK/verify" 2>&1 || true
grep -q " $lib/inventory_ext.so\$" "$WORK/verify" || fail "dpkg -V does not report the library cargo overwrote: $(cat "$WORK/verify")"
say "   cargo pgrx install over the package: dpkg -V reports what cargo changed (the last writer wins):"
sed 's/^/package:     /' "$WORK/verify"
files=$(package_files)
apt-get purge -y postgresql-15-inventory-ext >>"$log" 2>&1
# shellcheck disable=SC2086
gone "after purging the package over a cargo install" $files
say "   apt-get purge removes them all, cargo's library included"
say "ok ($((SECONDS - start)) s)"
