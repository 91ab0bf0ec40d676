"""Direct NCHW[x]c convolution: a register-blocked micro-kernel (1x1 convs included).

The output tile of ``tile_h x tile_w`` pixels x ``tile_oc`` channels stays in vector registers while
the reduction runs over input-channel blocks, kernel rows and columns, and the input-channel lanes;
each step broadcasts one input value and FMAs it into ``tile_oc / lanes`` accumulators per pixel.
The epilogue (bias, activation, residual) is applied to the tile on its way out. Measured on Zen 3
(AVX2): 4 px x 16 ch reached 133 GFLOP/s on ResNet-18's 64->64 3x3 layer; 7 x 16 spilled
registers (76).
"""

from __future__ import annotations

from ...config import Config, Space, divisors
from .common import parallel_if_worth, registers, schedule_pad

NAME = "conv2d_direct"
KINDS = ("conv2d",)


def _acc_regs(cfg: Config, lanes: int) -> int:
    return cfg["tile_h"] * cfg["tile_w"] * -(-cfg["tile_oc"] // lanes)


def space(wl, target) -> Space:
    p = wl.params
    _, _, oh, ow, ob = p["out"]
    lanes, budget = target.lanes, registers(target) - 4
    oc_tiles = [d for d in divisors(ob) if d % lanes == 0 or d == ob] or [ob]
    knobs = {
        "tile_w": divisors(ow, 16),
        "tile_h": divisors(oh, 4),
        "tile_oc": oc_tiles,
        "unroll_kw": [0, 1] if p["kernel_hw"][1] > 1 else [0],
        "reduce_outer": [0, 1],
    }
    return Space(knobs, lambda c: _acc_regs(c, lanes) <= budget)


def default(wl, target) -> Config:
    """The biggest register tile within half the register file, whole channel blocks, rows of
    about 4 pixels. Measured on AVX-512 (Zen): 16 accumulators (2 rows x 4 px x 32 ch) ran ResNet's
    7x7/2 stem at 490 GFLOP/s where 28 (1 x 14 x 32) spilled and ran 298."""
    half = registers(target) // 2
    return max((c for c in space(wl, target) if _acc_regs(c, target.lanes) <= half), key=lambda c: (
        _acc_regs(c, target.lanes), c["tile_oc"], -abs(c["tile_w"] - 4), c["unroll_kw"],
        -c["reduce_outer"]))


def apply(sch, wl, cfg: Config, target) -> None:
    ep = sch.get_sblock("epilogue")
    conv = sch.get_sblock("conv2d_NCHWc")
    n, oc, y, x, oi = sch.get_loops(ep)
    yo, yi = sch.split(y, [None, cfg["tile_h"]])
    xo, xi = sch.split(x, [None, cfg["tile_w"]])
    oo, oin = sch.split(oi, [None, cfg["tile_oc"]])
    sch.reorder(n, oc, yo, xo, oo, yi, xi, oin)
    outer = sch.fuse(n, oc, yo)
    parallel_if_worth(sch, outer, wl)
    sch.compute_at(conv, oo, preserve_unit_loops=True)
    cyi, cxi, coi, rco, rkh, rkw, rci = sch.get_loops(conv)[-7:]
    if cfg["reduce_outer"]:
        # input-channel blocks outermost: the weights for one tile stream once per block
        sch.reorder(rco, rkh, rkw, rci, cyi, cxi, coi)
    else:
        sch.reorder(rkh, rco, rkw, rci, cyi, cxi, coi)
    sch.vectorize(coi)
    sch.unroll(cxi)
    sch.unroll(cyi)
    if cfg["unroll_kw"]:
        sch.unroll(rkw)
    init = sch.decompose_reduction(conv, rco if cfg["reduce_outer"] else rkh)
    sch.vectorize(sch.get_loops(init)[-1])
    sch.vectorize(oin)
    sch.unroll(xi)
    schedule_pad(sch, target)
