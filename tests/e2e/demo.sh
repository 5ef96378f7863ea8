#!/usr/bin/env bash
# End-to-end: the README's demo command, run as written, must succeed and print the walkthrough we
# reviewed (tests/e2e/expected/demo.out), with ids, keys and times masked since they are random.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$(mktemp)
trap 'rm -f "$out" "$out.masked"' EXIT

"$repo/scripts/demo.sh" >"$out" 2>&1 || { cat "$out"; echo "demo: scripts/demo.sh failed"; exit 1; }

# Keep the walkthrough itself (set-up lines differ between a fresh machine and a prepared one).
sed -n '/^== 1\./,/^demo: done/p' "$out" | sed -E \
  -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<uuid>/g' \
  -e 's/inv_[0-9a-f]{64}/<api-key>/g' \
  -e 's/inv_[0-9a-f]{8}…/<key-prefix>…/g' \
  -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?[+-][0-9]{2}(:[0-9]{2})?/<timestamp>/g' >"$out.masked"

if ! diff -u "$here/expected/demo.out" "$out.masked"; then
  echo "demo: the walkthrough's output differs from tests/e2e/expected/demo.out"
  exit 1
fi
echo "demo: walkthrough output as expected ($(grep -c '^SQLSTATE' "$out.masked") expected errors shown)"
