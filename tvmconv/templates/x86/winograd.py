"""Winograd F(m, r) for stride-1 convs: 3x3 (dilated or not), 5x5, 7x7, and the 1 x r and r x 1
convs of Inception-style nets (``layers.winograd``); a competitor of the direct template.

Input tiles are transformed per (batch, channel block, tile row) in parallel; the a_h x a_w channel
GEMMs use the direct template's register tile (``tile_p`` tiles x ``tile_oc`` channels in vector
registers, reduction over input channels; ``tile_rows`` rows of such tiles where ``tile_p`` spans
a whole row); the inverse transform runs per output tile and feeds the fused epilogue. The input
transform reads the conv's padding as tests on its loads, not from a padded copy (``inline_pad``;
ResNet-18 7% faster end to end on AVX-512, VGG 2%, with AVX2 2% and 2%). The kernel transform
runs once, as the artefact loads (``weight_schedule``); the tuner times the GEMMs on weights
transformed by numpy (``transform_weights``).
"""

from __future__ import annotations

import numpy as np

from ... import prefetch
from ...config import Config, Space, divisors
from ...layers import winograd
from . import conv2d as direct
from .common import (
    inline_pad_default,
    inline_pad_values,
    parallel_if_worth,
    prefer_exact,
    prod,
    schedule_pad,
    tile_widths,
    vector_reduction,
    whole_blocks_first,
)

NAME = "conv2d_winograd"
KINDS = ("conv2d",)
TILES = (4, 2)
KERNEL_SIZES = (1, 3, 5, 7)  # along each axis; 1 x 1 convs are GEMMs already
# The largest transformed tile (m + r - 1) per axis, by the number of axes the kernel spans: the
# transforms' float32 error grows with it, and squares in 2-D. Relative to the largest output
# (numpy, 64 channels): 2-D F(4,3) 1.9e-6, F(4,5) 5.7e-6, F(2,7) 4.1e-6, but F(4,7) 1.1e-4 (a 7x7
# conv of 59 channels differed from onnxruntime by 1.2e-4); 1-D F(4,7) 7.3e-6.
MAX_ALPHA = {1: 10, 2: 8}
# F(4,3) stores 4x the conv's weights (36 taps for 9), F(2,3) 16/9. A network reads each layer's
# weights once per run, from memory once they outgrow the caches, and its a_h x a_w GEMMs do two
# flops per weight per output tile: with few tiles the weight traffic bounds the layer, which
# timing a kernel alone (weights cached) does not show. ResNet-50's and ResNet-18's 256-channel
# 14x14 layers (16 F(4,3) tiles, 9.4 MB) ran 2.4-2.5% faster end to end with F(2,3) (49 tiles;
# interleaved runs) on AVX-512, though F(4,3) won alone; without F(4,3) VGG's 56x56 and 28x28
# layers (196 and 49 tiles, up to 38 MB) ran 0.6x end to end, and as AVX2 code its 14x14 ones
# (16 tiles) 0.98x. So F(4,3) is offered when its weights fit two cores' L2 or each weight serves
# at least 2 tiles per vector lane: about the compute rate over the memory bandwidth, in flops
# per byte (twice as high with AVX-512's 16 lanes as with AVX2's 8).
MAX_CACHED_WEIGHT_BYTES = 4 << 20


# A dilated conv's tiles cover its d residues separately (every d-th row and column), so at
# sizes near d x m many tile pixels fall past the edge (``_waste``). Time per pixel computed,
# relative to F(2,3)'s, measured on DeepLab-style layers (AVX-512, 28-65 pixels, d = 2-12):
# F(4,3) 0.60-0.75 (``RELATIVE_COST``), direct 1.7-2.3 (more at larger d). Winograd is offered
# for a dilated conv where waste x relative cost is at most 1.5: F(2,3) wasting 1.65 (d = 6 on
# 28 x 28) tied direct, wasting 2.94 (d = 12) ran 1.3x slower.
RELATIVE_COST = {2: 1.0, 4: 0.65}
MAX_DILATED_COST = 1.5


