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


def time_kernel(mod, args, device, repeat: int = 5, min_ms: int = 10,
                flush: bool = False) -> list[float]:
    """Per-call seconds of ``mod``'s ``main``: ``repeat`` means of as many calls as fill
    ``min_ms``, the kernel warm; with ``flush`` (see ``flushed``), ``FLUSHED_CALLS`` x ``repeat``
    single calls, each after every argument but the input is flushed from the caches."""
    if flush:
        evaluator = mod.time_evaluator("main", device, number=1, repeat=FLUSHED_CALLS * repeat,
                                       f_preproc="cache_flush_cpu_non_first_arg")
    else:
        evaluator = mod.time_evaluator("main", device, number=1, repeat=repeat,
                                       min_repeat_ms=min_ms)
    return list(evaluator(*args).results)


FLUSHED_CALLS = 4  # single calls per warm repeat, for a median as steady


def flushed(wl: Workload, target) -> bool:
    """Whether the tuner times this workload's kernels with their weights flushed from the
    caches: where a network streams them from memory (on x86, ``conv2d.weights_streamed``), warm
    timings rank the configs wrongly. On a Xeon, ResNet-18's 512-channel 3x3 conv on 7x7 ran
    as Winograd 0.58 ms warm, 1.07 flushed and 1.15 inside the network; as the direct template's
    ``streamed_tile`` 0.77, 0.81 and (the network 0.87x the time) faster there. Timing every
    kernel flushed was tried on a Zen 3 (AVX2) and ranked configs worse: ResNet-18 compiled with
    such a log ran 7% slower end to end than with the analytic defaults."""
    if target.family != "x86" or wl.kind != "conv2d":  # flushing measured on x86 only
        return False
    from .templates.x86 import conv2d

    return conv2d.weights_streamed(wl)


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
