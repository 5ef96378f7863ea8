#!/usr/bin/env bash
# Builds the Debian package of inventory_ext for Debian's PostgreSQL 15 and prints the .deb's path (only
# that, on stdout; progress goes to stderr):
#
#   scripts/package.sh            this checkout
#   scripts/package.sh 0.1.0      a release from git history (scripts/build_release.sh: built once, cached)
#
# The package, postgresql-15-inventory-ext_<version>_amd64.deb, holds cargo pgrx package's files where
# Debian's own PostgreSQL extension packages put theirs: /usr/lib/postgresql/15/lib/inventory_ext.so and
# /usr/share/postgresql/15/extension/inventory_ext.control, inventory_ext--<version>.sql and the upgrade
# scripts inventory_ext--A--B.sql of sql/. It depends on postgresql-15 (and the C libraries the library
# links, as dpkg-shlibdeps finds them) and recommends postgresql-15-cron. Install it with
# `apt-get install ./<file>.deb`; docs/INSTALL.md says what else a DBA does.
#
# RELEASE_PROFILE: release (the default: what users get) or dev (a debug build, much quicker to make from a
# cold cache; tests/e2e/package.sh uses it, and the package's description says it is one). The .deb goes to
# PACKAGE_OUT_DIR (default target/packages/<profile>/). DEBFULLNAME and DEBEMAIL name the maintainer.
set -euo pipefail
cd "$(dirname "$0")/.."
export RELEASE_PROFILE=${RELEASE_PROFILE:-release}
command -v dpkg-shlibdeps >/dev/null || { echo "package: dpkg-shlibdeps is missing: apt-get install dpkg-dev" >&2; exit 1; }

name=postgresql-15-inventory-ext
echo "package: building inventory_ext ${1:-current} ($RELEASE_PROFILE profile)" >&2
files=$(scripts/build_release.sh "${1:-current}")
control=$files/usr/share/postgresql/15/extension/inventory_ext.control
version=$(sed -nE "s/^default_version *= *'([^']+)'.*/\1/p" "$control")
[ -n "$version" ] || { echo "package: no default_version in $control" >&2; exit 1; }
# A pre-release such as 0.3.0-dev sorts before 0.3.0 in Debian's order only with a tilde.
deb_version=${version//-/\~}
arch=$(dpkg --print-architecture)
out_dir=${PACKAGE_OUT_DIR:-$PWD/target/packages/$RELEASE_PROFILE}
deb=$out_dir/${name}_${deb_version}_$arch.deb

# dpkg-shlibdeps wants the Debian source layout: debian/control, and the files under debian/<package>/.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/debian/$name
mkdir -p "$root/DEBIAN" "$root/usr/share/doc/$name"
touch "$stage/debian/control"
cp -r "$files/usr" "$root/"
# As Debian's dh_strip does: no debugging information (a debug build's is 50 MB), nothing the dynamic
# linker does not need; the functions PostgreSQL looks up stay.
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
  "$root/usr/lib/postgresql/15/lib/inventory_ext.so"
cat >"$root/usr/share/doc/$name/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: inventory_ext

Files: *
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
# Debian's modes: directories 755, files 644 (shared libraries too, as PostgreSQL's own modules).
find "$root" -type d -exec chmod 755 {} +
find "$root" -type f -exec chmod 644 {} +

libs=$(cd "$stage" && dpkg-shlibdeps -O -e "debian/$name/usr/lib/postgresql/15/lib/inventory_ext.so" 2>/dev/null \
  | sed -n 's/^shlibs:Depends=//p')
[ -n "$libs" ] || { echo "package: dpkg-shlibdeps found no dependencies of inventory_ext.so" >&2; exit 1; }
profile_note=
[ "$RELEASE_PROFILE" = release ] \
  || profile_note=$'\n .\n This is a debug build (RELEASE_PROFILE=dev), made for tests: not for production.'
cat >"$root/DEBIAN/control" <<EOF
Package: $name
Version: $deb_version
Architecture: $arch
Maintainer: ${DEBFULLNAME:-inventory_ext maintainers} <${DEBEMAIL:-inventory-ext@localhost}>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: postgresql-15, $libs
Recommends: postgresql-15-cron
Section: database
Priority: optional
Description: multi-tenant isolation and inventory balances inside PostgreSQL 15
 inventory_ext (CREATE EXTENSION inventory_ext) keeps tenants apart with
 row-level security driven by a per-transaction tenant setting, and keeps
 inventory balances exact with triggers on an append-only ledger, with
 reconciliation (schedulable with pg_cron), tenant export/import and a
 hardened tenant context (shared_preload_libraries).$profile_note
EOF
(cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

mkdir -p "$out_dir"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "package: $(basename "$deb") ($(du -h "$deb" | cut -f1))" >&2
echo "$deb"