_tile_grid = winograd.tile_grid


def _dilated(wl) -> bool:
    return wl.params["dilations"] != (1, 1)


def _tiles(wl, target) -> list[int]:
    _, _, oh, ow, _ = wl.params["out"]
    ocb, icb, _, _, ib, ob = wl.params["kernel"]

    def weights_pay(m: int) -> bool:
        weight_bytes = prod(winograd.alphas(wl, m)) * ocb * ob * icb * ib * 4
        return (weight_bytes <= MAX_CACHED_WEIGHT_BYTES
                or prod(_tile_grid(wl, m)) >= 2 * target.lanes)

    def fits(m: int) -> bool:
        alphas = winograd.alphas(wl, m)
        if max(alphas) > MAX_ALPHA[sum(k > 1 for k in wl.params["kernel_hw"])]:
            return False
        if _dilated(wl):
            return _waste(wl, m) * RELATIVE_COST[m] <= MAX_DILATED_COST
        return all(size >= 2 * t for size, (t, k, _) in zip((oh, ow), winograd.axes(wl, m))
                   if k > 1)

    return [m for m in TILES if fits(m) and (m == 2 or weights_pay(m))]


# With AVX-512, F(2,3) is the default only where its GEMMs have at least this many tiles, or a
# few fewer that cover the map exactly. End to end, alternating, with the direct template instead
# for the few-tile layers: 9 tiles (256x5x6, ResNets at 75x91, a sixth of them partial) ran
# ResNet-18 2-4.5% and ResNet-50 1.8% faster; 12 (512x7x6, ResNet-18 at 197x181) 6% slower, 16
# (512x7x7, at 224x224) 10% slower. Exact grids: 9 tiles (512x6x6, ResNet-18 at 189x189) 11%
# slower; 6 (256x6x4, ResNet-18 at 89x53) 3% faster, 4 (512x4x4, at 113x97) 6% faster, but 4 of
# 1024 channels (Wide ResNet-50 at 113x97) 5% slower. F(4,3)'s 9 tiles on a 12x12 map (144
# outputs, not 36) ran 2x as fast as the direct template alone: it keeps the default.
# Those grids were timed with GEMM tiles of one row of tiles. Where the default tile spans rows
# (``default``), Winograd is the default on any grid; against the direct template, alternating:
# 4 tiles (512x4x4) ResNet-34 at 113x97 0.943, ResNet-50 0.983, ResNet-18 1.001; 4 of 1024
# channels Wide ResNet-50 0.985; 6 (256x6x4) ResNet-18 at 89x53 0.965. The 3 x 3 grids of a
# 5x6 map cannot span rows within 16 accumulators; with 18 they tied the direct template.
MIN_TILES, MIN_EXACT_TILES = 10, 9


def preferred(wl, target) -> bool:
    """Whether Winograd, rather than the direct template, computes the conv by default."""
    if (direct.streams_by_blocks(wl, target, direct.default(wl, target))
            and not direct.ragged_rows(wl, target)):
        return False
    if target.lanes < 16:
        return True
    cfg = default(wl, target)
    m = cfg["tile_m"]
    tiles = prod(_tile_grid(wl, m))
    return (m == 4 or tiles >= MIN_TILES or cfg["tile_rows"] > 1
            or (tiles >= MIN_EXACT_TILES and _waste(wl, m) == 1))


def applicable(wl, target) -> bool:
    p = wl.params
    kernel = p["kernel_hw"]
    return (all(k in KERNEL_SIZES for k in kernel) and kernel != (1, 1)
            and (kernel == (3, 3) or not _dilated(wl))  # dilated costs measured on 3x3 only
            and p["strides"] == (1, 1) and p["groups"] == 1
            and p["data"][1] * p["data"][4] >= 16 and bool(_tiles(wl, target))
            and p["data"][4] == p["kernel"][4]  # its input transform reads whole stored blocks
            # its GEMMs vectorise over output channels: CycleGAN's 32 -> 3 7x7 conv ran 10x
            # slower with 3-channel GEMMs than the direct template
            and p["out"][4] >= target.lanes)


