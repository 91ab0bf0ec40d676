"""python -m tvmconv.run model.so [--input x.npy] [--output y.npy] [--repeat 100]"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from . import cli
from .errors import TvmconvError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tvmconv.run",
        description="Run a compiled tvmconv artefact on numpy inputs; print a summary of the "
                    "outputs and the latency.")
    p.add_argument("artefact", help="a .so written by python -m tvmconv.compile")
    p.add_argument("--input", action="append", default=[], metavar="[NAME=]FILE.npy",
                   help="input array (repeatable, by position or NAME=); default: seeded random")
    p.add_argument("--output", help="save the outputs: FILE.npy for one output, else FILE.npz")
    p.add_argument("--repeat", type=int, default=100, help="timed runs (default 100; 0 = none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input (default 0)")
    return p


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise TvmconvError(f"cannot read input array {path}: {e}") from None


def _inputs(model, specs: list[str], seed: int) -> list[np.ndarray]:
    if not specs:
        rng = np.random.default_rng(seed)
        return [rng.standard_normal(i.shape).astype(i.dtype) for i in model.inputs]
    named = {}
    for k, spec in enumerate(specs):
        name, sep, path = spec.partition("=")
        if not sep or Path(spec).exists():
            if k >= len(model.inputs):
                raise TvmconvError(f"{len(specs)} inputs given, the model takes "
                                   f"{len(model.inputs)}")
            name, path = model.inputs[k].name, spec
        named[name] = _load_npy(path)
    missing = [i.name for i in model.inputs if i.name not in named]
    if missing:
        raise TvmconvError(f"no array for input(s) {missing}")
    return [named[i.name] for i in model.inputs]


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.repeat < 0:
        raise TvmconvError("--repeat must be >= 0")
    from .runtime import load

    model = load(args.artefact)
    xs = _inputs(model, args.input, args.seed)
    outs = model.run(*xs)
    for info, y in zip(model.outputs, outs):
        line = (f"{info.name}: shape {tuple(y.shape)} min {y.min():.4g} max {y.max():.4g} "
                f"mean {y.mean():.4g}")
        if y.ndim == 2:
            line += f" argmax {y.argmax(axis=1).tolist()[:8]}"
        print(line)
    if args.output:
        if len(outs) == 1:
            np.save(args.output, outs[0])
        else:
            np.savez(args.output, **{i.name: y for i, y in zip(model.outputs, outs)})
        print(f"saved outputs to {args.output}")
    if args.repeat:
        lat = model.benchmark(*xs, repeat=args.repeat) * 1e3
        print(f"latency over {args.repeat} runs: median {np.median(lat):.3f} ms, "
              f"p90 {np.percentile(lat, 90):.3f} ms, min {lat.min():.3f} ms")
    return 0


if __name__ == "__main__":
    cli.run(main)
