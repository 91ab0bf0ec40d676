"""What tuning buys: one model compiled untuned (analytic defaults, no book) and with each given
log, timed interleaved in one process.

    python scripts/tuning_gain.py resnet18 tuning_logs/resnet18-x86-avx512.jsonl [more logs...]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

import zoo  # noqa: E402

from tvmconv import records  # noqa: E402
from tvmconv.bench import interleaved  # noqa: E402
from tvmconv.build import compile_model  # noqa: E402
from tvmconv.measure import workloads  # noqa: E402
from tvmconv.target import resolve  # noqa: E402


def kernel_estimate(path: str, log: str, target) -> float:
    """Sum over the model's kernels of (best measured time x occurrences), in ms."""
    best = records.best([log], target.key)
    total = 0.0
    for wl, count in workloads(path, target):
        rec = best.get(wl.key)
        if rec is not None and math.isfinite(records.cost(rec)):
            total += records.cost(rec) * count
    return total * 1e3


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("logs", nargs="+")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--target", default="x86", help="x86 (this CPU), x86-avx2 or x86-avx512")
    args = p.parse_args()
    path = str(zoo.model_path(args.model))
    target = resolve(args.target)
    models = {"untuned": compile_model(path, target, book=False).model()}
    for log in args.logs:
        models[Path(log).stem] = compile_model(path, target, log=log, book=False).model()
    feeds = models["untuned"].random_inputs()
    times = interleaved({k: (lambda f, m=m: m.run(f)) for k, m in models.items()}, feeds,
                        args.rounds, 10)
    base = float(np.median(times["untuned"]))
    logs = dict(zip(list(models)[1:], args.logs))
    for name, t in times.items():
        med = float(np.median(t))
        est = (f", kernels {kernel_estimate(path, logs[name], target):.3f} ms"
               if name in logs else "")
        print(f"{name:40s} {med * 1e3:8.3f} ms  speed-up over untuned {base / med:.2f}x{est}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
