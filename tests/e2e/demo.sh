#!/usr/bin/env bash
# End-to-end: the README's demo command, run as written, must succeed and print the walkthrough we
# reviewed (tests/e2e/expected/demo.out), with ids, keys and times masked since they are random.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT

"$repo/scripts/demo.sh" >"$out" 2>&1 || { cat "$out"; echo "demo: scripts/demo.sh failed"; exit 1; }

# Only the walkthrough itself is compared (set-up lines differ between a fresh machine and a prepared one).
source "$repo/tests/harness/walkthrough.sh"
walkthrough_compare "$out" demo
