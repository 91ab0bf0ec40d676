"""A 1x1 conv fused with the depthwise conv that reads it (``layers.pointwise_depthwise``).

Threads take (output-channel block, band of output rows) units. Per unit the 1x1 conv computes
the rows of that channel block of the widened map the band reads (a band's halo rows twice) into
a buffer that stays in cache, with the direct template's register tile (``pw_tile_h`` rows x
``pw_tile_w`` pixels x ``tile_oc`` channels, FMA over the input channels); then the depthwise
conv filters it with the depthwise template's loops, each tap testing for the padding
(``inline_pad``; padding each output row's input rows from the buffer instead made MobileNetV2's
and EfficientNet-B0's pairs 1.04-1.67x slower alone). End to end against the two kernels
(interleaved A/B, BENCHMARKS.md, before ``inline_pad``): MobileNetV2 1.05-1.09x (AVX2
1.04-1.06x), EfficientNet-B0 1.06-1.07x, MnasNet 1.02-1.08x. The opposite pair, a depthwise
conv fused into the 1x1 conv it feeds, was tried before and lost (BENCHMARKS.md, "In the
network"): there the small map is the one kept in cache."""

from __future__ import annotations

from ...config import Config, Space, divisors
from ...layers import pointwise_depthwise
from . import conv2d, depthwise
from .common import (
    inline_pad_default,
    inline_pad_values,
    parallel_if_worth,
    prefer_exact,
    round_up,
    tile_widths,
)

NAME = "pointwise_depthwise"
KINDS = ("pointwise_depthwise",)
MAX_BANDS = 8
# Fused only on maps this large. Interleaved A/B against the unfused network (AVX-512), fusing
# every pair / only those of 28x28 and up: MobileNetV3-Large 0.996x / 1.026x, EfficientNet-B0
# 0.89x / 1.06x, MnasNet 1.02x / 1.03x, MobileNetV2 1.08x / 1.08x. The 14x14 pairs have few
# units for the threads (a band of 14 rows recomputes too many halo rows to be split), and
# their widened maps stay in L2 unfused anyway. 20x20 is the geometric mean of 14x14 and 28x28.
MIN_PIXELS = 20 * 20
# The widened rows one unit computes should stay in L2 (512 KB per core on Zen 3, 1-2 MB on
# later cores) while the depthwise conv reads them: a band of MobileNetV2's 96x112x112 map in
# 32-channel blocks is 1.6 MB whole, 0.4 MB in 4 bands (4 and 2 bands ran alike on Zen 5).
BAND_BYTES = 1 << 19


def compute(wl, cfg):
    return pointwise_depthwise.compute(wl, round_up(wl.parts()[1].params["out"][3], cfg["tile_w"]))


