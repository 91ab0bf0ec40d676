"""tvmconv on this machine's NVIDIA GPU against PyTorch running the same network with the same
weights, for BENCHMARKS.md.

    python scripts/gpu_bench.py [MODEL ...] [--log-dir DIR] [--out results.md]

Each reference model (``zoo.py``) is compiled for this GPU's architecture and run beside
``zoo.build(name)`` on the GPU in fp32 (TF32 off, as in tvmconv's kernels), in two forms: eager
(cuDNN, its algorithm search on) and replayed from a CUDA graph, which leaves only the kernels'
own time. onnxruntime's CUDA provider joins when this onnxruntime has it. Turns alternate so
clock changes hit all alike; the table gives medians and each output's error against PyTorch's.
With ``--log-dir``, ``DIR/<model>-<target key>.jsonl`` (when it exists) is compiled in as well,
as a second tvmconv row.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

GOAL_MODELS = ["resnet18", "resnet50", "mobilenet_v2", "squeezenet", "vgg", "lenet5"]


def _per_call(fn):
    """``fn`` (which waits for the GPU) as a runner: ``n`` timed calls after three warm-ups."""
    def run(n: int) -> list[float]:
        for _ in range(3):
            fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return times
    return run


def torch_runners(name: str, x: np.ndarray) -> tuple[dict, np.ndarray]:
    """PyTorch eager and CUDA-graph runners of the zoo model, and its output."""
    import torch
    import zoo

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    net = zoo.build(name).cuda()
    xin = torch.from_numpy(x).cuda()
    with torch.no_grad():
        for _ in range(3):  # cuDNN's algorithm search, outside the timing
            ref = net(xin)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            net(xin)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            net(xin)

    def eager():
        with torch.no_grad():
            net(xin)
        torch.cuda.synchronize()

    def replay():
        graph.replay()
        torch.cuda.synchronize()

    runners = {"PyTorch eager": _per_call(eager), "PyTorch CUDA graph": _per_call(replay)}
    return runners, ref.cpu().numpy()


def tvmconv_runner(path: Path, target: str, x: np.ndarray, log: Path | None):
    """The compiled model as a runner (input already on the GPU) and its output."""
    import tvmconv

    model = tvmconv.compile(str(path), target=target, log=str(log) if log else None).model()
    out = model.run({model.inputs[0].name: x})[0]
    return (lambda n: model.benchmark(x, repeat=n, warmup=3)), out


def ort_runner(path: Path, x: np.ndarray):
    """onnxruntime's CUDA provider as a runner, when this onnxruntime has it."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return None
    sess = ort.InferenceSession(str(path), providers=["CUDAExecutionProvider"])
    return _per_call(lambda: sess.run(None, {"input": x}))


def timed(runners: dict, rounds: int, per_round: int) -> dict[str, float]:
    """Median ms per runner, the runners taking turns."""
    times = {k: [] for k in runners}
    for _ in range(rounds):
        for k, run in runners.items():
            times[k].extend(run(per_round))
    return {k: float(np.median(v)) * 1e3 for k, v in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=GOAL_MODELS)
    p.add_argument("--log-dir", type=Path, help="tuning logs named <model>-<target key>.jsonl")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--per-round", type=int, default=20)
    p.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = p.parse_args(argv)

    import torch
    import zoo

    from tvmconv import relative_error
    from tvmconv.errors import TargetError
    from tvmconv.hostinfo import cuda_arch

    arch = cuda_arch()
    if arch is None or not torch.cuda.is_available():
        raise TargetError("gpu_bench needs an NVIDIA GPU that both TVM and PyTorch can see")
    target = f"cuda-{arch}"
    lines = [f"{torch.cuda.get_device_name()} ({arch}), {date.today()}, Python "
             f"{platform.python_version()}, PyTorch {torch.__version__} (cuDNN "
             f"{torch.backends.cudnn.version()}), batch 1, fp32 (TF32 off); median ms of "
             f"{args.rounds} x {args.per_round} interleaved runs", "",
             "| model | runtime | ms | ms / tvmconv's | max rel. err vs PyTorch |",
             "|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name in args.models:
        path = zoo.model_path(name)
        x = zoo.sample_input(name)
        runners, ref = torch_runners(name, x)
        outs = {}
        ours, outs["tvmconv"] = tvmconv_runner(path, target, x, None)
        runners = {"tvmconv": ours, **runners}
        log = args.log_dir / f"{name}-{target}.jsonl" if args.log_dir else None
        if log is not None and log.exists():
            runners["tvmconv tuned"], outs["tvmconv tuned"] = tvmconv_runner(path, target, x, log)
        ort = ort_runner(path, x)
        if ort is not None:
            runners["onnxruntime CUDA"] = ort
        ms = timed(runners, args.rounds, args.per_round)
        for k, v in ms.items():
            err = f"{relative_error(outs[k], ref):.1e}" if k in outs else ""
            row = f"| {name} | {k} | {v:.3f} | {v / ms['tvmconv']:.2f} | {err} |"
            lines.append(row)
            print(row, flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    from tvmconv import cli

    cli.run(main)
