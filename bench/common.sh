# Sourced by every benchmark: installs what is missing, builds and installs the extension in release
# mode (benchmarks measure what ships), and loads the scratch-cluster harness. Sets $repo.
# BENCH_INSTALL=0 skips the build and measures the extension as installed (bench_build says what it is).
# PG_VERSION=18 measures on PostgreSQL 18 (scripts/pg18_install.sh: installed once, its environment
# exported here; no pg_cron), the default 15 on Debian's PostgreSQL 15.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/setup.sh" >/dev/null
case ${PG_VERSION:-15} in
  15) ;;
  18) eval "$("$repo/scripts/pg18_install.sh" --env)" ;;
  *) echo "bench: PG_VERSION=$PG_VERSION: the benchmarks run on 15 (the default) or 18" >&2; exit 2 ;;
esac
# With PG_BIN set (another PostgreSQL 15, e.g. a relocated copy of Debian's), the build goes there.
[ "${BENCH_INSTALL:-1}" = 0 ] || INVENTORY_RELEASE=1 INVENTORY_PG_CONFIG="${PG_BIN:+$PG_BIN/pg_config}" "$repo/scripts/install.sh"
source "$repo/tests/harness/cluster.sh"

# What is being measured, for the figures' label: the installed library's date and kind (a release build
# carries no debug info; a dev build, scripts/install.sh without INVENTORY_RELEASE=1, does and is much
# slower) and where it came from: this run's build of the work tree (its commit, and whether src/ and
# sql/ differ from it), or, with BENCH_INSTALL=0, whatever was installed before.
bench_build() {
  local so; so=$("$PG_BIN/pg_config" --pkglibdir)/inventory_ext.so
  local kind="release build (no debug info)" version; version=$("$PG_BIN/postgres" --version)
  readelf -S "$so" 2>/dev/null | grep -q '\.debug_info' && kind="DEV BUILD (has debug info): not what ships"
  local sum; sum=$(sha256sum "$so" | cut -c1-12)
  local commit; commit=$(git -C "$repo" log -1 --format=%h 2>/dev/null || echo unknown)
  local tree="src/ and sql/ as committed"
  [ -z "$(git -C "$repo" status --porcelain -- src sql 2>/dev/null)" ] || tree="src/ or sql/ with uncommitted changes"
  if [ "${BENCH_INSTALL:-1}" = 0 ]; then
    echo "$version, $so (sha256 $sum…) as installed on $(date -r "$so" '+%Y-%m-%d %H:%M'), $kind; not built by this run (work tree: commit $commit)"
  else
    echo "$version, $so (sha256 $sum…) built from the work tree at commit $commit, $tree; $kind"
  fi
}
# The installed library's stamp (date and size), to see whether it was reinstalled during a run.
bench_so_stamp() { stat -c '%Y %s' "$("$PG_BIN/pg_config" --pkglibdir)/inventory_ext.so"; }
bench_so_check() {  # stamp taken at the start
  [ "$(bench_so_stamp)" = "$1" ] \
    || echo "WARNING: inventory_ext.so was reinstalled during the run: these figures may mix two builds"
}
