"""Build one kernel alone and time it on random inputs: the unit of tuning and per-layer profiles."""

from __future__ import annotations

import numpy as np

from . import kernels
from .passes import optimize
from .workload import Workload, from_node


def build_kernel(wl: Workload, target, template=None, cfg=None):
    """A runnable module holding one scheduled kernel as ``main``."""
    import tvm

    func = kernels.prim_func(wl, target, template, cfg)
    return tvm.compile(tvm.IRModule({"main": func}), target=target.tvm_target())


def random_args(func_or_lib, wl: Workload, device, seed: int = 0) -> list:
    """Device arrays for a kernel's arguments (inputs random, output zero), shapes from its compute."""
    import tvm

    rng = np.random.default_rng(seed)
    tensors = kernels.COMPUTES[wl.kind](wl)
    arrays = []
    for k, t in enumerate(tensors):
        shape = [int(d) for d in t.shape]
        data = np.zeros(shape, "float32") if k == len(tensors) - 1 else \
            rng.uniform(0.5, 1.5, shape).astype("float32")  # positive: safe for log/sqrt/div
        arrays.append(tvm.runtime.tensor(data, device))
    return arrays


def time_kernel(lib, args, device, number: int = 0, repeat: int = 5, min_ms: int = 20):
    """Median-ready list of per-call seconds; ``number`` 0 picks enough calls for ``min_ms``."""
    evaluator = lib.mod.time_evaluator("main", device, number=number or 1, repeat=repeat,
                                   min_repeat_ms=0 if number else int(min_ms))
    return list(evaluator(*args).results)


def workloads(model, target, input_shapes=None) -> list[tuple[Workload, int]]:
    """The distinct kernel workloads of a model after the passes, with their occurrence counts."""
    from .frontend import from_onnx

    graph = optimize(from_onnx(model, input_shapes), target)
    counts: dict[Workload, int] = {}
    for node in graph.nodes:
        wl = from_node(node, graph)
        if wl is not None:
            counts[wl] = counts.get(wl, 0) + 1
    return list(counts.items())
