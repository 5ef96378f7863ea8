#!/usr/bin/env python3
"""Turns the ```sql blocks of a Markdown page into one psql script that runs them in order.

A block fenced as ```sql must succeed. A block fenced as ```sql fails SQLSTATE must fail, and with that
SQLSTATE. The script stops (psql exits non-zero) at the first block that does otherwise, and says which.

    sql_blocks.py [--tap] PAGE.md [--from HEADING] [--until HEADING]

runs only the blocks after the heading that contains the text given with --from, and before the one
given with --until (an end-to-end test runs a guide in parts, and acts between them). With --tap, each
block that did what the page says prints a TAP line, "ok N - docs/PAGE.md:LINE", which scripts/test.sh
counts as one test.
"""
import os
import re
import sys

FENCE = re.compile(r"^```sql(?:\s+fails\s+([0-9A-Z]{5}))?\s*$")


def blocks(markdown):
    current, expected, start = None, None, 0
    for number, line in enumerate(markdown.splitlines(), 1):
        if current is None:
            match = FENCE.match(line)
            if match:
                current, expected, start = [], match.group(1), number
        elif line.startswith("```"):
            yield start, expected, "\n".join(current)
            current = None
        else:
            current.append(line)
    if current is not None:
        sys.exit(f"unterminated ```sql block at line {start}")


def part(markdown, start, until):
    """The lines between the heading containing `start` and the one containing `until` (blank lines
    stand in for the others, so that line numbers stay those of the page)."""
    lines, keep = markdown.splitlines(), start is None
    out = []
    for line in lines:
        if line.startswith("#") and start is not None and start in line:
            keep = True
        if line.startswith("#") and until is not None and until in line:
            keep = False
        out.append(line if keep else "")
    return "\n".join(out)


def script(path, start=None, until=None, tap=False):
    out = ["\\set ON_ERROR_STOP 1", "\\set VERBOSITY default"]
    count = 0
    page = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
    for line, expected, sql in blocks(part(open(path, encoding="utf-8").read(), start, until)):
        if tap and count > 0:
            out.append(f"\\echo 'ok {count} - {page}:{previous}'")
        count += 1
        previous = line
        where = f"{path}:{line}"
        out.append(f"\\echo '-- block at {where}'")
        if expected is None:
            out.append(sql)
            continue
        # Checked in psql and the shell, not in SQL: the block may leave its transaction aborted for
        # the next block to roll back.
        out += ["\\set ON_ERROR_STOP 0", sql, "\\set ON_ERROR_STOP 1",
                f"\\set doc_block_failed_as_documented `[ \":ERROR:LAST_ERROR_SQLSTATE\" = \"true{expected}\" ] && echo on || echo off`",
                "\\if :doc_block_failed_as_documented",
                f"\\echo 'failed with {expected}, as documented'",
                "\\else",
                f"\\echo 'DOC TEST: the block at {where} should fail with {expected}; got' :LAST_ERROR_SQLSTATE",
                "SELECT doc_test_failed;",
                "\\endif"]
    if count == 0:
        sys.exit(f"{path} has no ```sql blocks")
    if tap:
        out.append(f"\\echo 'ok {count} - {page}:{previous}'")
    out.append(f"\\echo 'doc blocks run: {count}'")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    args = sys.argv[1:]
    tap = "--tap" in args
    if tap:
        args.remove("--tap")
    options = {"--from": None, "--until": None}
    while len(args) > 1 and args[-2] in options:
        options[args[-2]] = args[-1]
        args = args[:-2]
    sys.stdout.write(script(args[0], options["--from"], options["--until"], tap))
