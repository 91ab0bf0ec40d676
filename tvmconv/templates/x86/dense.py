"""Dense and batched matmul: vectors over packed output columns, rows of the left operand in registers.

At batch 1 a classifier layer streams its weights once (memory bound), so the knobs mostly pick how many
column blocks each thread owns and how far the reduction is unrolled.
"""

from __future__ import annotations

from ...config import Config, Space, divisors
from .common import parallel_if_worth, registers, vector_tile

NAME = "dense_packed"
KINDS = ("dense", "matmul")


def _cols(wl) -> int:
    return wl.params["kernel"][2] if wl.kind == "dense" else wl.params["out"][-1]


def space(wl, target) -> Space:
    rows = wl.params["out"][-2]
    cols = _cols(wl)
    budget = registers(target) - 4
    vec_opts = [d for d in divisors(cols, 4 * target.lanes) if d % target.lanes == 0 or d == cols]
    knobs = {"tile_m": divisors(rows, 8), "tile_n": vec_opts or [cols],
             "unroll_k": [1, 4, 8]}
    return Space(knobs, lambda c: c["tile_m"] * -(-c["tile_n"] // target.lanes) <= budget)


def default(wl, target) -> Config:
    cols = _cols(wl)
    tile_n = vector_tile(cols, target.lanes, 2 * target.lanes)
    rows = wl.params["out"][-2]
    budget = registers(target) - 6
    tile_m = max(d for d in divisors(rows, 8) if d * -(-tile_n // target.lanes) <= max(budget, 1))
    return Config.of({"tile_m": tile_m, "tile_n": tile_n, "unroll_k": 4})


def apply(sch, wl, cfg: Config, target) -> None:
    ep = sch.get_sblock("epilogue")
    core = sch.get_sblock(wl.kind)
    loops = sch.get_loops(ep)
    batch, i, j = loops[:-2], loops[-2], loops[-1]
    io, ii = sch.split(i, [None, cfg["tile_m"]])
    jo, ji = sch.split(j, [None, cfg["tile_n"]])
    sch.reorder(*batch, io, jo, ii, ji)
    outer = sch.fuse(*batch, io, jo)
    parallel_if_worth(sch, outer, wl)
    sch.compute_at(core, outer, preserve_unit_loops=True)
    cii, cji, k = sch.get_loops(core)[-3:]
    ko, ki = sch.split(k, [None, cfg["unroll_k"]]) if _k(wl) % cfg["unroll_k"] == 0 else (k, None)
    sch.reorder(ko, *([ki] if ki is not None else []), cii, cji)
    sch.vectorize(cji)
    sch.unroll(cii)
    if ki is not None:
        sch.unroll(ki)
    init = sch.decompose_reduction(core, ko)
    sch.vectorize(sch.get_loops(init)[-1])
    sch.vectorize(ji)


def _k(wl) -> int:
    return wl.params["data"][1] if wl.kind == "dense" else wl.params["a"][-1]
