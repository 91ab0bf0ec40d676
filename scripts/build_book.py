"""Turn tuning logs into the shipped schedule book: the best record per workload and target key.

    python scripts/build_book.py [tuning_logs/*.jsonl] [--out schedules]

Writes schedules/<target-key>.jsonl, which tvmconv.compile uses when the user gives no log of their
own, so an untuned compile of a known layer shape is already as fast as a tuned one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tvmconv import records  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("logs", nargs="*", help="tuning logs (default: tuning_logs/*.jsonl)")
    p.add_argument("--out", default=str(ROOT / "schedules"), help="book folder")
    args = p.parse_args()
    logs = args.logs or sorted(str(x) for x in (ROOT / "tuning_logs").glob("*.jsonl"))
    by_target = records.best_by_target(logs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for target in sorted(by_target):
        best = by_target[target]
        rows = [best[k] for k in sorted(best)]
        path = out / f"{target}.jsonl"
        path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        print(f"{path}: {len(rows)} workloads from {len(logs)} logs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
