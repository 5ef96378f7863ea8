#!/usr/bin/env bash
# Installs what the build and the demo or the tests need, skipping what is already there, and says what
# it installs and why. Idempotent; needs only the package registries (Debian, crates.io).
#
#   scripts/setup.sh demo    what building inventory_ext and running the demo need (scripts/demo.sh)
#   scripts/setup.sh [tests] that, and what only the tests need (scripts/test.sh, bench/)
#
# When it installs postgresql-15 it first writes /etc/postgresql-common/createcluster.d/no-main.conf
# (create_main_cluster = false), system-wide, and says so: Debian's postgresql-common would otherwise
# create and start a default cluster on port 5432, which nothing here uses. To undo it:
# rm /etc/postgresql-common/createcluster.d/no-main.conf (and pg_createcluster 15 main --start for the
# default cluster). INVENTORY_PG_CONFIG names the pg_config for `cargo pgrx init` (default Debian's).
set -euo pipefail

mode=${1:-tests}
case $mode in
  demo | tests) ;;
  *) echo "usage: scripts/setup.sh [demo|tests]" >&2; exit 2 ;;
esac

PGRX_VERSION=0.18.1
PG_MAJOR=15
PG_CONFIG=${INVENTORY_PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
NO_MAIN=/etc/postgresql-common/createcluster.d/no-main.conf

# Each Debian package, and why it is needed.
declare -A why=(
  ["postgresql-$PG_MAJOR"]="the PostgreSQL 15 server that the demo's and the tests' scratch clusters run"
  ["postgresql-server-dev-$PG_MAJOR"]="pg_config and the server's headers, which the build compiles against"
  ["postgresql-$PG_MAJOR-cron"]="pg_cron, which the scratch clusters preload and with which the demo schedules a nightly reconcile"
  [libclang-dev]="libclang, with which pgrx's bindgen reads PostgreSQL's headers"
  [clang]="clang's own headers, which bindgen finds through the clang that PostgreSQL was built with"
  [sudo]="tests: pgrx's test framework (the unit layer) installs its test build and runs its server as postgres with it"
  ["postgresql-$PG_MAJOR-pgtap"]="tests: pgTAP, the security layer's adversarial suite (tests/pgtap)"
  [libtap-parser-sourcehandler-pgtap-perl]="tests: pg_prove, which runs the pgTAP suite"
  [pgbouncer]="tests: the security layer's check of PgBouncer in transaction mode"
  [sqlsmith]="tests: the security layer's random queries (sqlsmith, leak fuzzing)"
  [dpkg-dev]="tests: dpkg-shlibdeps, with which scripts/package.sh finds the Debian package's library dependencies (tests/e2e/package.sh)"
)
apt_packages=("postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-$PG_MAJOR-cron" libclang-dev clang)
[ "$mode" = demo ] || apt_packages+=(sudo "postgresql-$PG_MAJOR-pgtap" libtap-parser-sourcehandler-pgtap-perl pgbouncer sqlsmith dpkg-dev
  liblz4-dev libzstd-dev libkrb5-dev libselinux1-dev libpam0g-dev)  # the last five: building Citus (the citus layer)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup ($mode): installing Debian packages:"
  for p in "${missing[@]}"; do echo "  $p: ${why[$p]}"; done
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if [[ " ${missing[*]} " == *" postgresql-$PG_MAJOR "* ]] && ! grep -qsx 'create_main_cluster = false' "$NO_MAIN"; then
    echo "setup: writing $NO_MAIN (create_main_cluster = false, system-wide): otherwise Debian's postgresql-common creates and starts a default cluster on port 5432, which the demo and tests do not use (they start scratch clusters); to undo: rm $NO_MAIN"
    mkdir -p "$(dirname "$NO_MAIN")"
    echo "create_main_cluster = false" >"$NO_MAIN"
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION"; then
  echo "setup: installing cargo-pgrx $PGRX_VERSION, which builds and installs the extension (takes about 6 minutes)"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

pgrx_home=${PGRX_HOME:-$HOME/.pgrx}
if ! grep -qs "pg$PG_MAJOR *= *\"$PG_CONFIG\"" "$pgrx_home/config.toml"; then
  echo "setup: cargo pgrx init --pg$PG_MAJOR $PG_CONFIG (tells pgrx which PostgreSQL to build against)"
  cargo pgrx init "--pg$PG_MAJOR" "$PG_CONFIG"
fi
echo "setup ($mode): ok"
