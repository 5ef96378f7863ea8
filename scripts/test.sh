#!/usr/bin/env bash
# Every test layer, from a fresh machine: installs what is missing, then runs
#   unit      #[pg_test] units (cargo pgrx test, in a cluster of pgrx's own, as the postgres user)
#   contract  the pg_regress suite (tests/pg_regress), against scratch clusters
#   e2e       end-to-end scripts (tests/e2e/*.sh), each starting and stopping its own clusters
# Every layer runs even when an earlier one failed; the exit status is non-zero if any failed.
# Run one layer with: scripts/test.sh unit|contract|e2e
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1

layers=("$@")
[ ${#layers[@]} -gt 0 ] || layers=(unit contract e2e)
passed=0 failed=0 failures=()

run() {  # name, command...
  local name=$1; shift
  echo "=== $name"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); echo "--- ok: $name ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "--- FAILED: $name ($((SECONDS - start)) s)"
  fi
}

unit_tests() {
  local d; d=$(mktemp -d)
  chown postgres "$d"
  cargo pgrx test pg15 --runas postgres --pgdata "$d/pgdata"
  local rc=$?
  rm -rf "$d"
  return $rc
}

for layer in "${layers[@]}"; do
  case $layer in
    unit) run "unit: #[pg_test]" unit_tests ;;
    contract)
      # pgrx test installs its own test build of the library; install the real one for the SQL layers.
      scripts/install.sh || exit 1
      run "contract: pg_regress" tests/pg_regress/run.sh ;;
    e2e)
      scripts/install.sh || exit 1
      for t in tests/e2e/*.sh; do run "e2e: $(basename "$t" .sh)" "$t"; done ;;
    *) echo "unknown layer: $layer (unit, contract, e2e)"; exit 2 ;;
  esac
done

echo
[ $failed -eq 0 ] || printf 'failed: %s\n' "${failures[@]}"
echo "test suites: $passed passed, $failed failed"
[ $failed -eq 0 ]
