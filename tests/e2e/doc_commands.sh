#!/usr/bin/env bash
# The operators' recovery pages promise that their shell commands are the ones the end-to-end tests
# run. This holds them to it: every command of a ```sh block in docs/BACKUP_RECOVERY.md and
# docs/DISASTER_RECOVERY.md (continuation lines joined, heredoc lines included) must appear, exactly,
# in a script of tests/e2e/, and every setting of an ```ini block must be set in tests/e2e/pitr.sh.
# Each command and setting is one test, with a TAP line: "ok N - PAGE.md: command" or "not ok …".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
python3 - "$repo" <<'PY'
import glob, os, re, sys
repo = sys.argv[1]

def logical_lines(text):
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending += line[:-1].strip() + " "
            continue
        out.append((pending + line).strip())
        pending = ""
    return out

def blocks(path, lang):
    text = open(path, encoding="utf-8").read()
    return re.findall(r"^```" + lang + r"\n(.*?)^```", text, re.S | re.M)

scripts = {p: set(logical_lines(open(p, encoding="utf-8").read())) for p in glob.glob(f"{repo}/tests/e2e/*.sh")}
tested = set().union(*scripts.values())
pitr = open(f"{repo}/tests/e2e/pitr.sh", encoding="utf-8").read()
missing, count = [], 0

def check(ok, what):
    global count
    count += 1
    print(f"{'ok' if ok else 'not ok'} {count} - {what}")
    if not ok:
        missing.append(what)

for page in ("BACKUP_RECOVERY", "DISASTER_RECOVERY"):
    path = f"{repo}/docs/{page}.md"
    for block in blocks(path, "sh"):
        for command in logical_lines(block):
            if command and not command.startswith("#"):
                check(command in tested, f"{page}.md: {command}")
    for block in blocks(path, "ini"):
        for setting in logical_lines(block):
            name = setting.split("=")[0].strip()
            if name:
                check(re.search(r"\b" + re.escape(name) + r" = ", pitr), f"{page}.md: setting {name} (in tests/e2e/pitr.sh)")
for m in missing:
    print(f"doc_commands: not run (a setting: not set) by any test: {m}")
print(f"doc_commands: {count} commands and settings checked, {len(missing)} not run by a test")
sys.exit(1 if missing else 0)
PY
