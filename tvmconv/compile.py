"""python -m tvmconv.compile model.onnx --target x86 [--log tuning.jsonl] -o model.so"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

from . import cli
from . import compile as _compile_function  # the package's function, before the rebinding below
from .errors import TvmconvError
from .target import TARGET_NAMES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tvmconv.compile",
        description="Compile an ONNX CNN into one native module (a .so with its own metadata).")
    p.add_argument("model", help="the ONNX model file")
    p.add_argument("--target", default="x86",
                   help=f"{', '.join(TARGET_NAMES)}, or a TVM JSON target dict (default: x86, "
                        "this machine's vector ISA)")
    p.add_argument("-o", "--output", help="artefact path (default: MODEL.so beside the model)")
    p.add_argument("--log", action="append", default=[],
                   help="tuning log(s) from python -m tvmconv.tune (repeatable); without one the "
                        "shipped schedule book and analytic defaults are used")
    p.add_argument("--no-book", action="store_true",
                   help="ignore the shipped schedule book: analytic defaults for untuned layers")
    p.add_argument("--input-shape", action="append", metavar="NAME:D1,D2,...",
                   help="static shape for an input with symbolic dimensions (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from .build import compile_model
    from .target import resolve

    resolve(args.target).export_kwargs()  # a missing cross compiler fails now, not after compiling
    out = cli.output_path(args.output or Path(args.model).with_suffix(".so"),
                          "-o" if args.output else "the default -o",
                          {args.model: "the model", **dict.fromkeys(args.log, "a tuning log")})
    t0 = time.perf_counter()
    mod = compile_model(args.model, target=args.target, log=args.log,
                        input_shapes=cli.parse_shapes(args.input_shape), progress=not args.quiet,
                        book=not args.no_book)
    try:
        mod.export(out)
    except OSError as e:  # the place was checked before compiling: name it, not a temp file
        raise TvmconvError(f"cannot write {out}: {e.strerror or e}") from None
    if not args.quiet:
        ins = ", ".join(f"{i['name']}{i['shape']}" for i in mod.meta["inputs"])
        outs = ", ".join(f"{o['name']}{o['shape']}" for o in mod.meta["outputs"])
        print(f"compiled {args.model} for {mod.target.key} in {time.perf_counter() - t0:.1f} s "
              f"-> {out} ({out.stat().st_size / 2**20:.1f} MiB); inputs {ins}; outputs {outs}")
    return 0


class _CallableModule(types.ModuleType):
    """``import tvmconv.compile`` makes Python rebind the package's ``compile`` function to this
    module; calling the module compiles, so ``tvmconv.compile(model)`` keeps working after it."""

    def __call__(self, *args, **kwargs):
        return _compile_function(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    cli.run(main)
