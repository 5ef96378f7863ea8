#!/usr/bin/env bash
# Builds Citus once for the citus test layer and prints the directory holding its files in a staged
# install's layout (usr/lib/postgresql/15/lib/citus*.so, usr/share/postgresql/15/extension/citus*).
#
# The source is CITUS_SOURCE: a directory with citus-<version>.tar.gz (a `git archive` of a Citus tag)
# and optionally *.patch files applied with `patch -p1` (default: ../shared/citus next to the repository,
# or next to the checkout it was cloned from: Citus 13.2.2 and its one-line PostgreSQL 15.20 patch). Exit status 3, with one line saying so, when
# there is no source: the layer is then skipped. The build is cached in CITUS_CACHE (default
# /var/cache/inventory_ext/citus-<digest of the source>), rebuilt when its stamp is missing; about 70 s.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# A clone of a local checkout (as CI makes) finds the source next to the checkout it was cloned from.
origin=$(git -C "$repo" config --get remote.origin.url 2>/dev/null || true)
source_dir=${CITUS_SOURCE:-}
for candidate in "$repo/../shared/citus" ${origin:+"$origin/../shared/citus"}; do
  [ -n "$source_dir" ] || [ ! -d "$candidate" ] || source_dir=$candidate
done
source_dir=${source_dir:-$repo/../shared/citus}
PG_MAJOR=${PG_MAJOR:-15}
pg_config=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
shopt -s nullglob
archives=("$source_dir"/citus-*.tar.gz)
if [ ${#archives[@]} -ne 1 ]; then
  echo "citus: no Citus source (one citus-<version>.tar.gz) in $source_dir; set CITUS_SOURCE to provide one" >&2
  exit 3
fi
patches=("$source_dir"/*.patch)
digest=$(cat "${archives[0]}" "${patches[@]}" | sha256sum | cut -c1-12)
cache=${CITUS_CACHE:-/var/cache/inventory_ext/citus-$digest}
if [ ! -f "$cache/stamp" ]; then
  rm -rf "$cache"; mkdir -p "$cache/src"
  echo "citus: building $(basename "${archives[0]}" .tar.gz) into $cache (about 70 s; log: $cache/build.log)" >&2
  {
    tar -xzf "${archives[0]}" -C "$cache/src" --strip-components=1
    for p in "${patches[@]}"; do (cd "$cache/src" && patch -p1 <"$p"); done
    (cd "$cache/src" && ./configure --without-libcurl PG_CONFIG="$pg_config" && make -j2 && make install DESTDIR="$cache/stage")
  } >"$cache/build.log" 2>&1 || { tail -30 "$cache/build.log" >&2; echo "citus: the build failed" >&2; exit 1; }
  touch "$cache/stamp"
fi
echo "$cache/stage"
