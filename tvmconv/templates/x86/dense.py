"""Dense and batched matmul: vectors over packed output columns,
rows of the left operand in registers.

At batch 1 a classifier layer streams its weights once, and one accumulator per column block would
make each FMA wait for the last (4-cycle latency): a tile of several column blocks keeps independent
accumulator chains in flight. Measured on Zen (AVX-512): LeNet-5's 400x120 layer ran 19 GFLOP/s with
one 8-lane chain.
"""

from __future__ import annotations

from ...config import Config, Space, divisors
from .common import parallel_if_worth, prod, vector_reduction

NAME = "dense_packed"
KINDS = ("dense", "matmul")
CHAINS = 8  # accumulators the default keeps in flight


def _block(wl) -> int | None:
    """The packed weight block (dense) - column tiles must be its multiples or divisors."""
    return wl.params["kernel"][2] if wl.kind == "dense" else None


def _vec(wl, tile_n: int) -> int:
    block = _block(wl)
    return min(tile_n, block) if block else tile_n


def _regs(wl, cfg: Config, lanes: int) -> int:
    vec = _vec(wl, cfg["tile_n"])
    return cfg["tile_m"] * (cfg["tile_n"] // vec) * -(-vec // lanes)


def space(wl, target) -> Space:
    rows, cols = wl.params["out"][-2], wl.params["out"][-1]
    block = _block(wl)
    tiles = [d for d in divisors(cols, 8 * target.lanes)
             if block is None or d % block == 0 or block % d == 0]
    budget = target.registers - 4
    knobs = {"tile_m": divisors(rows, 8), "tile_n": tiles, "unroll_k": [1, 4, 8],
             "cols_outer": [0, 1] if rows > 1 and cols > 1 else [0]}
    return Space(knobs, lambda c: _regs(wl, c, target.lanes) <= budget)


def _traffic(wl, cfg: Config) -> int:
    """Operand elements read from beyond the cache: the operand of the inner tile loop is read
    once, the other once per inner sweep (all of the weights for each tile of rows, or all of
    the rows for each tile of columns)."""
    batch = prod(wl.params["out"][:-2])
    rows, cols = wl.params["out"][-2:]
    k = _k(wl)
    left, right = rows * k, k * cols
    if cfg["cols_outer"]:
        return batch * (right + cols // cfg["tile_n"] * left)
    return batch * (left + rows // cfg["tile_m"] * right)


def default(wl, target) -> Config:
    """Whole packed blocks and as many accumulators as CHAINS allows; with many rows (a GEMM:
    ConvNeXt's Linear layers over every pixel) about half the registers, like the direct conv's
    tile. Of those, the tallest tile: each weight vector then serves more rows (ConvNeXt's tuning
    log: 7 rows x 2 vectors ran 1.4x faster than 2 rows x 8 vectors on 784 x 192 and 196 x 384).
    Then the loop order that reads the least: tiles of rows outermost streamed all of ConvNeXt's
    3072 x 768 weights (9.4 MB) once per 4 rows (49 x 768 at 108 GFLOP/s)."""
    rows = wl.params["out"][-2]
    chains = CHAINS if rows < 4 else target.registers // 2
    ok = [c for c in space(wl, target) if _regs(wl, c, target.lanes) <= chains
          and c["unroll_k"] == 4]
    return max(ok, key=lambda c: (c["tile_n"] >= (_block(wl) or 1), _regs(wl, c, target.lanes),
                                  c["tile_m"], -_traffic(wl, c), c["tile_n"]))


def apply(sch, wl, cfg: Config, target) -> None:
    ep = sch.get_sblock("epilogue")
    core = sch.get_sblock(wl.kind)
    loops = sch.get_loops(ep)
    batch, i, j = loops[:-2], loops[-2], loops[-1]
    io, ii = sch.split(i, [None, cfg["tile_m"]])
    jo, ji = sch.split(j, [None, cfg["tile_n"]])
    first, second = (jo, io) if cfg["cols_outer"] else (io, jo)
    sch.reorder(*batch, first, second, ii, ji)
    outer = sch.fuse(*batch, first, second)
    parallel_if_worth(sch, outer, wl)
    sch.compute_at(core, outer, preserve_unit_loops=True)
    cii, cji, k = sch.get_loops(core)[-3:]
    vec = _vec(wl, cfg["tile_n"])
    cjt, cjv = sch.split(cji, [None, vec])
    ko, ki = sch.split(k, [None, cfg["unroll_k"]]) if _k(wl) % cfg["unroll_k"] == 0 else (k, None)
    sch.reorder(ko, *([ki] if ki is not None else []), cii, cjt, cjv)
    vector_reduction(sch, core, cjv, ko, (cjt, cii) if ki is None else (cjt, cii, ki))
    sch.vectorize(sch.split(ji, [None, vec])[1])


def _k(wl) -> int:
    return wl.params["data"][1] if wl.kind == "dense" else wl.params["a"][-1]
