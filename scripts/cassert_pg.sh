#!/usr/bin/env bash
# PostgreSQL 15 with assertions (--enable-cassert --enable-debug), for the `assert` test layer.
# Built once from Debian's source package (upstream tarball, Debian's patches not applied: they move
# the install into /usr/lib/postgresql/15) into a cache directory outside the repository, then reused:
#
#   scripts/cassert_pg.sh          # builds if needed; prints the prefix (…/install)
#   scripts/cassert_pg.sh --env    # builds if needed; prints instead the exports the assert layer
#                                  # uses: PG_BIN (the harness), PG_REGRESS, PG_ISOLATION_REGRESS,
#                                  # INVENTORY_PG_CONFIG (scripts/install.sh), PGRX_HOME, CARGO_TARGET_DIR
#
# INVENTORY_CASSERT_DIR overrides the cache (default /var/cache/inventory_ext/pg15.18-cassert). The
# build happens when its stamp file (<cache>/install/.built) is missing: delete the cache to rebuild.
# Needs root (apt-get, as scripts/setup.sh). Progress goes to stderr, the build's output to
# <cache>/build.log. The prefix also gets Debian's pg_cron (the harness preloads it) and a PGRX_HOME of
# its own (<cache>/pgrx-home) whose config.toml points pgrx at this pg_config; cargo builds against it
# go to <cache>/target/<clone> (one per clone), so the normal build in ./target is not invalidated.
set -euo pipefail

PG_MAJOR=15
DEB_VERSION=15.18-0+deb12u1   # the newest postgresql-15 source Debian's archive still serves
UPSTREAM=${DEB_VERSION%%-*}
cache=${INVENTORY_CASSERT_DIR:-/var/cache/inventory_ext/pg$UPSTREAM-cassert}
prefix=$cache/install
stamp=$prefix/.built
log=$cache/build.log

say() { echo "cassert_pg: $*" >&2; }

source_known() {
  apt-cache showsrc "postgresql-$PG_MAJOR" 2>/dev/null | grep -c "^Version: $DEB_VERSION\$" >/dev/null
}

enable_deb_src() {
  # One entry per archive: adding a second file for the same archive conflicts with this one.
  local f=/etc/apt/sources.list.d/debian.sources
  if [ -f "$f" ] && grep -q '^Types: deb$' "$f"; then
    say "enabling deb-src in $f"
    sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"
    apt-get update -qq
  fi
  if ! source_known; then
    apt-get update -qq
    source_known || { say "no source package postgresql-$PG_MAJOR=$DEB_VERSION (is deb-src enabled?)"; exit 1; }
  fi
}

build() {
  local start=$SECONDS
  mkdir -p "$cache"
  : >"$log"
  # What a minimal configure needs (no readline, zlib or ICU: the tests use none of them; the release
  # tarball carries the generated parsers, so no bison or flex).
  local p missing=()
  for p in gcc make dpkg-dev bzip2 xz-utils perl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log"
  fi
  enable_deb_src

  local src=$cache/src
  rm -rf "$src" "$prefix"
  mkdir -p "$src"
  say "downloading postgresql-$PG_MAJOR=$DEB_VERSION (source)"
  (cd "$src" && apt-get source -qq --download-only "postgresql-$PG_MAJOR=$DEB_VERSION") >>"$log" 2>&1 \
    || { cat "$log" >&2; exit 1; }
  (cd "$src" && dpkg-source -x --skip-patches ./*.dsc pg) >>"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  say "building PostgreSQL $UPSTREAM with --enable-cassert --enable-debug into $prefix (log: $log)"
  local jobs=$(( $(nproc) + 1 ))
  (
    cd "$src/pg"
    ./configure --prefix="$prefix" --enable-cassert --enable-debug \
      --without-readline --without-zlib --without-icu
    make -j"$jobs"
    # Also installs the server headers, pg_config, PGXS, pg_regress (lib/postgresql/pgxs/src/test/regress)
    # and pg_isolation_regress with isolationtester (…/src/test/isolation).
    make install
  ) >>"$log" 2>&1 || { tail -50 "$log" >&2; say "build failed; the whole log is $log"; exit 1; }
  # The build tree is 300 MB; the sources stay for gdb (the binaries' debug info points at them).
  make -C "$src/pg" -s clean >>"$log" 2>&1 || true
  rm -f "$src"/*.tar.* "$src"/*.dsc
  date -u +%FT%TZ >"$stamp"
  say "built in $((SECONDS - start)) s"
}

# Debian's pg_cron (installed by scripts/setup.sh) into the prefix: the harness preloads it. An
# extension built without assertions loads into an assert-enabled server of the same major version.
install_pg_cron() {
  local pkglib share f to
  pkglib=$("$prefix/bin/pg_config" --pkglibdir)
  share=$("$prefix/bin/pg_config" --sharedir)/extension
  [ -f "/usr/lib/postgresql/$PG_MAJOR/lib/pg_cron.so" ] \
    || { say "pg_cron is missing: run scripts/setup.sh"; exit 1; }
  # Replaced by a new file, never rewritten in place (a running server may have it mapped).
  for f in "/usr/lib/postgresql/$PG_MAJOR/lib/pg_cron.so" /usr/share/postgresql/$PG_MAJOR/extension/pg_cron*; do
    case $f in *.so) to=$pkglib ;; *) to=$share ;; esac
    cmp -s "$f" "$to/$(basename "$f")" || cp --remove-destination "$f" "$to/"
  done
}

# pgrx's own home for this server: cargo pgrx init writes config.toml (as root it runs no initdb).
init_pgrx() {
  local home=$cache/pgrx-home
  mkdir -p "$home"
  if ! grep -qs "pg$PG_MAJOR *= *\"$prefix/bin/pg_config\"" "$home/config.toml"; then
    PGRX_HOME=$home cargo pgrx init "--pg$PG_MAJOR" "$prefix/bin/pg_config" >>"$log" 2>&1 \
      || { tail -20 "$log" >&2; exit 1; }
  fi
}

if [ ! -f "$stamp" ] || [ ! -x "$prefix/bin/pg_config" ]; then build; fi
install_pg_cron
init_pgrx
if [ "${1:-}" = --env ]; then
  pgxs_src=$(dirname "$(dirname "$("$prefix/bin/pg_config" --pgxs)")")
  # One target directory per clone: cargo's freshness check follows the source paths of the build
  # before, so two clones sharing one directory could test a stale build of the other.
  clone=$(cd "$(dirname "$0")/.." && pwd)
  target=$cache/target/$(echo "$clone" | sha256sum | cut -c1-12)
  echo "export CASSERT_PREFIX='$prefix' CASSERT_CACHE='$cache' PG_BIN='$prefix/bin'" \
    "INVENTORY_PG_CONFIG='$prefix/bin/pg_config' PGRX_HOME='$cache/pgrx-home' CARGO_TARGET_DIR='$target'" \
    "PG_REGRESS='$pgxs_src/test/regress/pg_regress'" \
    "PG_ISOLATION_REGRESS='$pgxs_src/test/isolation/pg_isolation_regress'"
else
  echo "$prefix"
fi
