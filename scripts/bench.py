"""Benchmark driver: tvmconv (untuned: analytic defaults, no schedule book; tuned: with the model's
log in tuning_logs/ when one exists) against
onnxruntime on the reference models, interleaved in one process; writes BENCHMARKS.md.

    python scripts/bench.py [models...] [--target x86] [--rounds 10] [--out BENCHMARKS.md]

`--target x86-avx2` on an AVX-512 host runs tvmconv's AVX2 code (and the AVX2 schedule book and
logs) against OpenVINO held to AVX2 and onnxruntime, which still uses AVX-512.

Run it alone on an otherwise idle machine (never two benchmarks at once). OpenBLAS's
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE slow numpy's sgemm yardstick: unset both for this command only.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

import zoo  # noqa: E402

import tvmconv  # noqa: E402
from tvmconv.bench import (  # noqa: E402
    interleaved,
    layer_rows,
    network_rows,
    peers,
    sgemm_rate,
    slowest_first,
)
from tvmconv.build import compile_model  # noqa: E402
from tvmconv.target import resolve  # noqa: E402

DEFAULT_MODELS = list(zoo.MODELS)  # every reference model


def machine(target) -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import onnxruntime
    import tvm

    try:
        import openvino

        ov = f", OpenVINO {openvino.__version__.split('-')[0]}"
        if os.environ.get("ONEDNN_MAX_CPU_ISA"):
            ov += f" held to {os.environ['ONEDNN_MAX_CPU_ISA']} (ONEDNN_MAX_CPU_ISA)"
    except ImportError:
        ov = ""
    return (f"{cpu}, {os.environ['TVM_NUM_THREADS']} threads, target {target.key}, "
            f"{platform.system()} {platform.machine()}; tvmconv {tvmconv.__version__}, "
            f"TVM {tvm.__version__}, onnxruntime {onnxruntime.__version__}{ov}, "
            f"numpy {np.__version__}")


def layer_lines(title: str, rows, rate: float, most: int = 20) -> list[str]:
    """A markdown section: the ``most`` slowest layers, with their share and rate."""
    lines = [f"\n## {title}\n", "| ms | share | GFLOP/s | of sgemm | n | layer |",
             "|---|---|---|---|---|---|"]
    for r, seconds, share in slowest_first(rows)[:most]:
        lines.append(f"| {seconds * 1e3:.3f} | {share:.1%} | {r.gflops:.0f} | "
                     f"{r.gflops / rate:.0%} | {r.count} | {r.name} |")
    return lines


def bench_model(name: str, target, rounds: int, size=None) -> dict:
    path = str(zoo.model_path(name, size=size))
    t0 = time.perf_counter()
    untuned = compile_model(path, target, book=False).model()  # what a model nobody tuned gets
    compile_s = time.perf_counter() - t0
    log = ROOT.parent / "tuning_logs" / f"{name}-{target.key}.jsonl"
    runners = {"tvmconv": lambda f: untuned.run(f)}
    if log.is_file():
        tuned = compile_model(path, target, log=str(log)).model()
        runners["tvmconv tuned"] = lambda f: tuned.run(f)
    runners.update(peers(path, int(os.environ["TVM_NUM_THREADS"]), target))
    feeds = untuned.random_inputs()
    per_round = 20 if name == "lenet5" else 5
    times = interleaved(runners, feeds, rounds, per_round)
    return {"compile_s": compile_s,
            "ms": {k: float(np.median(v)) * 1e3 for k, v in times.items()}}


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 197x233, got {text!r}") from None
    return h, w


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=DEFAULT_MODELS)
    p.add_argument("--target", default="x86", help="x86 (this CPU), x86-avx2 or x86-avx512")
    p.add_argument("--size", type=_size, help="image size HxW instead of each model's own "
                   "(odd sizes: 197x233); tuning logs are for the usual sizes")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--layers", default="resnet18", help="model for the per-layer table")
    p.add_argument("--out", default=str(ROOT.parent / "BENCHMARKS.md"))
    args = p.parse_args()
    target = resolve(args.target)
    rate = sgemm_rate()
    rows = []
    for name in args.models:
        r = bench_model(name, target, args.rounds, args.size)
        rows.append((name, r))
        print(name, {k: round(v, 3) for k, v in r["ms"].items()}, flush=True)
    size_note = f", images {args.size[0]}x{args.size[1]}" if args.size else ""
    lines = [f"# Benchmarks\n\nMeasured {datetime.date.today()} with `python scripts/bench.py` on "
             f"{machine(target)}{size_note}. Batch 1, fp32, median latency of interleaved runs; "
             f"numpy sgemm {rate:.0f} GFLOP/s in the same run.\n",
             "| model | tvmconv untuned ms | tvmconv tuned ms | onnxruntime ms | openvino ms | "
             "untuned / best peer | tuned / best peer | compile s |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        ms = r["ms"]
        peer = min(v for k, v in ms.items() if not k.startswith("tvmconv"))
        tuned = ms.get("tvmconv tuned")
        lines.append(f"| {name} | {ms['tvmconv']:.3f} | "
                     f"{'-' if tuned is None else f'{tuned:.3f}'} | "
                     f"{ms.get('onnxruntime', float('nan')):.3f} | "
                     f"{ms.get('openvino', float('nan')):.3f} | {peer / ms['tvmconv']:.2f}x | "
                     f"{'-' if tuned is None else f'{peer / tuned:.2f}x'} | "
                     f"{r['compile_s']:.1f} |")
    lines.append("\nRatios are the best peer's latency / tvmconv's: above 1.00x tvmconv is faster. "
                 "Untuned = analytic defaults without the schedule book (what a model nobody tuned "
                 "gets); tuned = compiled with the model's log in tuning_logs/. Every runtime uses "
                 "the same thread count and fp32 (OpenVINO's bf16 default is overridden).")
    if args.layers:
        path = str(zoo.model_path(args.layers, size=args.size))
        log = ROOT.parent / "tuning_logs" / f"{args.layers}-{target.key}.jsonl"
        log = str(log) if log.is_file() else None
        model = compile_model(path, target, log=log, book=False).model()
        for how, layer in [("inside the network, each call with the profiling hooks' few "
                            "microseconds", network_rows(model, model.random_inputs())),
                           ("each kernel timed alone", layer_rows(path, target, log, book=False))]:
            lines += layer_lines(f"{args.layers}, per layer (tuned with its log when there is "
                                 f"one; {how})", layer, rate)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
