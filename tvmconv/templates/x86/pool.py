"""Pooling: parallel over (batch, channel block, output row), vectors over the channel block.

In the blocked layout the window walks contiguous vectors of channels; on plain NCHW (block-less)
tensors each output is a short serial reduction.
"""

from __future__ import annotations

from ...config import Config, Space
from .common import PARALLEL_MIN, lane_partials, pad_rows_at, parallel_if_worth

NAME = "pool_blocked"
KINDS = ("pool2d",)


def space(wl, target) -> Space:
    return Space({"unroll_window": [0, 1]})


def default(wl, target) -> Config:
    kh, kw = wl.params["kernel"]
    return Config.of({"unroll_window": int(kh * kw <= 16)})


def apply(sch, wl, cfg: Config, target) -> None:
    blocked = len(wl.params["out"]) == 5
    pool = sch.get_sblock("pool")
    if _global_plain(wl, target):
        _global_in_lanes(sch, pool, wl, target)
        return
    # parallelise before decompose_reduction: s_tir refuses it on a split-off update block
    if wl.params["kind"] != "max":
        last = sch.get_sblock("pool_out")
        loops = sch.get_loops(last)
        rows = sch.fuse(*loops[:3])
        parallel_if_worth(sch, rows, wl)
        sch.compute_at(pool, loops[3], preserve_unit_loops=True)
        if blocked:
            sch.vectorize(sch.get_loops(last)[-1])
    else:
        loops = sch.get_loops(pool)
        rows = sch.fuse(*loops[:3])
        parallel_if_worth(sch, rows, wl)
    ploops = sch.get_loops(pool)
    rkh, rkw = ploops[-2:]
    if blocked:
        lanes = ploops[-3]
        sch.reorder(rkh, rkw, lanes)
        sch.vectorize(lanes)
    if cfg["unroll_window"]:
        sch.unroll(rkw)
    init = sch.decompose_reduction(pool, rkh)
    if blocked:
        sch.vectorize(sch.get_loops(init)[-1])
    pad_rows_at(sch, rows, target)


def _global_plain(wl, target) -> bool:
    """A max or average over a whole plain-layout (NCHW) image that fills whole vectors."""
    p = wl.params
    kh, kw = p["kernel"]
    return (len(p["out"]) == 4 and p["out"][2:] == (1, 1) and p["kind"] in ("max", "avg")
            and p["data"][2:] == (kh, kw) and not any(p["pads"]) and (kh * kw) % target.lanes == 0)


def _global_in_lanes(sch, pool, wl, target) -> None:
    """Each channel's image, contiguous in NCHW, reduced in vector lanes: as a serial loop per
    channel, 256 channels of 28 x 28 took 0.094 ms (onnxruntime: 0.02). An average's division
    after it touches one value per channel."""
    *_, rkh, rkw = sch.get_loops(pool)
    sch.fuse(rkh, rkw)
    n, c, kh, kw = wl.params["data"]
    lane_partials(sch, pool, target.lanes, n * c * kh * kw >= PARALLEL_MIN)
