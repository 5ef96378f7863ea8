#!/usr/bin/env bash
# Every test layer, from a fresh machine: installs what is missing, then runs
#   unit      #[pg_test] units (cargo pgrx test, in a cluster of pgrx's own, as the postgres user)
#   contract  the pg_regress suite (tests/pg_regress), against scratch clusters
#   isolation the concurrency specs (tests/isolation), with PGXS's pg_isolation_regress
#   security  pgTAP (tests/pgtap: cross-tenant attacks as an application role and as a table owner, the
#             hardened context, catalog checks, bad input), the Rust fuzzers, PgBouncer, sqlsmith (tests/security)
#   e2e       end-to-end scripts (tests/e2e/*.sh), each starting and stopping its own clusters
#   assert    unit, contract and isolation again, against PostgreSQL 15 built with --enable-cassert
#             --enable-debug (scripts/cassert_pg.sh: built once, about 7 minutes, cached outside the repo)
# Every layer runs even when an earlier one failed; the exit status is non-zero if any failed.
# Run one layer with: scripts/test.sh unit|contract|isolation|security|e2e|assert
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1

layers=("$@")
[ ${#layers[@]} -gt 0 ] || layers=(unit contract isolation security e2e assert)
passed=0 failed=0 failures=()

tests_passed=0 tests_failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Adds a layer's test counts to the totals, read from its own output: cargo test's "test result" lines,
# pg_regress's "... ok" / "... FAILED" lines, or one test for a script without either.
count_tests() {  # ok, output file
  local ok=$1 file=$2 p f
  read -r p f < <(awk '/^test result:/ { for (i = 2; i <= NF; i++) {
      if ($i == "passed;") p += $(i - 1); if ($i == "failed;") f += $(i - 1) } ; seen = 1 }
    END { if (seen) print p + 0, f + 0; else print "", "" }' "$file")
  if [ -z "$p" ] && grep -qE '^Files=[0-9]+, Tests=[0-9]+' "$file"; then  # pg_prove
    f=$(grep -cE '^# Failed test' "$file")
    p=$(( $(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+).*/\1/p' "$file" | tail -1) - f ))
  elif [ -z "$p" ]; then  # pg_regress
    p=$(grep -cE '\.\.\. ok ' "$file"); f=$(grep -cE '\.\.\. FAILED' "$file")
  fi
  if [ "$p" = 0 ] && [ "$f" = 0 ]; then
    if [ "$ok" = 1 ]; then p=1; else f=1; fi
  fi
  [ "$ok" = 1 ] || [ "$f" -gt 0 ] || f=1
  tests_passed=$((tests_passed + p)); tests_failed=$((tests_failed + f))
}

run() {  # name, command...
  local name=$1; shift
  echo "=== $name"
  local start=$SECONDS ok=1
  "$@" 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || ok=0
  count_tests $ok "$log"
  if [ $ok = 1 ]; then
    passed=$((passed + 1)); echo "--- ok: $name ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "--- FAILED: $name ($((SECONDS - start)) s)"
  fi
}

# cargo pgrx test in a cluster of pgrx's own, as the postgres user; an argument filters the tests by name.
pgrx_tests() {
  local d; d=$(mktemp -d)
  chown postgres "$d"
  cargo pgrx test pg15 "$@" --runas postgres --pgdata "$d/pgdata"
  local rc=$?
  rm -rf "$d"
  return $rc
}

# The assert layer runs a step in this environment (a subshell: nothing leaks into other layers):
# scripts/cassert_pg.sh's exports (the server's binaries, pg_regress, pg_isolation_regress, pg_config for
# scripts/install.sh, a PGRX_HOME and a cargo target directory of its own) and clusters from port 54420
# on (CASSERT_BASE_PORT). The step's output and its servers' logs stay in <cache>/logs/STEP until the
# next run; afterwards it prints their TRAP lines (a failed assertion) and the crashes they caused.
cassert_env=
with_cassert() (  # step, command...
  step=$1; shift
  eval "$cassert_env"
  export HARNESS_BASE_PORT=${CASSERT_BASE_PORT:-54420} HARNESS_LOG_DIR=$CASSERT_CACHE/logs/$step
  rm -rf "$HARNESS_LOG_DIR"; mkdir -p "$HARNESS_LOG_DIR"
  "$@" 2>&1 | tee "$HARNESS_LOG_DIR/output.log"
  rc=${PIPESTATUS[0]}
  if grep -qE '^TRAP:|terminated by signal' "$HARNESS_LOG_DIR"/*.log; then
    echo "assert: TRAP lines and crashes in $HARNESS_LOG_DIR:"
    grep -hoE '(TRAP:|[^ ]* ?process .* terminated by signal).*' "$HARNESS_LOG_DIR"/*.log \
      | sed -E 's/PID:? [0-9]+/PID n/' | sort | uniq -c
  fi
  exit "$rc"
)

for layer in "${layers[@]}"; do
  case $layer in
    unit) run "unit: #[pg_test]" pgrx_tests ;;
    contract)
      # pgrx test installs its own test build of the library; install the real one for the SQL layers.
      scripts/install.sh || exit 1
      run "contract: pg_regress" tests/pg_regress/run.sh ;;
    isolation)
      scripts/install.sh || exit 1
      run "isolation: pg_isolation_regress" tests/isolation/run.sh ;;
    security)
      # docs/SECURITY.md: the whole security suite, re-runnable alone with `scripts/test.sh security`.
      scripts/install.sh || exit 1
      run "security: pgTAP" tests/pgtap/run.sh
      run "security: fuzz (src/fuzz_tests.rs)" pgrx_tests fuzz
      for t in tests/security/*.sh; do run "security: $(basename "$t" .sh)" "$t"; done ;;
    e2e)
      scripts/install.sh || exit 1
      for t in tests/e2e/*.sh; do run "e2e: $(basename "$t" .sh)" "$t"; done ;;
    assert)
      # A failed build counts as one failed test and skips the layer's tests (its output says why).
      start=$SECONDS
      if ! cassert_env=$(scripts/cassert_pg.sh --env); then
        run "assert: build PostgreSQL with assertions" false; continue
      fi
      echo "assert: PostgreSQL with assertions ready ($((SECONDS - start)) s)"
      start=$SECONDS
      if ! with_cassert install scripts/install.sh; then run "assert: build inventory_ext" false; continue; fi
      echo "assert: inventory_ext built against it ($((SECONDS - start)) s)"
      run "assert: unit: #[pg_test]" with_cassert unit pgrx_tests
      # As in the contract layer: the real library after pgrx test's test build.
      with_cassert install scripts/install.sh || { run "assert: build inventory_ext" false; continue; }
      run "assert: contract: pg_regress" with_cassert contract tests/pg_regress/run.sh
      run "assert: isolation: pg_isolation_regress" with_cassert isolation tests/isolation/run.sh ;;
    *) echo "unknown layer: $layer (unit, contract, isolation, security, e2e, assert)"; exit 2 ;;
  esac
done

echo
[ $failed -eq 0 ] || printf 'failed: %s\n' "${failures[@]}"
echo "layers: $passed passed, $failed failed"
echo "tests: $tests_passed passed, $tests_failed failed"
[ $failed -eq 0 ]
