"""Direct NCHW[x]c convolution: a register-blocked micro-kernel (1x1 convs included).

The output tile of ``tile_h x tile_w`` pixels x ``tile_oc`` channels stays in vector registers while
the reduction runs over input-channel blocks, kernel rows and columns, and the input-channel lanes;
each step broadcasts one input value and FMAs it into ``tile_oc / lanes`` accumulators per pixel.
Threads split the output-channel blocks (each streams its share of the weights) or, with
``rows_outer``, the rows (each reads its share of a large input).
On a width with no useful divisor the last tile of a row is ragged (``common.tile_widths``).
The epilogue (bias, activation, residual) is applied to the tile on its way out. Measured on Zen 3
(AVX2): 4 px x 16 ch reached 133 GFLOP/s on ResNet-18's 64->64 3x3 layer; 7 x 16 spilled
registers (76).
"""

from __future__ import annotations

import math

from ... import prefetch
from ...config import Config, Space, divisors
from ...layers import conv2d
from .common import (
    L2_BYTES,
    accumulator_aim,
    parallel_if_worth,
    prefer_exact,
    round_up,
    schedule_pad,
    thread_orders,
    tile_widths,
    vector_reduction,
    whole_blocks_first,
)

NAME = "conv2d_direct"
KINDS = ("conv2d",)


def vectors(tile_oc: int, block: int, lanes: int) -> int:
    """The vector registers one pixel's ``tile_oc`` output channels take: a tile spanning blocks
    of one vector or less (``spanning_tiles``) takes one per block."""
    return tile_oc // block * -(-block // lanes) if tile_oc > block else -(-tile_oc // lanes)


def accumulators(cfg: Config, block: int, lanes: int) -> int:
    return cfg["tile_h"] * cfg["tile_w"] * vectors(cfg["tile_oc"], block, lanes)


# Skipping the kernel rows that read padding is offered where at least this share of them do (a
# 3x3 conv dilated by 4 on a 10-row map: 27%; undilated on a 7-row map: 10%, where it ran no
# faster), for row tiles whose rows all skip the same kernel rows: the branch then holds for the
# whole tile, and LLVM takes it out of the tile's loops (where it did not, a 6x6 map in tiles of
# 3 rows ran 1.7x slower). On AVX-512, alone, each default config with and without: 22-29% of
# rows skipped ran 0.73-0.79x the time (8 dilated layers, 5x5 to 16x16, rates 2-6). By default
# unless the best tile that can skip holds under half the accumulators of the best one and the
# weights fit the L2: on a 3-row map, tiles of one row (4 accumulators) ran 1.5x slower than the
# whole map (12) without, and SqueezeNet at 61x47 (0.6 MB of weights a layer) 7% slower end to
# end; but weights that stream from memory in a network bound it, and ResNet-18's 512-channel
# layers on 3x3 maps (9.4 MB) ran it 7% faster end to end at 75x91 and 61x47, ResNet-50's 2%.
# Kernel columns likewise (``skip_pad_cols``), by default where the tile already skips alike:
# DeepLabV3's rate-4 layers on 10x12 maps in tiles of 4 columns ran 0.78x the time of rows only.
SKIP_PAD_MIN_SHARE = 0.2
SKIP_KNOBS = ("skip_pad_rows", "skip_pad_cols")  # per axis
TILE_KNOBS = ("tile_h", "tile_w")


def _skips_alike(wl, axis: int, tile: int) -> bool:
    """Whether every tile of ``tile`` rows (axis 0) or columns (1) reads the same kernel taps."""
    taps = conv2d.axis_taps(wl, axis)
    return all(taps[i] == taps[i - i % tile] for i in range(len(taps)))


def compute(wl, cfg):
    """The conv over whole row tiles (``common.tile_widths``), skipping the kernel rows and
    columns that read padding with ``skip_pad_rows`` and ``skip_pad_cols``."""
    return conv2d.compute(wl, out_w=round_up(wl.params["out"][3], cfg["tile_w"]),
                          skip_pad_rows=bool(cfg.get("skip_pad_rows", 0)),
                          skip_pad_cols=cfg["tile_w"] if cfg.get("skip_pad_cols") else 0)


