"""Depthwise convs, pooling, dense/matmul and the reducing layers (softmax, LRN, norms, Reduce*)
on CUDA, and convs whose tiles do not fit shared memory: each stage is a kernel over its
outputs, with its reduction either serial in one thread per output or spread over a block's
threads (a cross-thread all-reduce, for few long rows).

A reduction whose result is read element by element (a conv's epilogue, an average pool's
division, LRN's scaling) runs inside its reader's threads, its accumulator in a register; one
read by whole rows (a softmax's max and sum, a norm's moments) is a kernel of its own.
"""

from __future__ import annotations

from ...config import Config, Space
from ..x86.common import prod
from .common import (
    MAX_THREADS,
    UNROLL_STEPS,
    WARP,
    bind_flat,
    inline_producers,
    is_spatial,
    out_shape,
    powers_of_two,
    split_spatial,
    stages,
    unroll,
)

NAME = "cuda_stages"
KINDS = ("conv2d", "depthwise2d", "pool2d", "dense", "matmul", "softmax", "lrn", "instance_norm",
         "layer_norm", "reduce")

# With fewer outputs than this, one thread per output leaves most of a GPU idle.
FEW_OUTPUTS = 8192


def _reduction_length(wl) -> int:
    """Elements one output reduces over."""
    p = wl.params
    lengths = {
        "conv2d": lambda: prod(p["kernel"][1:5]),
        "depthwise2d": lambda: prod(p["kernel_hw"]),
        "pool2d": lambda: prod(p["kernel"]),
        "dense": lambda: p["data"][1],
        "matmul": lambda: p["a"][-1],
        "softmax": lambda: p["data"][p["axis"]],
        "lrn": lambda: p["size"],
        "instance_norm": lambda: prod(p["data"][2:4] if p.get("blocked") else p["data"][2:]),
        "layer_norm": lambda: p["data"][-1],
        "reduce": lambda: prod(p["data"][a] for a in p["axes"]),
    }
    return lengths[wl.kind]()


def space(wl, target) -> Space:
    longest = _reduction_length(wl)
    spread = [1] + [t for t in powers_of_two(WARP, 512) if 1 < longest and t <= max(WARP, longest)]
    return Space({"threads": powers_of_two(64, MAX_THREADS), "reduce_threads": spread,
                  "unroll": list(UNROLL_STEPS)})


def default(wl, target) -> Config:
    """A thread per output when there are enough outputs to fill the GPU, else a block per output
    with a warp or more over its reduction (a classifier's dense layer, a softmax over 1000)."""
    outputs, longest = prod(wl.params["out"]), _reduction_length(wl)
    spread = 1
    if outputs < FEW_OUTPUTS and longest >= 2 * WARP:
        spread = max(t for t in space(wl, target).knobs["reduce_threads"] if t <= longest // 2)
    return Config.of({"threads": 256, "reduce_threads": spread, "unroll": 64})


def apply(sch, wl, cfg: Config, target) -> None:
    inline_producers(sch)
    *producers, out = stages(sch)
    shape = out_shape(sch, out)
    # same shape as the output: read at the same index (layers/ computes these so)
    per_element = [b for b in producers if out_shape(sch, b) == shape]
    for block in producers:
        if block not in per_element:
            _kernel(sch, block, [], cfg)
    _kernel(sch, out, per_element, cfg)


def _kernel(sch, block, inner: list, cfg: Config) -> None:
    """One kernel over ``block``'s outputs, with the ``inner`` stages (program order) computed in
    its threads. A reduction accumulates in a register and is stored once."""
    if not is_spatial(sch, block):
        inner = [*inner, block]
        block = sch.cache_write(block, 0, "local")
    fused, _ = split_spatial(sch, block)
    spread = cfg["reduce_threads"] if inner else 1
    if spread == 1:
        _, tx = bind_flat(sch, fused, cfg["threads"])
        for stage in reversed(inner):  # readers first: s_tir places a stage before its readers
            sch.compute_at(stage, tx)
            sch.set_scope(stage, 0, "local")
        unroll(sch, tx, cfg["unroll"])
        return
    sch.bind(fused, "blockIdx.x")
    _, tx = sch.split(sch.add_unit_loop(block), [None, spread])  # one thread stores the result
    sch.bind(tx, "threadIdx.x")
    for stage in reversed(inner):
        sch.compute_at(stage, fused)
        sch.set_scope(stage, 0, "local")
        _spread(sch, stage, spread)


def _spread(sch, stage, threads: int) -> None:
    """A stage computed in a block, its reduction over ``threads`` threads (the last ones idle
    when it is shorter): TVM lowers it to warp shuffles and a shared-memory step across warps."""
    reduction = sch.get_loops(stage)[1:]
    loop = sch.fuse(*reduction) if len(reduction) > 1 else reduction[0]
    _, tx = sch.split(loop, [None, threads])
    sch.bind(tx, "threadIdx.x")
