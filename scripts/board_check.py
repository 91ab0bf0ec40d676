"""Check compiled models on a board: cross-compile each for the board's target here, upload it to
the board's TVM RPC server, run it there on a seeded input and compare with onnxruntime run here.

    python scripts/board_check.py --target aarch64 --rpc 192.168.1.20:9190 lenet5 mobilenet_v2

The board needs only TVM's runtime and its RPC server (``python -m tvm.exec.rpc_server``); names
are reference models from ``zoo.py`` or ONNX files. Prints the relative error and the board's
latency per model; exits non-zero if any model is off by more than 1e-4.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

import zoo  # noqa: E402

from tvmconv.artefact import LOAD_FUNC  # noqa: E402
from tvmconv.build import compile_model  # noqa: E402
from tvmconv.runner import rpc_session  # noqa: E402
from tvmconv.tune import parse_rpc  # noqa: E402

TOL = 1e-4


def reference(path: str, feeds: dict) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def run_on_board(session, artefact: Path, meta: dict, x: np.ndarray,
                 repeat: int) -> tuple[np.ndarray, float]:
    """(output, median seconds) of the artefact's main on the board, through the RPC session."""
    import tvm
    from tvm.runtime.vm import VirtualMachine

    session.upload(str(artefact))
    dev = session.cpu()
    vm = VirtualMachine(session.load_module(artefact.name), dev)
    # over RPC a returned tuple stays on the board: the stateful calls fetch its fields one by one
    loaded = []
    if meta.get("load_weights"):  # as runtime.Model does when it loads an artefact
        vm.set_input(LOAD_FUNC)  # none: the stateful call still wants them set
        vm.invoke_stateful(LOAD_FUNC)
        made = vm.get_outputs(LOAD_FUNC)
        loaded = [made[i] for i in range(len(made))]
    vm.set_input("main", *loaded, tvm.runtime.tensor(x, dev))
    vm.invoke_stateful("main")
    out = vm.get_outputs("main")[0].numpy()
    timer = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=repeat)
    return out, float(timer("main").median)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="reference model names or ONNX paths")
    p.add_argument("--target", default="aarch64")
    p.add_argument("--rpc", required=True, metavar="HOST:PORT")
    p.add_argument("--rpc-key", help="device key when --rpc names an RPC tracker")
    p.add_argument("--repeat", type=int, default=3, help="timed runs on the board (default 3)")
    args = p.parse_args()
    session = rpc_session(parse_rpc(args.rpc, args.rpc_key))
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            path = name if name.endswith(".onnx") else str(zoo.model_path(name))
            t0 = time.perf_counter()
            compiled = compile_model(path, target=args.target)
            artefact = compiled.export(Path(tmp) / f"{Path(path).stem}.so")
            seconds = time.perf_counter() - t0
            inp = compiled.meta["inputs"][0]
            x = np.random.default_rng(0).standard_normal(inp["shape"]).astype(np.float32)
            got, latency = run_on_board(session, artefact, compiled.meta, x, args.repeat)
            ref = reference(path, {inp["name"]: x})
            err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-6))
            failed += not err <= TOL
            print(f"{Path(path).stem:24s} {'ok ' if err <= TOL else 'BAD'} rel.err {err:.1e}  "
                  f"board {latency * 1e3:9.2f} ms  compile {seconds:5.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
