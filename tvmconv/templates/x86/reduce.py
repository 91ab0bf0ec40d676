"""Softmax, LRN, instance and layer norm, ONNX Reduce*: every stage parallel over its outer axes and
vectorised along its flattened data-parallel axes, reductions kept serial outside the vector lanes.

These layers are a sliver of a CNN's time, unless left scalar: GoogLeNet's LRN was 15% of the
network before its power was vectorised.
"""

from __future__ import annotations

from ...config import Config, Space
from .common import (
    LONG_ROW,
    PARALLEL_MIN,
    extent,
    has_block,
    lane_partials,
    prod,
    vector_reduction,
    vector_tile,
)

NAME = "reduce_rows"
KINDS = ("softmax", "lrn", "instance_norm", "layer_norm", "reduce")

_STAGES = {
    "softmax": ("softmax_max", "softmax_sum", "softmax"),
    "lrn": ("lrn_sqsum", "lrn"),
    "instance_norm": ("norm_mean", "norm_var", "instance_norm"),
    "layer_norm": ("norm_mean", "norm_var", "layer_norm"),
    "reduce": ("reduce", "reduce_post"),  # a mean's or L2 norm's last step, when there is one
}


def space(wl, target) -> Space:
    return Space({"parallel": [0, 1], "vector": [0, 1]})


def default(wl, target) -> Config:
    return Config.of({"parallel": int(prod(wl.params["out"]) >= PARALLEL_MIN), "vector": 1})


def _along_rows(wl, lanes: int) -> tuple[str, ...]:
    """The stages that reduce along the innermost, contiguous axes, when those hold whole
    vectors or are long (the last vector then partly masked): a layer norm's row moments, a
    plain instance norm's, a softmax or Reduce* over the last axis. A long row summed across
    rows instead is one serial sum, slow and inexact: a LayerNorm over 29 x 132 x 194 values
    (a fuzzed network) was 4e-4 off; onnxruntime 3e-5 and lanes of partial sums 1e-5."""
    p = wl.params
    last = len(p["data"]) - 1
    stages, length = (), p["data"][-1]
    if wl.kind == "layer_norm":
        stages = ("norm_mean", "norm_var")
    elif wl.kind == "instance_norm" and not p.get("blocked"):
        stages, length = ("norm_mean", "norm_var"), prod(p["data"][2:])
    elif wl.kind == "softmax" and p["axis"] == last:
        stages = ("softmax_max", "softmax_sum")
    elif wl.kind == "reduce" and p["axes"] == (last,):
        stages = ("reduce",)
    return stages if length % lanes == 0 or length >= LONG_ROW * lanes else ()


def apply(sch, wl, cfg: Config, target) -> None:
    rowwise = _along_rows(wl, target.lanes) if cfg["vector"] else ()
    # on channel blocks, a vector is a block's lanes: one mean, scale and bias per lane
    blocked = wl.params.get("blocked", False)
    for name in _STAGES[wl.kind]:
        if not has_block(sch, name):
            continue
        block = sch.get_sblock(name)
        if name in rowwise:
            lane_partials(sch, block, target.lanes, bool(cfg["parallel"]))
            continue
        loops = sch.get_loops(block)
        # create_prim_func lays out a block's data-parallel loops first, its reductions after
        n_spatial = sum(iv.iter_type == 0 for iv in sch.get(block).iter_vars)
        spatial, reduction = loops[:n_spatial], loops[n_spatial:]
        if not spatial:
            continue
        # after row-wise moments, a vector stays within a row: one mean and scale for all lanes
        span = extent(sch, spatial[-1]) if rowwise or blocked else \
            prod(extent(sch, lp) for lp in spatial)
        flat = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
        vec = vector_tile(span, target.lanes, 4 * target.lanes) if cfg["vector"] else 1
        outer, lane = sch.split(flat, [None, vec]) if vec > 1 else (flat, None)
        if cfg["parallel"] and extent(sch, outer) > 1:
            sch.parallel(outer)
        if lane is None:
            continue
        if reduction:
            sch.reorder(outer, *reduction, lane)
            vector_reduction(sch, block, lane, reduction[0])
        else:
            sch.vectorize(lane)
