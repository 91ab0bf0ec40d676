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


def time_kernel(mod, args, device, repeat: int = 15) -> list[float]:
    """Per-call seconds of ``mod``'s ``main``, with every argument but the first (the input the
    previous layer has just written) flushed from the CPU caches before each call: in a network
    the weights stream from memory on every inference, and timing them warm ranks configs wrongly
    (ResNet-18's 512-channel 3x3 conv: two loop orders tie warm; one is 1.5x slower cold)."""
    evaluator = mod.time_evaluator("main", device, number=1, repeat=repeat,
                                   f_preproc="cache_flush_cpu_non_first_arg")
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
