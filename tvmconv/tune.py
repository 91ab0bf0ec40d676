"""python -m tvmconv.tune model.onnx --target x86 [--log L] [--budget 10m | --trials N] [--rpc H:P]
[--in-network]
"""

from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path

from . import cli
from .errors import TvmconvError
from .target import TARGET_NAMES


def parse_budget(text: str) -> float:
    """'600', '600s', '10m', '1.5h' -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m:
        raise TvmconvError(f"--budget {text!r}: expected seconds or a number with s, m or h")
    if float(m.group(1)) <= 0:
        raise TvmconvError(f"--budget {text!r}: must be positive")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def parse_rpc(text: str | None, key: str | None):
    """--rpc HOST:PORT -> (host, port, key), or None without --rpc."""
    if text is None:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise TvmconvError(f"--rpc {text!r}: expected HOST:PORT with a port from 1 to 65535")
    return (host, int(port), key)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tvmconv.tune",
        description="Tune a model's kernels on the real device; every measurement is appended to "
                    "a JSON-lines log that compile --log uses. An interrupted run resumes from it.")
    p.add_argument("model", help="the ONNX model file")
    p.add_argument("--target", default="x86", help=f"{', '.join(TARGET_NAMES)} or a TVM JSON dict")
    p.add_argument("--log", help="tuning log to append to (default: "
                                 "tuning_logs/MODEL-TARGETKEY.jsonl)")
    p.add_argument("--budget", help="wall-clock budget: seconds, or 10m / 1h (default 10m); its "
                   "last 15%% re-times each layer's finalists")
    p.add_argument("--trials", type=int, help="stop after exactly this many measurements instead")
    p.add_argument("--rpc", metavar="HOST:PORT", help="measure on a board running TVM's RPC "
                   "server (or a tracker with --rpc-key)")
    p.add_argument("--rpc-key", help="device key when --rpc names an RPC tracker")
    p.add_argument("--batch", type=int, default=8, help="candidates per round (default 8)")
    p.add_argument("--seed", type=int, default=0, help="search seed (default 0)")
    p.add_argument("--patience", type=int, default=48,
                   help="stop a task after this many trials without improvement (default 48)")
    p.add_argument("--input-shape", action="append", metavar="NAME:D1,D2,...",
                   help="static shape for an input with symbolic dimensions (repeatable)")
    p.add_argument("--in-network", action="store_true",
                   help="then re-time each layer's finalists inside the whole network (built "
                        "once per rank) and keep the fastest there; on this machine, in the "
                        "last 15%% of a budget")
    p.add_argument("--plot", help="draw the tuning curve to this PNG (needs matplotlib)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def summary(tuner) -> str:
    times = f"{'default':>10s} {'best':>10s}"
    lines = [f"{'task':52s} {'n':>2s} {'trials':>6s} {times} {'GFLOP/s':>8s}",
             "(median times over each config's measurements; best: the verdict of the re-timings"
             " where there was one)"]
    for t in tuner.tasks:
        name = t.wl.key.split("{")[0] + " " + "x".join(map(str, t.wl.parts()[-1].params["out"]))
        default = t.median(tuner.default_key(t))
        ranked = t.ranked()
        best = t.median(t.kept) if t.kept else ranked[0][0] if ranked else math.inf
        d, b = (f"{x * 1e3:.3f} ms" if math.isfinite(x) else "-" for x in (default, best))
        lines.append(f"{name[:52]:52s} {t.count:2d} {t.trials:6d} {d:>10s} {b:>10s} "
                     f"{t.gflops(best):8.3g}")
    return "\n".join(lines)


def plot_curve(history, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([h[0] for h in history], [h[1] * 1e3 for h in history])
    ax.set_xlabel("trials")
    ax.set_ylabel("estimated latency of tuned kernels (ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from . import netconfirm, records
    from .measure import workloads
    from .runner import check_rpc
    from .target import resolve
    from .tuner import Tuner, make_tasks

    if args.budget is not None and args.trials is not None:
        raise TvmconvError("give --budget or --trials, not both")
    for flag, value in (("--trials", args.trials), ("--batch", args.batch),
                        ("--patience", args.patience)):
        cli.at_least(1, value, flag)
    budget = parse_budget(args.budget) if args.budget is not None else \
        (None if args.trials else 600.0)
    rpc = parse_rpc(args.rpc, args.rpc_key)
    if args.in_network and rpc is not None:
        raise TvmconvError("--in-network times the whole network on this machine; it does not "
                           "go with --rpc")
    target = resolve(args.target)
    target.export_kwargs()  # candidates for a board need its cross compiler
    if rpc is None and not target.runs_here:
        raise TvmconvError(f"{target.key} code cannot run on this machine: measure it on the "
                           "device with --rpc HOST:PORT")
    log = cli.output_path(args.log or Path("tuning_logs") /
                          f"{Path(args.model).stem}-{target.key}.jsonl", "--log",
                          {args.model: "the model"})
    records.check(log)
    if args.plot:
        cli.check_plot(args.plot)
    if rpc:
        check_rpc(rpc)
    shapes = cli.parse_shapes(args.input_shape)
    tasks = make_tasks(workloads(args.model, target, shapes), target)
    tuner = Tuner(tasks, target, log, rpc=rpc, seed=args.seed, batch=args.batch,
                  patience=args.patience)
    start = time.time()
    deadline = start + budget if budget else None
    search_until = deadline
    if args.in_network and budget:
        search_until = start + budget * (1 - netconfirm.BUDGET_SHARE)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=args.trials or int(budget), unit="trial" if args.trials else "s",
                   desc=f"tuning {len(tasks)} tasks", dynamic_ncols=True)

    def progress(task, recs):
        if bar is None:
            return
        bar.n = tuner.trials if args.trials else min(int(time.time() - start), bar.total)
        best = task.gflops(task.best_seconds)
        bar.set_postfix_str(f"{task.wl.kind} best {best:.3g} GFLOP/s, "
                            f"{sum(r['error'] is not None for r in recs)} failed")
        bar.refresh()

    resumed = tuner.resumed
    try:
        tuner.run(args.trials, search_until, progress)
    except KeyboardInterrupt:
        if bar:
            bar.close()
        print(f"interrupted: {tuner.trials} new measurements saved in {log}")
        raise
    if bar:
        bar.close()
    print(summary(tuner))
    print(f"{tuner.trials} new measurements and {tuner.confirmed} re-timings of finalists "
          f"({resumed} resumed from the log) in {time.time() - start:.0f} s -> {log}")
    if args.in_network:
        netconfirm.confirm(args.model, target, log, shapes, deadline)
    if args.plot:
        plot_curve(tuner.history, args.plot)
    return 0


if __name__ == "__main__":
    cli.run(main)
