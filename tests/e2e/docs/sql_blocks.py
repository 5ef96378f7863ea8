#!/usr/bin/env python3
"""Turns the ```sql blocks of a Markdown page into one psql script that runs them in order.

A block fenced as ```sql must succeed. A block fenced as ```sql fails SQLSTATE must fail, and with that
SQLSTATE. The script stops (psql exits non-zero) at the first block that does otherwise, and says which.
"""
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


def script(path):
    out = ["\\set ON_ERROR_STOP 1", "\\set VERBOSITY default"]
    count = 0
    for line, expected, sql in blocks(open(path, encoding="utf-8").read()):
        count += 1
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
    out.append(f"\\echo 'doc blocks run: {count}'")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(script(sys.argv[1]))
