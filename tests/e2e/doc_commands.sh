#!/usr/bin/env bash
# The operators' pages promise that their shell commands are the ones the end-to-end tests run. This
# holds them to it: every command of a ```sh block in docs/BACKUP_RECOVERY.md, docs/DISASTER_RECOVERY.md,
# docs/INSTALL.md and the README's "Install into an existing PostgreSQL" (continuation lines joined,
# heredoc lines included, a trailing " # comment" left out) must appear in a script of tests/e2e/ as a
# line of its own — exactly, or followed only by where its output goes or what runs when it fails
# (" >…", " 2>…", " |…", " ||…") — and every setting of an ```ini block must be set in tests/e2e/pitr.sh.
# Each command and setting is one test, with a TAP line: "ok N - PAGE: command" or "not ok …".
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

def blocks(path, lang, section=None):
    text = open(path, encoding="utf-8").read()
    if section:  # only the blocks under this "## " heading
        text = re.search(r"^## " + re.escape(section) + r"\n(.*?)(?=^## |\Z)", text, re.S | re.M).group(1)
    return re.findall(r"^```" + lang + r"\n(.*?)^```", text, re.S | re.M)

def uncommented(command):
    return re.sub(r"\s+#\s.*$", "", command)

def run_by_a_test(command):
    return command in tested or any(line.startswith(command + suffix) for line in tested
                                    for suffix in (" >", " 2>", " |"))

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

pages = [("docs/BACKUP_RECOVERY.md", None), ("docs/DISASTER_RECOVERY.md", None), ("docs/INSTALL.md", None),
         ("README.md", "Install into an existing PostgreSQL")]
for page, section in pages:
    path = f"{repo}/{page}"
    for block in blocks(path, "sh", section):
        for command in logical_lines(block):
            command = uncommented(command)
            if command and not command.startswith("#"):
                check(run_by_a_test(command), f"{page}: {command}")
    for block in blocks(path, "ini", section):
        for setting in logical_lines(block):
            name = setting.split("=")[0].strip()
            if name:
                check(re.search(r"\b" + re.escape(name) + r" = ", pitr), f"{page}: setting {name} (in tests/e2e/pitr.sh)")
for m in missing:
    print(f"doc_commands: not run (a setting: not set) by any test: {m}")
print(f"doc_commands: {count} commands and settings checked, {len(missing)} not run by a test")
sys.exit(1 if missing else 0)
PY
