"""python -m tvmconv.demo: compile the bundled digits CNN, classify its test split, report accuracy
and latency (beside onnxruntime's when it is installed).

The model is a small CNN trained on scikit-learn's 8x8 handwritten digits (scripts/train_digits.py);
the test images ship with it, so the demo needs nothing beyond tvmconv's own dependencies.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

from . import cli
from .errors import TvmconvError
from .hostinfo import describe_here


def bundled(name: str) -> Path:
    return Path(str(resources.files("tvmconv") / "data" / name))


def _median_ms(fn, x, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tvmconv.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default="x86", help="compile target (default: x86, this machine)")
    p.add_argument("--repeat", type=int, default=200, help="timed runs for latency (default 200)")
    args = p.parse_args(argv)
    cli.at_least(1, args.repeat, "--repeat")

    from .build import compile_model
    from .runtime import load
    from .target import resolve

    target = resolve(args.target)
    if not target.runs_here:  # the demo runs what it compiles; say so before compiling
        raise TvmconvError(f"the demo runs its model here, and {target.key} code cannot run on "
                           f"this machine ({describe_here(target.key)}); compile for it with "
                           "python -m tvmconv.compile")
    model_path = bundled("digits_cnn.onnx")
    data = np.load(bundled("digits_test.npz"))
    xs, ys = data["x"].astype(np.float32), data["y"]
    t0 = time.perf_counter()
    compiled = compile_model(model_path, target=target)
    with tempfile.TemporaryDirectory() as tmp:
        artefact = compiled.export(Path(tmp) / "digits_cnn.so")
        size_kib = artefact.stat().st_size / 1024
        model = load(artefact)
        print(f"compiled {model_path.name} for {compiled.target.key} in "
              f"{time.perf_counter() - t0:.1f} s ({size_kib:.0f} KiB artefact)")
        preds = np.array([int(np.argmax(model(x[None]))) for x in xs])
        acc = float((preds == ys).mean())
        lat = float(np.median(model.benchmark(xs[:1], repeat=args.repeat)) * 1e3)
        print(f"tvmconv:     accuracy {acc:.2%} on {len(ys)} test digits, "
              f"latency {lat:.4f} ms/image (median of {args.repeat})")
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: no side-by-side comparison")
        return 0
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    ort_preds = np.array([int(np.argmax(sess.run(None, {name: x[None]})[0])) for x in xs])
    ort_lat = _median_ms(lambda x: sess.run(None, {name: x}), xs[:1], args.repeat)
    print(f"onnxruntime: accuracy {float((ort_preds == ys).mean()):.2%}, "
          f"latency {ort_lat:.4f} ms/image; predictions agree on "
          f"{int((ort_preds == preds).sum())}/{len(ys)}")
    return 0


if __name__ == "__main__":
    cli.run(main)
