"""python -m tvmconv.bench model.onnx --target x86 [--log L]: tvmconv against onnxruntime (and
OpenVINO when installed) at the same thread count, interleaved in one process,
plus per-layer tables: each kernel inside the network, and each kernel alone.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np

from . import cli
from .errors import TvmconvError
from .hostinfo import host_key, pool_threads


@dataclass
class Row:
    name: str
    count: int
    seconds: float  # per occurrence
    flops: float | None  # None: a profile of an artefact written before the kernel table

    @property
    def gflops(self) -> float | None:
        return None if self.flops is None else self.flops / self.seconds / 1e9


def sgemm_rate(n: int = 1024, repeat: int = 10) -> float:
    """numpy's (OpenBLAS) fp32 matmul GFLOP/s on this machine right now: the yardstick per layer."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeat))
    return 2.0 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# oneDNN's ISA cap per tvmconv target key: OpenVINO reads it once, at its first compile
PEER_ISA = {"x86-avx2": "AVX2"}


def peers(model_path: str, threads: int, target) -> dict:
    """Callables of the other runtimes that are installed, each taking the input dict; on a GPU,
    onnxruntime's CUDA provider (when this onnxruntime has it) and nothing else.

    AVX2 code timed on an AVX-512 host meets OpenVINO held to AVX2 as well (oneDNN's
    ONEDNN_MAX_CPU_ISA), the peer an AVX2 machine would have; onnxruntime's kernels cannot be
    held back and keep AVX-512."""
    found = {}
    gpu = target.family == "cuda"
    if target.key in PEER_ISA and target.key != host_key():
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", PEER_ISA[target.key])
    try:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        provider = "CUDAExecutionProvider" if gpu else "CPUExecutionProvider"
        if provider in ort.get_available_providers():
            sess = ort.InferenceSession(model_path, opts, providers=[provider])
            found["onnxruntime"] = lambda feeds: sess.run(None, feeds)
    except ImportError:
        pass
    if gpu:
        return found
    try:
        import openvino as ov

        core = ov.Core()
        # fp32 like the others: on CPUs with AVX512-BF16 OpenVINO's default precision is bf16
        compiled = core.compile_model(model_path, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                          "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        found["openvino"] = lambda feeds: request.infer(feeds)
    except ImportError:
        pass
    return found


PAUSE_SECONDS = 0.2  # between turns, for the last runtime's spinning worker threads to stop
WARMUP_SECONDS, WARMUP_CALLS = 0.1, 3  # untimed calls at the start of each turn, at least


def interleaved(runners: dict, feeds: dict, rounds: int, per_round: int) -> dict[str, list]:
    """Median-ready latencies per runner, the runners taking turns so machine noise hits all alike.

    Each turn starts after a pause and untimed calls. The pause: the previous runtime's worker
    threads keep spinning on the cores for a while after its last call (onnxruntime's and
    OpenVINO's by default, TVM's too) and would be charged to the next one; on 2 cores that cost
    tvmconv 25%. The calls fill at least 0.1 s: after the pause the cores take 10-25 ms to get
    back to speed (on a Zen 5 VM, SqueezeNet's first calls took 2.2, 1.7, 1.5 ms, then 1.25
    with tvmconv and 2.6, 2.1, 1.9 then 1.7 with onnxruntime), so three calls of a short
    network timed the ramp, not the runtime."""
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            settle(lambda: fn(feeds))
            for _ in range(per_round):
                times[name].append(_timed(lambda: fn(feeds)))
    return times


def settle(call) -> None:
    """A pause, then untimed calls for at least ``WARMUP_SECONDS``: what each timed turn starts
    with (see ``interleaved``)."""
    time.sleep(PAUSE_SECONDS)
    start, calls = time.perf_counter(), 0
    while calls < WARMUP_CALLS or time.perf_counter() - start < WARMUP_SECONDS:
        call()
        calls += 1


def layer_rows(model_path, target, log=None, book=True, input_shapes=None) -> list[Row]:
    """Each distinct kernel built alone and timed, as the compiled model would run it."""
    from .build import choose, tuned_records
    from .hostinfo import device
    from .measure import build_kernel, random_args, time_kernel, workloads

    tuned = tuned_records(target.key, [log] if log else [], book)
    dev = device(target.key)
    rows = []
    for wl, count in workloads(model_path, target, input_shapes):
        template, cfg = choose(wl, target, tuned)
        lib = build_kernel(wl, target, template, cfg)
        args = random_args(wl, dev, template, cfg)
        secs = float(np.median(time_kernel(lib.mod, args, dev)))
        rows.append(Row(wl.describe(), count, secs, wl.flops()))
    return rows


def network_rows(model, *inputs, runs: int = 20) -> list[Row]:
    """Each kernel timed inside the compiled network (``runtime.Model.profile``): what an
    inference spends on it, its weights streaming in and its input where the last kernel left
    it, rather than warm in the caches as in ``layer_rows``. Settled first (``settle``): profiled
    right after the peers' turns, MobileNetV2's kernels summed to 2.2-3.1 ms, against 1.5 ms
    timed end to end."""
    settle(lambda: model(*inputs))
    return [Row(k.layer, k.calls, k.seconds / k.calls, k.flops)
            for k in model.profile(*inputs, runs=runs)]


def slowest_first(rows: list[Row]) -> list[tuple[Row, float, float]]:
    """(row, seconds per inference over all its occurrences, share of the total), slowest
    first: what every per-layer table and plot shows."""
    total = sum(r.seconds * r.count for r in rows)
    return [(r, r.seconds * r.count, r.seconds * r.count / total)
            for r in sorted(rows, key=lambda r: -r.seconds * r.count)]


def layer_table(rows: list[Row], sgemm: float | None, how: str = "each kernel alone") -> str:
    """Per-layer times, slowest first; with the CPU's sgemm rate (None on a GPU, where it is no
    yardstick) each layer's fraction of it."""
    rate = "" if sgemm is None else f"; sgemm {sgemm:.0f} GFLOP/s measured now"
    lines = [f"\nper layer ({how}{rate}):",
             f"  {'ms':>8} {'share':>6} {'GFLOP/s':>8}" + ("" if sgemm is None else " of sgemm")
             + "  n  layer"]
    for r, seconds, share in slowest_first(rows):
        speed = f"{'-':>8}" if r.gflops is None else f"{r.gflops:8.1f}"
        if sgemm is not None:
            speed += f" {'-':>8}" if r.gflops is None else f" {r.gflops / sgemm:8.1%}"
        lines.append(f"  {seconds * 1e3:8.3f} {share:6.1%} {speed} {r.count:2d}  {r.name}")
    return "\n".join(lines)


def plot(rows: list[Row], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = slowest_first(rows)[:30][::-1]
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(ranked) + 1))
    ax.barh([r.name for r, _, _ in ranked], [seconds * 1e3 for _, seconds, _ in ranked])
    ax.set_xlabel("ms per inference (all occurrences)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tvmconv.bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("--target", default="x86")
    p.add_argument("--log", help="tuning log to compile with")
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    p.add_argument("--per-round", type=int, default=10, help="runs per round (default 10)")
    p.add_argument("--no-book", action="store_true", help="ignore the shipped schedule book")
    p.add_argument("--no-layers", action="store_true", help="skip the per-layer tables")
    p.add_argument("--plot", help="draw the per-layer times to this PNG (needs matplotlib)")
    p.add_argument("--input-shape", action="append", metavar="NAME:D1,D2,...",
                   help="static shape for an input with symbolic dimensions (repeatable)")
    args = p.parse_args(argv)
    cli.at_least(1, args.rounds, "--rounds")
    cli.at_least(1, args.per_round, "--per-round")
    shapes = cli.parse_shapes(args.input_shape)

    from .build import compile_model
    from .target import resolve

    target = resolve(args.target)
    if not target.runs_here:
        raise TvmconvError(f"{target.key} code cannot be timed on this machine")
    if args.plot:
        cli.check_plot(args.plot)
    threads = pool_threads()
    compiled = compile_model(args.model, target=target, log=args.log, input_shapes=shapes,
                             book=not args.no_book)
    model = compiled.model()
    feeds = model.random_inputs()
    runners = {"tvmconv": lambda f: model.run(f), **peers(args.model, threads, compiled.target)}
    times = interleaved(runners, feeds, args.rounds, args.per_round)
    med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA")
    gpu = compiled.target.family == "cuda"  # CPU threads and the CPU's sgemm say nothing there
    print(f"{args.model}: batch {model.inputs[0].shape[0]}"
          + ("" if gpu else f", {threads} threads") + f", {compiled.target.key}"
          + (f"; OpenVINO held to {capped}" if capped else ""))
    best_peer = min((v for k, v in med.items() if k != "tvmconv"), default=None)
    for name, ms in med.items():
        ratio = f"  speed-up vs tvmconv {ms / med['tvmconv']:.2f}x" if name != "tvmconv" else ""
        print(f"  {name:12s} {ms:9.3f} ms{ratio}")
    if best_peer:
        print(f"  tvmconv is {best_peer / med['tvmconv']:.2f}x the best peer")
    if args.no_layers:
        return 0
    sgemm = None if gpu else sgemm_rate()
    if not gpu:  # on a GPU the kernels run as one CUDA graph: no per-call hooks
        print(layer_table(network_rows(model, feeds), sgemm, "inside the network"))
    rows = layer_rows(args.model, compiled.target, args.log, book=not args.no_book,
                      input_shapes=shapes)
    print(layer_table(rows, sgemm))
    if args.plot:
        plot(rows, args.plot)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    cli.run(main)
