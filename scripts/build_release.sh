#!/usr/bin/env bash
# Builds a released version of inventory_ext from git history, once, and prints the directory holding its
# files in cargo pgrx package's layout (usr/lib/postgresql/15/lib/inventory_ext.so,
# usr/share/postgresql/15/extension/inventory_ext{.control,--*.sql}).
#
#   scripts/build_release.sh 0.1.0       a past release: a git worktree of its commit, built, cached
#   scripts/build_release.sh current     this checkout (never cached: cargo's own build is incremental)
#
# The cache is INVENTORY_RELEASE_CACHE (default /var/cache/inventory_ext/releases)/<version>-<commit>:
# the build happens when its stamp file is missing; delete the directory to rebuild. RELEASE_PROFILE
# chooses cargo's profile: dev (the default: what the tests install) or release (what a package ships).
# The build's output goes to <cache>/build.log (or the checkout's target/) and is printed when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# Released versions and their commits on main. Every release stays buildable from here, so that the
# upgrade test (tests/e2e/upgrade.sh) can start from each.
declare -A RELEASE_COMMIT=(
  [0.1.0]=dc8388d75907a6c6766778021fc590a87abbcb99
)

version=${1:?usage: scripts/build_release.sh VERSION|current}
PG_CONFIG=${INVENTORY_PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
profile=${RELEASE_PROFILE:-dev}
case $profile in
  dev) profile_args=(--debug) ;;
  release) profile_args=() ;;
  *) echo "build_release: RELEASE_PROFILE is dev or release, not $profile" >&2; exit 2 ;;
esac

if [ "$version" = current ]; then
  out=$PWD/target/package-$profile
  log=$PWD/target/package-$profile.log
  mkdir -p target
  rm -rf "$out"
  cargo pgrx package "${profile_args[@]}" --pg-config "$PG_CONFIG" --out-dir "$out" >"$log" 2>&1 \
    || { cat "$log" >&2; exit 1; }
  echo "$out"
  exit 0
fi

commit=${RELEASE_COMMIT[$version]:-}
[ -n "$commit" ] || { echo "build_release: no release $version (known: ${!RELEASE_COMMIT[*]})" >&2; exit 2; }
git cat-file -e "$commit^{commit}" 2>/dev/null \
  || { echo "build_release: commit $commit of $version is not in this clone's history (a shallow clone?)" >&2; exit 1; }

cache=${INVENTORY_RELEASE_CACHE:-/var/cache/inventory_ext/releases}/$version-${commit:0:12}-$profile
out=$cache/files
if [ ! -f "$cache/.built" ]; then
  mkdir -p "$cache"
  chmod 755 "$cache"
  src=$cache/src
  rm -rf "$out" "$src"
  git worktree prune
  git worktree add --quiet --detach "$src" "$commit"
  echo "build_release: building $version ($commit) in $src; log in $cache/build.log" >&2
  if ! (cd "$src" && CARGO_TARGET_DIR=$cache/target \
        cargo pgrx package "${profile_args[@]}" --pg-config "$PG_CONFIG" --out-dir "$out") \
        >"$cache/build.log" 2>&1; then
    git worktree remove --force "$src" || true
    cat "$cache/build.log" >&2
    exit 1
  fi
  git worktree remove --force "$src"
  touch "$cache/.built"
fi
echo "$out"
