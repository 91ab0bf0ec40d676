"""Check CUDA artefacts on a GPU machine that cannot reach this one: compile here, run there.

    python scripts/gpu_check.py prepare DIR --arch sm_90 [MODEL ...]  # here: artefacts, refs
    python scripts/gpu_check.py run DIR                               # there: run, compare, time

``prepare`` compiles each reference model (``zoo.py`` names or ONNX files) for the GPU, and saves
the artefact with a seeded input and onnxruntime's output for it. ``run`` needs only tvmconv's
runtime and TVM's (with nvcc or NVRTC for TVM to compile the kernels when they load). It prints
each model's relative error and median latency, and exits non-zero if any is off by more than
1e-4.

TVM's runtime alone is 6.5 MB (the apache-tvm wheel without ``lib/libtvm_compiler.so``, plus the
apache-tvm-ffi wheel for the GPU machine's Python), so it travels with the default models'
artefacts (43 MB); there, ``TVM_USE_RUNTIME_LIB=1 PYTHONPATH=<runtime>:. python3
scripts/gpu_check.py run DIR``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

TOL = 1e-4
# small enough that artefacts and TVM's runtime travel together (weights are inside artefacts)
DEFAULT_MODELS = ["lenet5", "squeezenet", "mobilenet_v2", "mobilenet_v3", "shufflenet_v2", "m5"]


def prepare(out: Path, models: list[str], arch: str) -> None:
    import onnxruntime as ort
    import zoo

    from tvmconv.build import compile_model

    out.mkdir(parents=True, exist_ok=True)
    for name in models:
        path = str(zoo.model_path(name)) if name in zoo.MODELS else name
        stem = Path(path).stem
        compiled = compile_model(path, target=f"cuda-{arch}")
        feeds = {i["name"]: np.random.default_rng(7).standard_normal(i["shape"]).astype("float32")
                 for i in compiled.meta["inputs"]}
        ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)
        compiled.export(out / f"{stem}.so")
        np.savez(out / f"{stem}.npz", **{f"in_{k}": v for k, v in feeds.items()},
                 **{f"out_{k}": v for k, v in enumerate(ref)})
        print(f"{stem}: {(out / f'{stem}.so').stat().st_size / 2**20:.1f} MiB", flush=True)


def run(folder: Path, repeat: int) -> int:
    import tvmconv

    worst = 0.0
    for artefact in sorted(folder.glob("*.so")):
        data = np.load(artefact.with_suffix(".npz"))
        model = tvmconv.load(artefact)
        feeds = {i.name: data[f"in_{i.name}"] for i in model.inputs}
        outs = model.run(feeds)
        err = max(tvmconv.relative_error(o, data[f"out_{k}"]) for k, o in enumerate(outs))
        ms = float(np.median(model.benchmark(*feeds.values(), repeat=repeat))) * 1e3
        worst = max(worst, err)
        print(f"{artefact.stem:16s} rel. err {err:.1e}  {ms:8.3f} ms", flush=True)
    return 0 if worst <= TOL else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="step", required=True)
    pre = sub.add_parser("prepare", help="compile artefacts and references here")
    pre.add_argument("folder", type=Path)
    pre.add_argument("models", nargs="*", default=DEFAULT_MODELS)
    pre.add_argument("--arch", default="sm_80", help="the GPU's architecture (sm_90: H100/H200)")
    go = sub.add_parser("run", help="run them on this machine's GPU")
    go.add_argument("folder", type=Path)
    go.add_argument("--repeat", type=int, default=100)
    args = p.parse_args(argv)
    if args.step == "prepare":
        prepare(args.folder, args.models, args.arch)
        return 0
    return run(args.folder, args.repeat)


if __name__ == "__main__":
    from tvmconv import cli

    cli.run(main)
