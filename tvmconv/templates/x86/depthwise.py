"""Depthwise NCHW[x]c convolution: vectors over the channel block, a row of pixels in registers.

Each output pixel reads only its own channel, so the FMA has no reuse across channels: the tile is a
run of ``tile_w`` pixels x the channel block, with kernel taps unrolled. The layer is bound by
memory, so by default the zero padding is not stored at all (``inline_pad``): each tap tests its
input row and column, tests LLVM takes out of the vector loop over the channel block. That
halved MobileNetV2's unstrided 14x14 and 7x7 layers alone against a padded copy (384 channels at
14x14: 3.7 us for 7.5 on AVX-512; 960 at 7x7: 2.3 for 5.2), and ran EfficientNet's 5x5 layers
in 0.55-0.9x the time. The tuner may still pad per output row from cache (``pad_rows``) or the
whole input.
"""

from __future__ import annotations

from ...config import Config, Space
from .common import (
    has_block,
    inline_pad_default,
    inline_pad_values,
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
                  "pad_rows": [0, 1] if _rows_padded_per_block(wl) else [0],
                  "inline_pad": inline_pad_values(wl.params)},
                 lambda c: c["tile_w"] * vecs <= budget and not (c["inline_pad"] and c["pad_rows"]))


def default(wl, target) -> Config:
    """Taps unrolled; a run of at most 8 pixels (wider tiles lost 1.2-1.9x on MobileNetV2's layers
    in the tuning logs); the padding inlined (faster than a padded copy or padded rows on every
    depthwise layer of MobileNetV2 and EfficientNet-B0, strided ones included)."""
    inline = inline_pad_default(wl.params)
    fits = [c for c in space(wl, target) if c["unroll_taps"] and c["inline_pad"] == inline
            and not c["pad_rows"]]
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
    pad = "inline" if cfg["inline_pad"] else "rows" if cfg["pad_rows"] else "whole"
    row_tiles(sch, xo, xi, oi, row, cfg["unroll_taps"], pad, target)


def row_tiles(sch, xo, xi, oi, row, unroll_taps, pad, target) -> None:
    """The conv computed per row tile (under ``xo``; ``xi`` its pixels, ``oi`` the channel
    lanes): taps outermost, unrolled with ``unroll_taps``, a vector per pixel. The padding
    (``pad``) is tested for in each tap's load ("inline"), made for each output ``row``'s input
    rows ("rows"), or made whole ("whole")."""
    conv = sch.get_sblock("depthwise_NCHWc")
    sch.compute_at(conv, xo, preserve_unit_loops=True)
    cxi, coi, rkh, rkw = sch.get_loops(conv)[-4:]
    sch.reorder(rkh, rkw, cxi, coi)
    vector_reduction(sch, conv, coi, rkh, (cxi, rkw, rkh) if unroll_taps else (cxi,))
    sch.vectorize(oi)
    sch.unroll(xi)
    if pad == "rows" and has_block(sch, "pad"):
        block = sch.get_sblock("pad")
        sch.compute_at(block, row, preserve_unit_loops=True)
        sch.vectorize(sch.get_loops(block)[-1])
    else:
        schedule_pad(sch, target, inline=pad == "inline")
