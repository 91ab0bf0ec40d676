"""Depthwise NCHW[x]c convolution: vectors over the channel block, a row of pixels in registers.

Each output pixel reads only its own channel, so the FMA has no reuse across channels: the tile is a
run of ``tile_w`` pixels x the channel block, with kernel taps unrolled.
"""

from __future__ import annotations

from ...config import Config, Space, divisors
from .common import parallel_if_worth, registers, schedule_pad, vector_reduction

NAME = "depthwise_direct"
KINDS = ("depthwise2d",)


def space(wl, target) -> Space:
    _, _, _, ow, ob = wl.params["out"]
    budget = registers(target) - 4
    vecs = -(-ob // target.lanes)
    return Space({"tile_w": divisors(ow, 16), "unroll_taps": [0, 1]},
                 lambda c: c["tile_w"] * vecs <= budget)


def default(wl, target) -> Config:
    return max(space(wl, target), key=lambda c: (c["tile_w"], c["unroll_taps"]))


def apply(sch, wl, cfg: Config, target) -> None:
    ep = sch.get_sblock("epilogue")
    conv = sch.get_sblock("depthwise_NCHWc")
    n, oc, y, x, oi = sch.get_loops(ep)
    xo, xi = sch.split(x, [None, cfg["tile_w"]])
    sch.reorder(n, oc, y, xo, xi, oi)
    parallel_if_worth(sch, sch.fuse(n, oc, y), wl)
    sch.compute_at(conv, xo, preserve_unit_loops=True)
    cxi, coi, rkh, rkw = sch.get_loops(conv)[-4:]
    sch.reorder(rkh, rkw, cxi, coi)
    vector_reduction(sch, conv, coi, rkh, (cxi, rkw, rkh) if cfg["unroll_taps"] else (cxi,))
    sch.vectorize(oi)
    sch.unroll(xi)
    schedule_pad(sch, target)