def _gemm_tiles(wl, m: int) -> list[int]:
    """Tiles of a row per GEMM register tile: the divisors of the row's tile count, and undilated
    (no interleaved residues) ragged counts that waste little, as ``common.tile_widths`` offers
    them, also beside a divisor: 14 tiles a row take 5 x 16 channels (see ``default``). DenseNet's
    25x33 layers at F(2,3) have 17 tiles a row: 1 tile x 32 channels (2 accumulators) ran at 300
    GFLOP/s, where F(4,3)'s 9 reached 825."""
    tiles = _tile_grid(wl, m)[1]
    if wl.params["dilations"][1] != 1:
        return divisors(tiles, 16)
    return tile_widths(tiles, ragged=True)


def _gemm_rows(wl, m: int, tile_p: int | None = None) -> list[int]:
    """Rows of tiles per GEMM register tile: more than one where the tile spans whole rows
    (``tile_p`` all of a row's tiles; None: any ``tile_p``), the divisors of the row count."""
    rows, per_row = _tile_grid(wl, m)
    return divisors(rows, 16) if tile_p in (None, per_row) else [1]


def _accumulators(c, target) -> int:
    return c["tile_rows"] * c["tile_p"] * -(-c["tile_oc"] // target.lanes)


def space(wl, target) -> Space:
    ob = wl.params["out"][4]
    budget = target.registers - 4
    oc_tiles = [d for d in divisors(ob) if d % target.lanes == 0 or d == ob] or [ob]
    tile_p = sorted({d for m in _tiles(wl, target) for d in _gemm_tiles(wl, m)})
    rows = sorted({d for m in _tiles(wl, target) for d in _gemm_rows(wl, m)})
    return Space({"tile_m": _tiles(wl, target), "tile_p": tile_p, "tile_rows": rows,
                  "tile_oc": oc_tiles, "inline_pad": inline_pad_values(wl.params)},
                 lambda c: c["tile_p"] in _gemm_tiles(wl, c["tile_m"])
                 and c["tile_rows"] in _gemm_rows(wl, c["tile_m"], c["tile_p"])
                 and _accumulators(c, target) <= budget)


def _waste(wl, m: int) -> float:
    """Output pixels computed per pixel needed: padded tiles at the image edge are wasted work."""
    _, _, oh, ow, _ = wl.params["out"]
    return prod(_tile_grid(wl, m)) * _tile_outputs(wl, m) / (oh * ow)


def _tile_outputs(wl, m: int) -> int:
    return prod(winograd.tile_shape(wl.params["kernel_hw"], m))


def default(wl, target) -> Config:
    """F(4,3) unless its edge tiles waste over 10% (then F(2,3): 14x14 and 13x13 layers ran 1.2-2x
    faster so in ResNets); for a dilated conv the tile of least waste x relative cost. Then the
    biggest GEMM tile of a whole number of tiles per row, while that fills half its budget:
    all registers but the weight vectors and a broadcast, or with AVX-512 16 accumulators of its
    32 registers. There, where the default had 28 (14 tiles x 2 vectors at 56x56, 112x112 and
    55x55), the tuning logs' picks held 14 in 8 of 9 layers, and 14 ran each of the 9 1.05-1.13x
    faster inside five zoo networks. ARM's A64 (32 registers of 4 lanes) keeps 28: unmeasured.

    With 16 registers (AVX2, armv7) the GEMM tile is small, so the tile size of least GEMM work
    wins over the 10% rule: F(4,3) on 14x14 maps (16 x 16 computed, 2.25 products per output)
    over F(2,3) (4 per output); and a block of two vectors is kept whole, as in the direct
    template, with a ragged last tile where no divisor fits. On a Zen 3 (AVX2), each kernel
    alone: 5 tiles x 16 channels ran 1.11-1.21x faster than 7 x 8 at 56x56, 4 x 16 1.05-1.14x
    faster than 7 x 8 at 28x28, and F(4,3) with 4 x 16 1.37-1.47x faster than F(2,3) with 7 x 8
    at 14x14 (13 of the 15 zoo layers whose tile changed ran faster, median 1.06x). Whole
    networks, untuned, against the earlier defaults (interleaved runs): VGG 1.15-1.21x,
    ResNet-18 1.00-1.10x (median of four comparisons 1.06x), SqueezeNet unchanged.

    Kernels other than 3 x 3 take the tile of least GEMM work on any ISA, and store their
    padding (``inline_pad`` 0): on Inception-v3's 17x17 maps F(4,7) (10 products per 4 outputs,
    18% wasted) ran its 1 x 7 and 7 x 1 convs 1.3-1.6x faster than F(2,7), and testing the
    padding in the loads ran its 7 x 1 ones 2x and its 35x35 5 x 5 ones 1.4-2x slower (AVX-512,
    each kernel alone).

    With AVX-512, where a whole row of tiles and a whole channel block leave the budget half
    empty (F(2,3) on 7x7 maps: 4 tiles x 2 vectors), the register tile then takes as many rows
    of tiles as fit: each weight vector loaded serves them all. ResNet-18's 512x7x7 layers ran
    2 x 4 tiles x 32 channels in 288 us against 339 alone, and 0.92-0.93x the time inside the
    network, where their 16.8 MB of weights stream from memory. Rows of a narrower channel tile
    (4 x 4 tiles x 16 of the 32 channels) ran 1.36x slower there: each pass then reads every
    other cache line of the weights."""
    budget = target.registers // 2 if target.lanes >= 16 else target.registers - 4
    acc = lambda c: _accumulators(c, target)  # noqa: E731
    half_full = lambda c: acc(c) >= budget // 2  # noqa: E731
    if _dilated(wl):
        m = min(_tiles(wl, target), key=lambda t: _waste(wl, t) * RELATIVE_COST[t])
    elif target.registers == 16 or wl.params["kernel_hw"] != (3, 3):
        # the least GEMM work: a_h a_w products per tile's outputs
        m = min(_tiles(wl, target), key=lambda t: (
            _waste(wl, t) * prod(winograd.alphas(wl, t)) / _tile_outputs(wl, t), -t))
    else:
        m = max(_tiles(wl, target), key=lambda t: (_waste(wl, t) <= 1.1, t))
    inline = inline_pad_default(wl.params) if wl.params["kernel_hw"] == (3, 3) else 0
    fits = [c for c in space(wl, target)
            if acc(c) <= budget and c["tile_m"] == m and c["inline_pad"] == inline]

    def pick(configs):
        return prefer_exact(configs, lambda cs: max(cs, key=lambda c: (acc(c), c["tile_oc"])),
                            _tile_grid(wl, m)[1], half_full, knob="tile_p")

    block = wl.params["out"][4]
    row = whole_blocks_first([c for c in fits if c["tile_rows"] == 1], block, target, pick,
                             half_full)
    if target.lanes < 16 or row["tile_oc"] != block:
        return row
    return max((c for c in fits if (c["tile_p"], c["tile_oc"]) == (row["tile_p"], block)),
               key=lambda c: c["tile_rows"])


def compute(wl, cfg: Config):
    return winograd.compute(wl, cfg["tile_m"], cfg["tile_p"])


def transform_weights(packed: np.ndarray, wl, cfg: Config) -> np.ndarray:
    return winograd.transform_weights(packed, wl.params["kernel_hw"], cfg["tile_m"])


def weight_compute(wl, cfg: Config):
    return winograd.weight_transform(wl.params["kernel"], cfg["tile_m"])


def weight_schedule(sch, wl, cfg: Config, target) -> None:
    """U = G g G^T for a (block, block) channel pair at a time, threads over those pairs, vectors
    over output channels; G g stays in registers (``weight_compute``)."""
    for const in ("Gh", "Gw"):
        sch.compute_inline(sch.get_sblock(const))
    u = sch.get_sblock("winograd_U")
    e, f, o, i, j, c, r = sch.get_loops(u)
    sch.reorder(o, i, j, e, f, r, c)
    sch.parallel(sch.fuse(o, i))
    gg = sch.get_sblock("winograd_Gg")
    sch.compute_at(gg, j, preserve_unit_loops=True)
    e2, l2, c2, r2 = sch.get_loops(gg)[-4:]
    sch.reorder(e2, l2, r2, c2)
    vector_reduction(sch, gg, c2, r2, (e2, l2, r2))
    vector_reduction(sch, u, c, r, (e, f, r))


def apply(sch, wl, cfg: Config, target) -> None:
    for const in ("Ah", "Bh", "Aw", "Bw"):
        sch.compute_inline(sch.get_sblock(const))
    # input transform: per (batch, channel block, tile row), both 1-D passes unrolled
    v = sch.get_sblock("winograd_V")
    e, f, b, ci, th, tw, ii, r2 = sch.get_loops(v)
    sch.reorder(b, ci, th, tw, e, f, r2, ii)
    parallel_if_worth(sch, sch.fuse(b, ci, th), wl)
    tmp = sch.get_sblock("winograd_tmp")
    sch.compute_at(tmp, tw, preserve_unit_loops=True)
    te_, c2, tii, r1 = sch.get_loops(tmp)[-4:]
    sch.reorder(te_, c2, r1, tii)
    for block, (lp_a, lp_b, lp_r, lane) in ((tmp, (te_, c2, r1, tii)), (v, (e, f, r2, ii))):
        vector_reduction(sch, block, lane, lp_r, (lp_a, lp_b, lp_r))
    # the a_h x a_w channel GEMMs with a register tile
    gemm = sch.get_sblock("winograd_gemm")
    store = sch.cache_write(gemm, 0, "local")
    e, f, b, co, th, tw, oi, rco, rci = sch.get_loops(gemm)
    tho, thi = sch.split(th, [None, cfg["tile_rows"]])
    two, twi = sch.split(tw, [None, cfg["tile_p"]])
    oo, oin = sch.split(oi, [None, cfg["tile_oc"]])
    sch.reorder(e, f, b, co, tho, two, oo, rco, rci, thi, twi, oin)
    taps = sch.fuse(e, f, b, co)
    parallel_if_worth(sch, taps, wl)
    sch.reverse_compute_at(store, oo, preserve_unit_loops=True)
    sch.vectorize(sch.get_loops(store)[-1])
    vector_reduction(sch, gemm, oin, rco, (thi, twi))
    # each thread's next (tap, output-channel block) of weights arrives while this one's serve
    # every tile row: a few lines per input-channel block
    prefetch.mark_next(sch, taps, rco, "kernel")
    # inverse transform per output tile, straight into the epilogue
    ep = sch.get_sblock("epilogue")
    b, co, y, x, oi = sch.get_loops(ep)
    # a dilated conv's tiles interleave: d x d of them cover an (m d) x (m d) block of outputs
    (ty, hi), (tx, wi) = (sch.split(axis, [None, t * d])
                          for axis, (t, _, d) in zip((y, x), winograd.axes(wl, cfg["tile_m"])))
    sch.reorder(b, co, ty, tx, hi, wi, oi)
    parallel_if_worth(sch, sch.fuse(b, co, ty), wl)
    out = sch.get_sblock("winograd_out")
    otmp = sch.get_sblock("winograd_otmp")
    sch.compute_at(out, tx, preserve_unit_loops=True)
    sch.compute_at(otmp, tx, preserve_unit_loops=True)
    for block in (otmp, out):
        *spatial, red = sch.get_loops(block)[-4:]
        lane = spatial[-1]
        sch.reorder(*spatial[:-1], red, lane)
        vector_reduction(sch, block, lane, red, (*spatial[:-1], red))
    sch.vectorize(oi)
    sch.unroll(wi)
    schedule_pad(sch, target, inline=cfg["inline_pad"])
