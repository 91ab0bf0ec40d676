"""python -m tvmconv.run model.so [--input x.npy] [--output y.npy] [--repeat 100] [--profile]"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from . import cli
from .errors import TvmconvError, require_file


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tvmconv.run",
        description="Run a compiled tvmconv artefact on numpy inputs; print a summary of the "
                    "outputs and the latency.")
    p.add_argument("artefact", help="a .so written by python -m tvmconv.compile")
    p.add_argument("--input", action="append", default=[], metavar="[NAME=]FILE.npy",
                   help="input array as a .npy file (repeatable, by position or NAME=; .npz "
                        "archives are not taken); default: seeded random")
    p.add_argument("--output", help="save the outputs at exactly this path: FILE.npz holds "
                                    "every output by name; any other name, the one output as .npy")
    p.add_argument("--repeat", type=int, default=100, help="timed runs (default 100; 0 = none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input (default 0)")
    p.add_argument("--profile", action="store_true",
                   help="also print each kernel's time inside the network (CPU targets)")
    return p


def _input_files(model, specs: list[str]) -> dict[str, str]:
    """--input NAME=FILE or FILE (by position) -> {input name: file}; every name one of the
    model's, each input given once."""
    names = [i.name for i in model.inputs]
    files = {}
    for k, spec in enumerate(specs):
        name, sep, path = spec.partition("=")
        if not sep or Path(spec).exists():
            if k >= len(names):
                raise TvmconvError(f"{len(specs)} inputs given, the model takes {len(names)}")
            name, path = names[k], spec
        elif name not in names:
            raise TvmconvError(f"--input {spec}: the model has no input {name!r}; its inputs "
                               f"are {names}")
        if name in files:
            raise TvmconvError(f"--input: input {name!r} is given twice")
        files[name] = path
    missing = [n for n in names if n not in files]
    if specs and missing:
        raise TvmconvError(f"no array for input(s) {missing}")
    return files


def _load_npy(path: str) -> np.ndarray:
    """A .npy file, known by its magic first: numpy's own message for another file is about
    loading pickles unsafely."""
    path = require_file(path, "input array")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"PK\x03\x04"):
        raise TvmconvError(f"input {path} is a .npz archive; --input takes one .npy file per "
                           "input (NAME=FILE.npy)")
    if magic != b"\x93NUMPY":
        raise TvmconvError(f"input {path} is not a .npy file (no NumPy header)")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise TvmconvError(f"cannot read input array {path}: {e}") from None


def _save(path: Path, model, outs: list[np.ndarray]) -> None:
    """At exactly ``path`` (np.save and np.savez add a suffix to a name without theirs)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            if path.suffix == ".npz":
                np.savez(f, **{i.name: y for i, y in zip(model.outputs, outs)})
            else:
                np.save(f, outs[0])
    except OSError as e:
        raise TvmconvError(f"cannot write {path}: {e.strerror or e}") from None


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    cli.at_least(0, args.repeat, "--repeat")
    cli.at_least(0, args.seed, "--seed")
    from .runtime import load

    model = load(args.artefact)
    files = _input_files(model, args.input)
    out = None
    if args.output:
        out = cli.output_path(args.output, "--output", {
            args.artefact: "the artefact", **{p: f"input {n!r}" for n, p in files.items()}})
        if out.suffix != ".npz" and len(model.outputs) != 1:
            raise TvmconvError(f"--output {out}: the model has {len(model.outputs)} outputs; "
                               "save them with --output FILE.npz")
    if files:
        xs = [_load_npy(files[i.name]) for i in model.inputs]
    else:
        xs = list(model.random_inputs(args.seed).values())
    outs = model.run(*xs)
    for info, y in zip(model.outputs, outs):
        line = (f"{info.name}: shape {tuple(y.shape)} min {y.min():.4g} max {y.max():.4g} "
                f"mean {y.mean():.4g}")
        if y.ndim == 2:
            line += f" argmax {y.argmax(axis=1).tolist()[:8]}"
        print(line)
    if out:
        _save(out, model, outs)
        print(f"saved outputs to {out}")
    if args.repeat:
        lat = model.benchmark(*xs, repeat=args.repeat) * 1e3
        print(f"latency over {args.repeat} runs: median {np.median(lat):.3f} ms, "
              f"p90 {np.percentile(lat, 90):.3f} ms, min {lat.min():.3f} ms")
    if args.profile:
        from .bench import layer_table, network_rows

        print(layer_table(network_rows(model, *xs), None, "inside the network"))
    return 0


if __name__ == "__main__":
    cli.run(main)
