"""Pooling: parallel over (batch, channel block, output row), vectors over the channel block.

In the blocked layout the window walks contiguous vectors of channels; on plain NCHW (block-less)
tensors each output is a short serial reduction. The padding is tested for in each load
(``inline_pad``): the padded rows stored per output row took 1.5-2.6x as long alone in ResNet-18's,
GoogLeNet's and ShuffleNetV2's max pools.
"""

from __future__ import annotations

from ...config import Config, Space
from .common import (
    LONG_ROW,
    PARALLEL_MIN,
    has_block,
    inline_pad_default,
    inline_pad_values,
    lane_partials,
    pad_rows_at,
    parallel_if_worth,
    prod,
    schedule_pad,
)

NAME = "pool_blocked"
ROWS_FIRST = 1024  # pixels: a global pool at least this big sums its rows first
KINDS = ("pool2d",)


def space(wl, target) -> Space:
    return Space({"unroll_window": [0, 1], "inline_pad": inline_pad_values(wl.params)})


def default(wl, target) -> Config:
    kh, kw = wl.params["kernel"]
    return Config.of({"unroll_window": int(kh * kw <= 16),
                      "inline_pad": inline_pad_default(wl.params)})


def apply(sch, wl, cfg: Config, target) -> None:
    blocked = len(wl.params["out"]) == 5
    pool = sch.get_sblock("pool")
    if _global_plain(wl, target):
        _global_in_lanes(sch, pool, wl, target)
        return
    if blocked and _global(wl) and prod(wl.params["kernel"]) >= ROWS_FIRST:
        _global_rows_first(sch, pool, wl)
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
    if cfg["inline_pad"]:
        schedule_pad(sch, target, inline=True)
    else:
        pad_rows_at(sch, rows, target)


def _global(wl) -> bool:
    """A window over the whole unpadded image."""
    p = wl.params
    return p["out"][2:4] == (1, 1) and p["data"][2:4] == p["kernel"] and not any(p["pads"])


def _global_rows_first(sch, pool, wl) -> None:
    """A whole image on channel blocks summed a row at a time (rfactor), then the rows: each
    lane's sum of H x W values in one accumulator was 3e-3 off over 693 x 673 pixels (a fuzzed
    network; onnxruntime 9e-5), rows first 3e-6. Threads over (image, block, row)."""
    rkh = sch.get_loops(pool)[-2]
    rows = sch.rfactor(rkh, 2)  # [N, C/b, H, 1, 1, b]: row sums, lanes last
    n, cb, y, x, lanes, h, rkw = sch.get_loops(rows)
    sch.reorder(h, rkw, lanes)
    outer = sch.fuse(n, cb, y, x, h)
    parallel_if_worth(sch, outer, wl)
    sch.vectorize(lanes)
    sch.vectorize(sch.get_loops(sch.decompose_reduction(rows, rkw))[-1])
    *_, lanes, rkh = sch.get_loops(pool)
    sch.reorder(rkh, lanes)
    sch.vectorize(lanes)
    sch.vectorize(sch.get_loops(sch.decompose_reduction(pool, rkh))[-1])
    if has_block(sch, "pool_out"):
        sch.vectorize(sch.get_loops(sch.get_sblock("pool_out"))[-1])


def _global_plain(wl, target) -> bool:
    """A max or average over a whole plain-layout (NCHW) image that fills whole vectors or is
    long (the last vector masked): summed serially, 3 x 401 x 397 values were 5e-6 off, in
    lanes 5e-7."""
    size = prod(wl.params["kernel"])
    return (len(wl.params["out"]) == 4 and wl.params["kind"] in ("max", "avg") and _global(wl)
            and (size % target.lanes == 0 or size >= LONG_ROW * target.lanes))


def _global_in_lanes(sch, pool, wl, target) -> None:
    """Each channel's image, contiguous in NCHW, reduced in vector lanes: as a serial loop per
    channel, 256 channels of 28 x 28 took 0.094 ms (onnxruntime: 0.02). An average's division
    after it touches one value per channel."""
    *_, rkh, rkw = sch.get_loops(pool)
    sch.fuse(rkh, rkw)
    n, c, kh, kw = wl.params["data"]
    lane_partials(sch, pool, target.lanes, n * c * kh * kw >= PARALLEL_MIN)