def _pointwise_tiles(wl, target) -> list[tuple[int, int, int]]:
    """(pw_tile_h, pw_tile_w, tile_oc) register tiles of the 1x1 conv that fit the registers, as
    ``conv2d``'s: pixel counts dividing the widened map's width (its rows are stored whole)."""
    _, _, h, w, ob = wl.parts()[0].params["out"]
    lanes, regs = target.lanes, target.registers
    return [(th, tw, oc) for th in divisors(h, 4) for tw in divisors(w, 16)
            for oc in conv2d.channel_tiles(ob, lanes)
            if (th * tw + 1) * -(-oc // lanes) + 1 <= regs]


def applicable(wl, target) -> bool:
    """On maps of MIN_PIXELS or more, where the 1x1 conv gets a register tile of at least 4
    pixels (a prime width such as 53 would leave it 1-pixel tiles), and the depthwise windows
    leave no row or column unread (a stride past the window, 2x2 taps every 3 pixels, is a
    compute_at s_tir refuses)."""
    pointwise, depthwise = wl.parts()
    _, _, h, w, _ = pointwise.params["out"]
    p = depthwise.params
    covered = all(s <= (k - 1) * d + 1
                  for s, k, d in zip(p["strides"], p["kernel_hw"], p["dilations"]))
    return (covered and h * w >= MIN_PIXELS
            and any(tw >= 4 for _, tw, _ in _pointwise_tiles(wl, target)))


def space(wl, target) -> Space:
    _, _, oh, ow, ob = wl.parts()[1].params["out"]
    vecs = -(-ob // target.lanes)
    tiles = _pointwise_tiles(wl, target)
    return Space({"bands": divisors(oh, MAX_BANDS), "tile_w": tile_widths(ow),
                  "unroll_taps": [0, 1],
                  "inline_pad": inline_pad_values(wl.parts()[1].params),
                  "pw_tile_h": sorted({t[0] for t in tiles}),
                  "pw_tile_w": sorted({t[1] for t in tiles}),
                  "tile_oc": sorted({t[2] for t in tiles})},
                 lambda c: (c["pw_tile_h"], c["pw_tile_w"], c["tile_oc"]) in tiles
                 and (c["pw_tile_h"] == 1 or c["bands"] == 1)  # a band's rows: any count
                 and c["tile_w"] * vecs <= target.registers - 4)


def _bands(wl, threads: int) -> int:
    """Bands for the least work on the busiest thread: units per thread x widened rows per unit
    (a band recomputes its halo rows: 7 bands of a 7-row map triple the 1x1 conv, 0.4x on
    ShuffleNetV2's 232-channel pairs). Of the least, one whose rows fit BAND_BYTES, then the
    fewest. Nearly-least is not enough: 1 band of EfficientNet-B0's 9 blocks of 50x66 (5 units
    on one thread, 4 on the other) ran 0.94x the two kernels, 2 bands 1.12x."""
    pointwise, depthwise = wl.parts()
    _, blocks, oh, _, _ = depthwise.params["out"]
    _, _, h, w, ob = pointwise.params["out"]
    kh, sh, dh = (depthwise.params[k][0] for k in ("kernel_hw", "strides", "dilations"))

    def rows(bands):
        return min(h, (oh // bands - 1) * sh + (kh - 1) * dh + 1)

    def cost(bands):
        return -(-blocks * bands // threads) * rows(bands)

    options = divisors(oh, MAX_BANDS)
    least = [b for b in options if cost(b) == min(map(cost, options))]
    fit = [b for b in least if rows(b) * w * ob * 4 <= BAND_BYTES]
    return (fit or least)[0]


def default(wl, target) -> Config:
    """Bands by ``_bands``; the depthwise row tile as the depthwise template's default (at most 8
    pixels, taps unrolled, the padding inlined); the 1x1 conv's tile ranked as the direct
    template's default ranks its own: accumulators nearest half the registers (more on a tie),
    whole channel blocks, fewer rows (one row per band when there are several bands)."""
    bands = _bands(wl, int(target.tvm.get("num-cores", 1)))
    ow = wl.parts()[1].params["out"][3]
    half, lanes = target.registers // 2, target.lanes

    def rank(t):
        acc = t[0] * t[1] * -(-t[2] // lanes)
        return (-abs(acc - half), acc, t[2], -t[0])

    tile = max((t for t in _pointwise_tiles(wl, target) if bands == 1 or t[0] == 1), key=rank)
    inline = inline_pad_default(wl.parts()[1].params)
    fits = [c for c in space(wl, target) if c["bands"] == bands and c["unroll_taps"]
            and c["inline_pad"] == inline
            and (c["pw_tile_h"], c["pw_tile_w"], c["tile_oc"]) == tile]
    narrow = [c for c in fits if c["tile_w"] <= 8] or fits
    return prefer_exact(narrow, lambda cs: max(cs, key=lambda c: c["tile_w"]), ow,
                        lambda c: c["tile_w"] >= 4)


def apply(sch, wl, cfg: Config, target) -> None:
    out = sch.get_sblock("epilogue")
    n, oc, y, x, oi = sch.get_loops(out)
    band, y = sch.split(y, [cfg["bands"], None])
    xo, xi = sch.split(x, [None, cfg["tile_w"]])
    sch.reorder(n, oc, band, y, xo, xi, oi)
    unit = sch.fuse(n, oc, band)
    parallel_if_worth(sch, unit, wl)
    # the depthwise conv: a row tile of pixels x the channel block, reading the buffer
    depthwise.row_tiles(sch, xo, xi, oi, y, cfg["unroll_taps"],
                        "inline" if cfg["inline_pad"] else "rows", target)
    # the 1x1 conv: the unit's rows of the widened block, in register tiles
    widened = sch.get_sblock("widened")
    sch.compute_at(widened, unit, preserve_unit_loops=True)
    wy, wx, wo = sch.get_loops(widened)[-3:]
    wyo, wyi = sch.split(wy, [None, cfg["pw_tile_h"]])
    wxo, wxi = sch.split(wx, [None, cfg["pw_tile_w"]])
    woo, woi = sch.split(wo, [None, cfg["tile_oc"]])
    sch.reorder(wyo, wxo, woo, wyi, wxi, woi)
    conv2d.register_tile(sch, sch.get_sblock("conv2d_NCHWc"), woo, woi, wxi, reduce_outer=True,
                         unroll_kw=False)
