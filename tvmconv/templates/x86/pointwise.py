"""1x1 stride-1 convolution over the flattened pixels: the direct template's register micro-kernel
on the conv viewed as one row of H x W pixels (``view``; the buffers are the same memory).

A row tile then need not divide the map's width: on a 13x13 map (13 is prime) the direct
template gets one-vector tiles of 13 pixels or two-vector tiles of 4 that waste 23%; over 169
pixels 6 px x 16 channels waste 3%. On a Zen 3 (AVX2): SqueezeNet's 512 -> 1000 classifier (1000
channels as 63 blocks of 16, ``passes.layout.out_block``) ran at 136 GFLOP/s alone against 110
with 13 px x 8; inside ResNet-50 (interleaved runs) each of its 1x1 convs but the smallest ran
1.05-1.25x faster than with the direct template's defaults (4 px x 16 channels, or 2 x 2 px on
14x14 maps). Whole networks untuned, without the book: SqueezeNet 1.13x, ResNet-50 1.05x,
MobileNetV2 1.03x, EfficientNet-B0 1.01x.
"""

from __future__ import annotations

import math

from ...config import Config, Space
from ...workload import Workload
from . import conv2d as direct
from .common import (
    L1_BYTES,
    L2_BYTES,
    accumulator_aim,
    parallel_if_worth,
    round_up,
    row_tiled_compute,
    thread_orders,
    tile_widths,
)

NAME = "conv2d_pointwise"
KINDS = ("conv2d",)
MAX_WASTE = 1.1  # pixels computed per pixel stored


def applicable(wl, target) -> bool:
    p = wl.params
    return (p["kernel_hw"] == (1, 1) and p["strides"] == (1, 1) and p["groups"] == 1
            and not any(p["pads"]) and tuple(p["data"][2:4]) == tuple(p["out"][2:4])
            and operands_flatten(wl))


def operands_flatten(wl) -> bool:
    """Whether each operand of the epilogue is per pixel or per channel, as the flattened view
    can index it: one broadcast along the rows or the columns (an (H, 1) or (1, W) constant)
    cannot be, and read past its end (a fuzzed network found it)."""
    hw = tuple(wl.params["out"][2:4])
    return all(tuple(s[2:4]) in (hw, (1, 1)) for _, s in wl.params["operands"])


def preferred(wl, target) -> bool:
    """Whether this template, rather than the direct one, computes the conv by default. Not on
    AVX-512 where the direct template's default tile divides the rows (with 32 registers it
    covers 7, 9, 11 or 13 pixels, two vectors of channels): untuned whole networks on a Zen 5,
    alternating, ran faster with the direct default for every 1x1 conv (SqueezeNet 8%, ResNet-50
    6%, MobileNetV2 4%, GoogLeNet 3-7%); inside ResNet-50 10 of its 13 1x1 convs ran 1.04-1.34x
    faster, one 0.90x. But where the output block is one vector (1000 classes as 63 x 16 on
    AVX-512), the direct template's tiles are one vector wide and load a broadcast per FMA, and
    this one's span blocks (``spans_blocks``). On AVX2 the flattened pixels measured the faster
    (BENCHMARKS.md, eleventh session); on ARM the choice is unmeasured and stays as it was."""
    return target.lanes < 16 or direct.ragged_rows(wl, target) or spans_blocks(wl, target)


def spans_blocks(wl, target) -> bool:
    """Whether register tiles of several one-vector output blocks are offered: on a Zen 5
    (AVX-512), 1x1 convs with 16-channel blocks ran 1.05-1.3x faster alone with 48 channels x
    5 px or 80 x 3 than with the direct template's default (16 x 6-14 px) or 16 x 16 px here:
    512 -> 1008 channels on 7x6 pixels 92 against 115 us, 48 -> 240 on 28x28 31 against 36."""
    return bool(direct.spanning_tiles(wl, target.lanes))


def view(wl) -> Workload | None:
    """The same conv over a 1 x (H W) map: data, output and per-pixel operands flattened (None
    when the map is one row already)."""
    p = dict(wl.params)
    if p["out"][2] == 1:
        return None

    def flat(shape):
        n, c, h, w, b = shape
        return (n, c, 1, h * w, b)
    p["data"], p["out"] = flat(p["data"]), flat(p["out"])
    p["operands"] = tuple((i, flat(s)) for i, s in p["operands"])
    return Workload(wl.kind, tuple(sorted(p.items())))


compute = row_tiled_compute


def _pixels(wl) -> int:
    return wl.params["out"][2] * wl.params["out"][3]


def space(wl, target) -> Space:
    """Pixel tiles of any width up to 16 that waste little, channel tiles, and threads over
    output-channel blocks or over pixel tiles; the accumulators, weight vectors and broadcast
    input leave one register free. On a Zen 3 (AVX2) tiles that took all 16 spilled: 14 px x 8
    channels ran 0.69x as fast as 13 x 8 on a 1x1 conv of 169 pixels, 4 px x 24 channels
    0.55-0.97x as fast as 3 x 24 on MobileNetV2's 56x56 -> 24-channel convs."""
    pixels, lanes = _pixels(wl), target.lanes
    knobs = {
        "tile_w": tile_widths(pixels, ragged=True, max_waste=MAX_WASTE),
        "tile_oc": channel_tiles(wl, lanes),
        "reduce_outer": [0, 1],
        "pixels_outer": thread_orders(wl, wl.params["out"][1] > 1),
    }
    ob = wl.params["out"][4]
    return Space(knobs, lambda c: _accumulators(c, ob, lanes)
                 + direct.vectors(c["tile_oc"], ob, lanes) + 1 < target.registers)