def channel_tiles(block: int, lanes: int) -> list[int]:
    """Output channels per register tile: divisors of the block that fill whole vectors."""
    return [d for d in divisors(block) if d % lanes == 0 or d == block] or [block]


MAX_SPAN = 6  # output blocks one register tile spans, at most


def spanning_tiles(wl, lanes: int) -> list[int]:
    """Output channels per register tile of 2 to ``MAX_SPAN`` output blocks of one vector or less
    (1000 classes as 63 x 16 on AVX-512, RegNet's groups of 24 channels as 3 x 8), never across
    two groups: a tile of one such block loads a broadcast per FMA, of k blocks one per k."""
    _, blocks, _, _, block = wl.params["out"]
    per_group = blocks // wl.params["groups"]
    return [k * block for k in range(2, MAX_SPAN + 1) if block <= lanes and per_group % k == 0]


def split_channels(sch, oc, oi, tile_oc: int, block: int) -> tuple:
    """The output-channel loops (blocks ``oc``, lanes ``oi``) split for a register tile of
    ``tile_oc`` channels: (outer blocks, the blocks in one tile, the rest of a block, the tile's
    lanes); a tile spanning blocks (``spanning_tiles``) holds several whole ones."""
    oco, oci = sch.split(oc, [None, max(1, tile_oc // block)])
    oo, oin = sch.split(oi, [None, min(tile_oc, block)])
    return oco, oci, oo, oin


def space(wl, target) -> Space:
    """Tiles whose accumulators, weight vectors and the broadcast input fit the vector registers
    (on AVX2 a 13-pixel row of 8 channels: 13 + 1 + 1 = 15 of 16). Ragged row tiles are offered
    even where a divisor of the width exists: on a Zen 3 (AVX2), ResNet-50's 1x1 convs on 7x7
    maps ran at 67 GFLOP/s with the exact 7 px x 8 channels and at 109-158 with 4 px x 16 (the
    last tile wasting one pixel); on 14x14 maps 5 px x 16 beat 2 x 2 px x 16 by 10-30%."""
    p = wl.params
    _, _, oh, ow, ob = p["out"]
    lanes, regs = target.lanes, target.registers
    knobs = {
        "tile_w": tile_widths(ow, ragged=True),
        "tile_h": divisors(oh, 4),
        "tile_oc": channel_tiles(ob, lanes) + spanning_tiles(wl, lanes),
        "unroll_kw": [0, 1] if p["kernel_hw"][1] > 1 else [0],
        "reduce_outer": [0, 1],
        "rows_outer": thread_orders(wl, p["out"][1] > 1 and oh > 1),
    }
    aligned = {}  # per skip knob offered, the tile sizes that can skip
    for axis, (knob, tile) in enumerate(zip(SKIP_KNOBS, TILE_KNOBS)):
        if conv2d.dead_share(wl, axis) >= SKIP_PAD_MIN_SHARE:  # else: twice the space for nothing
            knobs[knob] = [1, 0]
            aligned[knob, tile] = {t for t in knobs[tile] if _skips_alike(wl, axis, t)}

    def valid(c):
        return (accumulators(c, ob, lanes) + vectors(c["tile_oc"], ob, lanes) + 1 <= regs
                and all(not c[knob] or c[tile] in sizes for (knob, tile), sizes in aligned.items()))

    return Space(knobs, valid)


def default(wl, target) -> Config:
    """The tile with the number of accumulators nearest half the register file (larger on a tie),
    one row of pixels as wide as fits; input-channel blocks outermost when there are many of them;
    threads over rows or over output channels by ``rows_outer_pays``.

    Measured in the tuning logs (tuning_logs/, all direct-conv configs of 7 models): on AVX2 tiles
    of 8-10 accumulators ran best and 4-5 at 0.6x; on AVX-512 13-26 best, 28 spilled on ResNet's
    7x7/2 stem (298 GFLOP/s against 490 with 16). "Nearest", not "at most": a width with no
    divisor near the ideal (13, 55) gets the next larger tile (SqueezeNet's 13x13 1x1 convs on
    AVX2: 13 accumulators ran 1.8x faster than the 2 that fit under half); a 1 x 14 px row beat a
    4 x 4 block 2.2x on MobileNetV2's 56x56 1x1 convs; with 4+ input blocks, blocks-outermost won
    by 1.2-2x (ResNet-50's strided 3x3, SqueezeNet's 512-channel classifier conv).

    With 16 registers a block of two vectors is kept whole when that tile has more than a quarter
    of them as accumulators: half a block loads one weight vector and one broadcast per FMA, and
    on a Zen 3 (AVX2) the whole-block tile (a ragged 4 px x 16 channels on 7-wide maps instead of
    the exact 7 px x 8, 3 px x 16 on 27-wide ones instead of 9 px x 8) ran faster on 29 of the 33
    layers of 11 zoo models where it differs (median 1.19x).

    Where tiles can span blocks of one vector or less (``spanning_tiles``), one of those; with 32
    registers, with accumulators nearest 14, as ``pointwise.default`` measured."""
    half, lanes = target.registers // 2, target.lanes
    many_blocks = int(wl.params["kernel"][1] >= 4)
    ow, ob = wl.params["out"][3:]
    configs = space(wl, target)
    order = configs.knobs["rows_outer"][0]  # the register tile is picked over blocks if offered
    fits = [c for c in configs if c["reduce_outer"] == many_blocks and c["rows_outer"] == order]
    spanning = [c for c in fits if c["tile_oc"] > ob]
    fits = spanning or fits
    aim = accumulator_aim(target, bool(spanning))

    def rank(c):
        acc = accumulators(c, ob, lanes)
        waste = round_up(ow, c["tile_w"]) / ow
        return (-abs(acc - aim), -waste, acc, c["tile_oc"], -c["tile_h"], c["tile_w"],
                -c["unroll_kw"])

    def pick(configs):
        return prefer_exact(configs, lambda cs: max(cs, key=rank), ow,
                            lambda c: accumulators(c, ob, lanes) >= half // 2)

    def best(configs):
        return whole_blocks_first(configs, ob, target, pick,
                                  lambda c: accumulators(c, ob, lanes) > half // 2)

    tile = best([c for c in fits if not any(c.get(k) for k in SKIP_KNOBS)])
    if "skip_pad_rows" in configs.knobs:
        skipping = best([c for c in fits if c["skip_pad_rows"] and not c.get("skip_pad_cols")])
        streamed = 4 * math.prod(wl.params["kernel"]) > L2_BYTES
        if streamed or 2 * accumulators(skipping, ob, lanes) >= accumulators(tile, ob, lanes):
            tile = skipping
    if "skip_pad_cols" in configs.knobs:
        tile = Config.of({**tile.to_json(), "skip_pad_cols": int(_skips_alike(wl, 1,
                                                                            tile["tile_w"]))})
    if 1 in configs.knobs["rows_outer"] and rows_outer_pays(wl, tile["tile_h"]):
        return Config.of({**tile.to_json(), "rows_outer": 1})
    return tile


def ragged_rows(wl, target) -> bool:
    """Whether the default row tile leaves part of a tile past each row's end (AVX2's 4-pixel
    tiles on 7-pixel rows): where ``conv2d_flat`` and ``passes.stride`` take over."""
    return wl.params["out"][3] % default(wl, target)["tile_w"] != 0


def rows_outer_pays(wl, tile_h: int) -> bool:
    """Whether threads over rows move fewer bytes than threads over output-channel blocks: the
    first re-read every weight once per row tile, the second the input once per block (of a
    strided 1x1 conv only the pixels it samples). On a Zen 3 (AVX2) the order this picks ran
    ResNet-50's and MobileNetV2's 14- and 28-wide 1x1 convs 1.1-1.5x faster than channel blocks
    outermost; over all 56 direct-conv layers of 5 zoo models it was within 2% of the better
    order, the old fixed order 12% off; in the AVX-512 logs the two orders are within 1%."""
    p = wl.params
    _, blocks, oh, _, _ = p["out"]
    sampled = min(1.0, p["kernel_hw"][0] / p["strides"][0]) * min(1.0, p["kernel_hw"][1]
                                                                   / p["strides"][1])
    input_read = math.prod(p["data"]) * sampled  # in elements: bytes but for the same factor
    weights = math.prod(p["kernel"])
    return -(-oh // tile_h) * weights < blocks * input_read


def apply(sch, wl, cfg: Config, target) -> None:
    ep = sch.get_sblock("epilogue")
    conv = sch.get_sblock("conv2d_NCHWc")
    n, oc, y, x, oi = sch.get_loops(ep)
    yo, yi = sch.split(y, [None, cfg["tile_h"]])
    xo, xi = sch.split(x, [None, cfg["tile_w"]])
    ob = wl.params["out"][4]
    oco, oci, oo, oin = split_channels(sch, oc, oi, cfg["tile_oc"], ob)
    streamed = streams_by_blocks(wl, target, cfg)
    if cfg["rows_outer"]:
        # threads split the rows: each streams all weights but reads only its share of the input
        sch.reorder(n, yo, oco, xo, oci, oo, yi, xi, oin)
        outer = sch.fuse(n, yo, oco)
    else:
        # threads split the output channels: each streams only its share of the weights (and
        # where it streams them from memory, its row tiles share each block: ``streamed_tile``)
        sch.reorder(n, oco, yo, xo, oci, oo, yi, xi, oin)
        outer = sch.fuse(n, oco) if streamed else sch.fuse(n, oco, yo)
    parallel_if_worth(sch, outer, wl)
    if streamed:
        streamed_tile(sch, conv, outer, cfg["tile_h"], cfg["tile_w"], cfg["tile_oc"],
                      cfg["unroll_kw"])
    else:
        register_tile(sch, conv, oo if cfg["tile_oc"] <= ob else xo, oin, xi,
                      cfg["reduce_outer"], cfg["unroll_kw"])
    schedule_pad(sch, target)


def streams_by_blocks(wl, target, cfg: Config) -> bool:
    """Whether the conv with threads over output channels (not ``rows_outer``) computes with
    ``streamed_tile``: its weights stream (``weights_streamed``) and its output-channel tiles
    over the batch are enough tasks for the threads on their own."""
    batch, blocks, _, _, block = wl.params["out"]
    tasks = batch * blocks // max(1, cfg["tile_oc"] // block)
    cores = int(target.tvm.get("num-cores", 1))
    return (not cfg["rows_outer"] and weights_streamed(wl)
            and (tasks % cores == 0 or tasks >= 4 * cores))


def streamed_tile(sch, conv, outer, tile_h, tile_w, tile_oc, unroll_kw) -> None:
    """The micro-kernel for weights that stream from memory, computed under ``outer`` (a tile of
    output channels): each input-channel block's weights are read by every row tile in turn,
    from L1 after the first, with the row tiles' accumulators kept in memory between blocks;
    meanwhile the next block's weights are prefetched a few lines at a time
    (``prefetch.mark_next``).

    Row tiles outside the reduction instead (``register_tile``) read each block's weights at
    the arithmetic's pace in the first row and from the caches after it: the first row waits on
    memory. On a Xeon (2 threads stream ~32 GB/s from memory) ResNet-18's 512-channel 3x3 conv
    on 7x7 ran 1.06 ms with its weights flushed (0.79 warm) that way, with prefetches 16 KB
    ahead; this way 0.81 (0.77 warm)."""
    sch.compute_at(conv, outer, preserve_unit_loops=True)
    cob, cy, cx, co, rco, rkh, rkw, rci = sch.get_loops(conv)[-8:]
    cyo, cyi = sch.split(cy, [None, tile_h])
    cxo, cxi = sch.split(cx, [None, tile_w])
    coo, coi = sch.split(co, [None, min(tile_oc, int(sch.get(co).extent))])
    sch.reorder(rco, cyo, cxo, coo, rkh, rkw, rci, cob, cyi, cxi, coi)
    vector_reduction(sch, conv, coi, rco, (cob, cxi, cyi, rkw) if unroll_kw else (cob, cxi, cyi))
    prefetch.mark_next(sch, rco, rkw, "kernel")


def register_tile(sch, conv, at, lanes, pixels, reduce_outer, unroll_kw,
                  streamed: bool = False) -> None:
    """The conv block computed under loop ``at`` as the micro-kernel: its reduction around the
    tile (``pixels`` unrolled, ``lanes`` a vector, and the output-channel blocks the tile spans,
    if more than one), the kernel columns unrolled with ``unroll_kw``; weights prefetched where
    they are ``streamed`` (see ``weights_streamed``)."""
    sch.compute_at(conv, at, preserve_unit_loops=True)
    cob, cyi, cxi, coi, rco, rkh, rkw, rci = sch.get_loops(conv)[-8:]
    if reduce_outer:
        # input-channel blocks outermost: the weights for one tile stream once per block
        sch.reorder(rco, rkh, rkw, rci, cob, cyi, cxi, coi)
    else:
        sch.reorder(rkh, rco, rkw, rci, cob, cyi, cxi, coi)
    vector_reduction(sch, conv, coi, rco if reduce_outer else rkh,
                     (cob, cxi, cyi, rkw) if unroll_kw else (cob, cxi, cyi))
    sch.vectorize(lanes)
    sch.unroll(pixels)
    if streamed:
        prefetch_weights(sch, rci)


# Where a conv's weights outgrow L2 and serve few output pixels each, a network streams them from
# memory with too little arithmetic to hide the wait, and the hardware prefetchers (which stop at
# every 4 KB page) fall behind: on a Zen 5 (2 threads stream about 70 GB/s) ResNet-34's 512-channel
# 3x3 convs at 101x77 input (4 x 3 output pixels, 9.4 MB of weights) read theirs at 20-25 GB/s.
# Software prefetches 16 KB ahead, a burst per 4 input channels, made them 0.64-0.78x as slow
# timed alone with the caches flushed, unchanged warm. Whole networks, untuned, alternating:
# ResNet-34 at 101x77 0.85x the time, ResNet-18 (tuned, 224x224) 0.96x, GoogLeNet and VGG-11 at
# 101x77 0.98x, ResNet-50 0.985x, MobileNetV2 and DenseNet-121 within the noise (0.98-1.02).
# Prefetching every conv's weights instead left ResNet-50 unchanged (1.01-1.04x) and made three
# of its 1x1 convs 1.2-1.7x slower warm. The direct template's own streamed convs have since
# moved to ``streamed_tile`` (next block prefetched at the pace it is used); these prefetches,
# 16 KB ahead, remain for the 1x1 templates' (``register_tile(streamed=True)``).
PREFETCH_AHEAD = 4096  # float32 elements beyond the micro-kernel's current weight read
PREFETCH_EVERY = 4  # input channels per burst of prefetches
PREFETCH_MAX_PIXELS = 64


def weights_streamed(wl) -> bool:
    """Whether the conv's weights get software prefetches: they outgrow L2 (a network streams
    them from memory) and each serves at most ``PREFETCH_MAX_PIXELS`` output pixels over the
    batch (ResNet-18 at batch 8 ran 0.99x without prefetching its 7 x 7 layers)."""
    p = wl.params
    return (4 * math.prod(p["kernel"]) > L2_BYTES
            and p["out"][0] * p["out"][2] * p["out"][3] <= PREFETCH_MAX_PIXELS)


def prefetch_weights(sch, loop) -> None:
    """Prefetches of the weights ``PREFETCH_AHEAD`` elements beyond those read in reduction
    ``loop``, which walks them in memory order (input channels within a block)."""
    every = math.gcd(PREFETCH_EVERY, int(sch.get(loop).extent))
    prefetch.mark(sch, loop, "kernel", PREFETCH_AHEAD, every)
