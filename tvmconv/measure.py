"""Build one kernel alone and time it on random inputs:
the unit of tuning and per-layer profiles."""

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


def random_args(wl: Workload, device, template=None, cfg=None) -> list:
    """Device arrays for a kernel's arguments: seeded inputs, a zero output."""
    import tvm

    from .runner import kernel_inputs

    inputs, out_shape = kernel_inputs(wl, template, cfg)
    return [tvm.runtime.tensor(a, device) for a in inputs] + [
        tvm.runtime.tensor(np.zeros(out_shape, "float32"), device)]


def time_kernel(mod, args, device, repeat: int = 5, min_ms: int = 10) -> list[float]:
    """Per-call seconds of ``mod``'s ``main``: ``repeat`` means of as many calls as fill
    ``min_ms``. Kernels run warm, one after another. Timing them with their weights flushed from
    the caches first (as a network streams them) was tried and ranked configs worse: ResNet-18
    compiled with such a log ran 7% slower end to end than with the analytic defaults."""
    evaluator = mod.time_evaluator("main", device, number=1, repeat=repeat, min_repeat_ms=min_ms)
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
