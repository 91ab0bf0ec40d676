"""Depthwise NCHW[x]c convolution: vectors over the channel block, a row of pixels in registers.

Each output pixel reads only its own channel, so the FMA has no reuse across channels: the tile is a
run of ``tile_w`` pixels x the channel block, with kernel taps unrolled. The layer is bound by
memory, so the zero padding can be made per output row, from cache (``pad_rows``), instead of as
a padded copy of the whole input.
"""

from __future__ import annotations

from ...config import Config, Space
from .common import (
    has_block,
    parallel_if_worth,
    prefer_exact,
    row_tiled_compute,
    schedule_pad,
    tile_widths,
    vector_reduction,
)

NAME = "depthwise_direct"
KINDS = ("depthwise2d",)


compute = row_tiled_compute


def _rows_padded_per_block(wl) -> bool:
    """Padding per output row pads the input channels of one output block: a constant count only
    when the multiplier divides the block or the block the multiplier (5 channels per input in
    blocks of 4 read one or two input channels, a loop TVM cannot vectorise)."""
    ob, mult = wl.params["out"][4], wl.params["multiplier"]
    return ob % mult == 0 or mult % ob == 0


def space(wl, target) -> Space:
    _, _, _, ow, ob = wl.params["out"]
    budget = target.registers - 4
    vecs = -(-ob // target.lanes)
    return Space({"tile_w": tile_widths(ow), "unroll_taps": [0, 1],
                  "pad_rows": [0, 1] if _rows_padded_per_block(wl) else [0]},
                 lambda c: c["tile_w"] * vecs <= budget)


def default(wl, target) -> Config:
    """Taps unrolled; a run of at most 8 pixels (wider tiles lost 1.2-1.9x on MobileNetV2's layers
    in the tuning logs); padding per row only when strided, where a padded copy of the large
    input costs most. Together 3.5% faster end to end on MobileNetV2 than widest tiles with row
    padding everywhere (two interleaved runs)."""
    strided = int(wl.params["strides"][0] > 1 and _rows_padded_per_block(wl))
    fits = [c for c in space(wl, target) if c["unroll_taps"] and c["pad_rows"] == strided]
    narrow = [c for c in fits if c["tile_w"] <= 8] or fits
    return prefer_exact(narrow, lambda cs: max(cs, key=lambda c: c["tile_w"]),
                        wl.params["out"][3], lambda c: c["tile_w"] >= 4)


def apply(sch, wl, cfg: Config, target) -> None:
    ep = sch.get_sblock("epilogue")
    n, oc, y, x, oi = sch.get_loops(ep)
    xo, xi = sch.split(x, [None, cfg["tile_w"]])
    sch.reorder(n, oc, y, xo, xi, oi)
    row = sch.fuse(n, oc, y)
    parallel_if_worth(sch, row, wl)
    row_tiles(sch, xo, xi, oi, row, cfg["unroll_taps"], cfg["pad_rows"], target)


def row_tiles(sch, xo, xi, oi, row, unroll_taps, pad_rows, target) -> None:
    """The conv computed per row tile (under ``xo``; ``xi`` its pixels, ``oi`` the channel
    lanes): taps outermost, unrolled with ``unroll_taps``, a vector per pixel. With
    ``pad_rows`` the padding is made for each output ``row``'s input rows, else whole."""
    conv = sch.get_sblock("depthwise_NCHWc")
    sch.compute_at(conv, xo, preserve_unit_loops=True)
    cxi, coi, rkh, rkw = sch.get_loops(conv)[-4:]
    sch.reorder(rkh, rkw, cxi, coi)
    vector_reduction(sch, conv, coi, rkh, (cxi, rkw, rkh) if unroll_taps else (cxi,))
    sch.vectorize(oi)
    sch.unroll(xi)
    if pad_rows and has_block(sch, "pad"):
        pad = sch.get_sblock("pad")
        sch.compute_at(pad, row, preserve_unit_loops=True)
        sch.vectorize(sch.get_loops(pad)[-1])
    else:
        schedule_pad(sch, target)
