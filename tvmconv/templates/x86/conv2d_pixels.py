"""Direct convolution to a few output channels (an image-to-image net's last conv to RGB, a
depth or mask head), plain NCHW in and out: the vector lanes run along a row of output pixels and
each weight is broadcast. conv2d_direct's lanes run over output channels instead, so 3 channels
filled 3 of AVX-512's 16 lanes: CycleGAN's last 7x7 conv (16 -> 3 channels) ran at 82 GFLOP/s.

The register tile is ``tile_oc`` channels x ``tile_w`` pixels (whole vectors); each step loads the
tile's input vectors once and FMAs each into every channel's accumulators. The layout pass gives a
conv plain input and output when its channels fill less than half a vector (``passes.layout``);
a row that is no multiple of the tile is computed over whole tiles, its input padded to match.
"""

from __future__ import annotations

from ...config import Config, Space, divisors
from ...layers import conv2d
from .common import parallel_if_worth, round_up, schedule_pad

NAME = "conv2d_pixels"
KINDS = ("conv2d",)
MAX_VECTORS = 4  # input vectors per tile row: more leaves too few registers for the channels


def compute(wl, cfg):
    """Over whole row tiles, the input padded as wide as they read."""
    return conv2d.compute(wl, out_w=round_up(wl.params["out"][3], cfg["tile_w"]),
                          pad_columns=True)


def applicable(wl, target) -> bool:
    p = wl.params
    return (p["groups"] == 1 and p["data"][4] == 1 and p["out"][4] == 1
            and p["strides"][1] == 1 and p["out"][3] >= target.lanes)


def _vectors(cfg: Config, lanes: int) -> int:
    return cfg["tile_w"] // lanes


def space(wl, target) -> Space:
    """Tiles whose accumulators (channels x vectors), input vectors and one broadcast weight fit
    the vector registers."""
    lanes, oc, ow = target.lanes, wl.params["out"][1], wl.params["out"][3]
    widths = [v * lanes for v in range(1, MAX_VECTORS + 1) if (v - 1) * lanes < ow]
    knobs = {"tile_w": widths, "tile_oc": divisors(oc, 16),
             "unroll_kw": [0, 1] if wl.params["kernel_hw"][1] > 1 else [0]}
    return Space(knobs, lambda c: (c["tile_oc"] + 1) * _vectors(c, lanes) + 1 <= target.registers)


def default(wl, target) -> Config:
    """The most accumulators, then the least wasted row (columns past the edge)."""
    ow = wl.params["out"][3]

    def rank(c):
        return (c["tile_oc"] * _vectors(c, target.lanes), -round_up(ow, c["tile_w"]),
                c["tile_oc"], c["unroll_kw"])
    return max(space(wl, target), key=rank)


def apply(sch, wl, cfg: Config, target) -> None:
    ep = sch.get_sblock("epilogue")
    conv = sch.get_sblock("conv2d_NCHWc")
    n, oc, y, x, oi = sch.get_loops(ep)
    oco, oci = sch.split(oc, [None, cfg["tile_oc"]])
    xo, xi = sch.split(x, [None, cfg["tile_w"]])
    sch.reorder(n, oco, y, xo, oci, oi, xi)
    parallel_if_worth(sch, sch.fuse(n, oco, y), wl)
    sch.compute_at(conv, xo, preserve_unit_loops=True)
    cn, coc, cy, cx, coi, rco, rkh, rkw, rci = sch.get_loops(conv)[-9:]
    sch.reorder(cn, cy, coi, rco, rkh, rkw, rci, coc, cx)
    sch.vectorize(cx)
    for loop in ((coc, rkw) if cfg["unroll_kw"] else (coc,)):
        sch.unroll(loop)
    init = sch.decompose_reduction(conv, rco)
    sch.vectorize(sch.get_loops(init)[-1])
    sch.vectorize(xi)
    schedule_pad(sch, target)
