"""The generated attack classes of ``tests/policy/test_attack_grammar.py``, run longer.

Runs the same tests with many more examples per path and attack class, collecting every
finding instead of stopping at the first failing test, and prints a summary: per path and
class, how many queries were answered (equal to the oracle, compared loosely, truncated),
refused (by code) and how many were findings (mismatches or leaks), then the findings.

    python scripts/attack_nightly.py --examples 2000 --seed 7 --paths duckdb,sqlite
    python scripts/attack_nightly.py --paths postgres,mysql   # needs the servers

Exit status: 0 when no finding, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = ("duckdb", "sqlite", "postgres", "mysql")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=1000,
                    help="examples per path and attack class (default 1000)")
    ap.add_argument("--seed", type=int, default=0,
                    help="Hypothesis seed; 0 = the suite's fixed derandomised run")
    ap.add_argument("--paths", default=",".join(PATHS),
                    help=f"comma-separated execution paths (default {','.join(PATHS)})")
    ap.add_argument("--shrink", action="store_true",
                    help="stop at the first finding of each test and shrink it")
    ap.add_argument("--show", type=int, default=20, help="findings to print (default 20)")
    args = ap.parse_args(argv)
    paths = [p for p in args.paths.split(",") if p]
    unknown = set(paths) - set(PATHS)
    if unknown:
        ap.error(f"unknown paths {sorted(unknown)}; choose from {PATHS}")
    with tempfile.TemporaryDirectory(prefix="zs-attacks-") as tmp:
        summary = Path(tmp) / "summary.jsonl"
        env = {**os.environ, "ZS_ATTACK_EXAMPLES": str(args.examples),
               "ZS_ATTACK_SEED": str(args.seed), "ZS_ATTACK_PATHS": ",".join(paths),
               "ZS_ATTACK_SUMMARY": str(summary), "ZS_ATTACK_SHRINK": "1" if args.shrink else "0",
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        selected = "not every_allowed_function and not writes_every and not pseudonyms_have"
        if not {"postgres", "mysql"} & set(paths):
            selected += " and not servers"
        # --runxfail: the known holes are findings to count here, not expected failures
        cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests/policy/test_attack_grammar.py"),
               "-q", "-p", "no:cacheprovider", "--runxfail", "-k", selected]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        records = [json.loads(line) for line in summary.read_text(encoding="utf-8")
                   .splitlines()] if summary.exists() else []
    if not records:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        return 2
    totals: dict[str, int] = defaultdict(int)
    print(f"{'path':9} {'class':8} {'queries':>7} {'answered':>8} {'equal':>6} {'loose':>6} "
          f"{'refused':>7} {'findings':>8} {'s':>5}  refusals by code")
    findings = []
    for r in records:
        s = r["stats"]
        codes = ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in sorted(s.items())
                          if k.startswith("refused:"))
        print(f"{r['path']:9} {r['mode']:8} {s.get('examples', 0):7} {s.get('answered', 0):8} "
              f"{s.get('equal', 0):6} {s.get('loose', 0):6} {s.get('refused', 0):7} "
              f"{len(r['findings']):8} {s.get('seconds', 0):5}  {codes}")
        for k in ("examples", "answered", "refused"):
            totals[k] += s.get(k, 0)
        totals["findings"] += len(r["findings"])
        findings += r["findings"]
    print(f"\ntotal: {totals['examples']} queries, {totals['answered']} answered, "
          f"{totals['refused']} refused, {totals['findings']} findings")
    for f in findings[:args.show]:
        print(f"\n[{f['path']}] {f['caller']} / {f['purpose']}: {f['what']}\n    {f['sql']}")
    return 1 if totals["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