def channel_tiles(wl, lanes: int) -> list[int]:
    """Output channels per register tile: the direct template's, within a block or spanning
    blocks of one vector (24 channels as 3 x 8 on AVX2: a tile of one vector loads a broadcast
    per FMA); the register budget leaves those that fit."""
    return direct.channel_tiles(wl.params["out"][4], lanes) + direct.spanning_tiles(wl, lanes)


def _accumulators(cfg: Config, block: int, lanes: int) -> int:
    return cfg["tile_w"] * direct.vectors(cfg["tile_oc"], block, lanes)


def default(wl, target) -> Config:
    """Input-channel blocks outermost when there are 4+; threads over pixel tiles where that
    reads less from the slower caches (``pixels_outer_pays``); then the register tile.

    With 16 registers, the most accumulators, then the least waste, among tiles of two vectors
    or more with at least 8 accumulators (a block of two kept whole, as in the direct template,
    or two to six blocks of one): a one-vector tile loads a broadcast per FMA. With 32, tiles
    with accumulators nearest half the registers, as the direct template measured on AVX-512
    (28 spilled): within a block, or across blocks of one vector (``spans_blocks``), there
    nearest 14: on a Zen 5, alone, 32 channels x 7 px ran up to 13% faster than x 8, and 80 x 3
    12-22% faster than 80 x 4."""
    lanes, pixels, ob = target.lanes, _pixels(wl), wl.params["out"][4]
    half = target.registers // 2
    many_blocks = int(wl.params["kernel"][1] >= 4)
    configs = space(wl, target)
    split = configs.knobs["pixels_outer"][0]  # the register tile is picked over blocks if offered
    fits = [c for c in configs if c["reduce_outer"] == many_blocks and c["pixels_outer"] == split]
    if target.registers == 16:
        fits = [c for c in fits if c["tile_oc"] >= 2 * lanes
                and _accumulators(c, ob, lanes) >= half] or fits
        fill = lambda c: _accumulators(c, ob, lanes)  # noqa: E731
    else:
        spanning = [c for c in fits if c["tile_oc"] > ob]
        fits = spanning or [c for c in fits if c["tile_oc"] <= ob]
        aim = accumulator_aim(target, bool(spanning))
        fill = lambda c: -abs(_accumulators(c, ob, lanes) - aim)  # noqa: E731
    tile = max(fits, key=lambda c: (fill(c), -round_up(pixels, c["tile_w"]),
                                    _accumulators(c, ob, lanes), c["tile_oc"]))
    if 1 in configs.knobs["pixels_outer"] and pixels_outer_pays(wl):
        return Config.of({**tile.to_json(), "pixels_outer": 1})
    return tile


def pixels_outer_pays(wl) -> bool:
    """Threads over output-channel blocks keep one block's weights in L1 while the input streams
    by, once per block: from L3 once it outgrows L2. Threads over pixel tiles keep a tile's input
    in L1 while all weights stream by, once per tile. So pixel tiles go outermost when the input
    outgrows L2, or when a block's weights outgrow L1 and all of them are few. Inside ResNet-50
    on a Zen 3 (AVX2), interleaved runs, the order this picks was the faster by 8-29% for each
    of its 1x1 convs where the two orders differed by more than the noise: inputs of 0.8 MB ran
    faster over blocks and of 1.6-3.2 MB over pixels; with 1024 input channels (64 KB weights
    per block) 1-2 MB of weights ran faster over pixels, 4 MB over blocks."""
    p = wl.params
    inputs, weights = (4 * math.prod(p[k]) for k in ("data", "kernel"))
    block_weights = weights // p["kernel"][0]
    return inputs > L2_BYTES or (block_weights > L1_BYTES and weights <= 2 * L2_BYTES)


def apply(sch, wl, cfg: Config, target) -> None:
    """On the flattened view (``view``), whose row is all the pixels."""
    ep = sch.get_sblock("epilogue")
    conv = sch.get_sblock("conv2d_NCHWc")
    ob = wl.params["out"][4]
    n, oc, y, x, oi = sch.get_loops(ep)
    xo, xi = sch.split(x, [None, cfg["tile_w"]])
    oco, oci, oo, oin = direct.split_channels(sch, oc, oi, cfg["tile_oc"], ob)
    if cfg["pixels_outer"]:
        # threads over pixel tiles: each tile's input stays in L1 while all weights pass by
        sch.reorder(n, y, xo, oco, oci, oo, xi, oin)
        outer = sch.fuse(n, y, xo)
        above = oco
    else:
        # threads over output-channel blocks, and over pixel tiles too when the blocks are few
        # (a 16-channel squeeze conv is one block)
        sch.reorder(n, oco, y, xo, oci, oo, xi, oin)
        outer = above = sch.fuse(n, oco, y, xo)
    parallel_if_worth(sch, outer, wl)
    at = oo if cfg["tile_oc"] <= ob else above
    direct.register_tile(sch, conv, at, oin, xi, cfg["reduce_outer"], unroll_kw=0,
                         streamed=direct.weights_streamed(wl))
