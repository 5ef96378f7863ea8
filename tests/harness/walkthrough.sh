# The demo walkthrough's output against the reviewed one (tests/e2e/expected/demo.out), for every script
# that runs demo/walkthrough.sql as scripts/demo.sh does. Source this file, then:
#
#   walkthrough_compare OUTPUT NAME   # OUTPUT: a file with the walkthrough's output; NAME prefixes messages
#
# Compares the walkthrough itself, from its first section ("== 1.") up to the line "demo: done" that
# scripts/demo.sh prints after it (or to the end), with what is random masked (ids, API keys and their
# prefixes, ISO timestamps such as an export's) and blank lines at the end left out. Prints the
# difference and returns 1 when they differ.

_walkthrough_part() {
  sed -n '/^== 1\./,$p' "$1" | sed '/^demo: done/,$d' | sed -E \
    -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<uuid>/g' \
    -e 's/inv_[0-9a-f]{64}/<api-key>/g' \
    -e 's/inv_[0-9a-f]{8}…/<key-prefix>…/g' \
    -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?[+-][0-9]{2}(:[0-9]{2})?/<timestamp>/g' \
    | awk '{ line[NR] = $0 } NF { last = NR } END { for (i = 1; i <= last; i++) print line[i] }'
}

walkthrough_compare() {
  local out=$1 name=$2 expected masked status=0
  expected=$(cd "$(dirname "${BASH_SOURCE[0]}")/../e2e/expected" && pwd)/demo.out
  masked=$(mktemp)
  _walkthrough_part "$out" >"$masked"
  if diff -u --label tests/e2e/expected/demo.out --label "$name: the walkthrough" <(_walkthrough_part "$expected") "$masked"; then
    echo "$name: walkthrough output as expected ($(grep -c '^SQLSTATE' "$masked") expected errors shown)"
  else
    echo "$name: the walkthrough's output differs from tests/e2e/expected/demo.out"
    status=1
  fi
  rm -f "$masked"
  return $status
}
