"""Loop helpers shared by the CPU templates."""

from __future__ import annotations

from ...config import divisors
from ...layers import conv2d

# Below this many output elements, or this much arithmetic, a parallel region costs more than it
# saves (waking TVM's workers takes a few microseconds; LeNet-5's kernels run for 1-12 us each).
PARALLEL_MIN = 1 << 13
PARALLEL_MIN_FLOPS = 2e6
PARALLEL_MIN_OUTPUTS = 1 << 15  # a kernel writing this many outputs is worth threads at any flops
# vectors: a row this long reduces in lanes (``lane_partials``) even when its last vector is
# partly masked; summed across rows instead it is one serial sum, slow and inexact
LONG_ROW = 8
# Zen 3's L1 data cache per core, and its two cores' L2 together (512 KiB each)
L1_BYTES, L2_BYTES = 32 << 10, 1 << 20


def thread_orders(wl, either: bool) -> list[int]:
    """The values of a knob that puts threads over output-channel blocks (0) or over the input's
    rows or pixel tiles (1); ``either``: whether both split the work. Only the input where it
    outgrows L2 and the weights do not: over blocks each thread streams all of the input from
    L3, which the tuner, timing kernels alone, cannot see. Inside ResNet-50 on a Zen 5,
    alternating, its 256x56x56 -> 64 convs (3 MB in, 64 KB of weights) ran 0.91-0.97x the time
    over pixel tiles in a quiet phase of the machine and 0.56x in a busy one; alone the two tied
    (200 us), and the tuning log had picked channel blocks. A grouped conv's block reads only
    its group's share of the input: that share is what must outgrow L2."""
    if not either:
        return [0]
    inputs, weights = (4 * prod(wl.params[k]) for k in ("data", "kernel"))
    share = inputs // wl.params.get("groups", 1)
    return [1] if share > L2_BYTES >= weights else [0, 1]


def parallel_if_worth(sch, loop, wl) -> None:
    """Threads when there is enough arithmetic, or enough output to write (a depthwise conv does
    18 flops per output: MobileNetV2's 384x14x14 ones ran 18 us on one core)."""
    outputs = prod(wl.parts()[-1].params["out"])
    if ((wl.flops() >= PARALLEL_MIN_FLOPS or outputs >= PARALLEL_MIN_OUTPUTS)
            and extent(sch, loop) > 1):
        sch.parallel(loop)


# A row tile need not divide the width: the conv is then computed over whole tiles (columns past
# the edge re-read the last real input column) and only the real columns are stored. Offered
# when the width has no divisor from 4 to 8 (a prime width such as 53 would otherwise get
# 1-pixel tiles: 2.6x slower on AVX2), at most this much extra work.
MAX_RAGGED_WASTE = 1.15


def tile_widths(width: int, limit: int = 16, ragged: bool = False,
                max_waste: float = MAX_RAGGED_WASTE) -> list[int]:
    """Pixels per register row tile: the divisors of ``width``, and, when none from 4 to 8
    exists (or ``ragged`` asks for them anyway), every width whose last tile wastes little
    (computes at most ``max_waste`` pixels per pixel stored)."""
    exact = divisors(width, limit)
    if any(4 <= d <= 8 for d in exact) and not ragged:
        return exact
    ragged = [w for w in range(2, min(width, limit) + 1)
              if round_up(width, w) / width <= max_waste]
    return sorted(set(exact) | set(ragged))


def prefer_exact(configs: list, best, width: int, enough, knob: str = "tile_w"):
    """``best`` of the configs whose row tile (``knob``) divides ``width`` when that tile has at
    least ``enough(config)`` (accumulators, pixels), else ``best`` of all: a ragged last tile
    costs wasted work, so it is the fallback for widths without a useful divisor."""
    exact = [c for c in configs if width % c[knob] == 0]
    pick = best(exact) if exact else None
    return pick if pick is not None and enough(pick) else best(configs)


def whole_blocks_first(configs: list, block: int, target, pick, enough):
    """``pick`` of the configs whose channel tile is the whole block when that tile is ``enough``
    (accumulators), else ``pick`` of all. With 16 registers (AVX2, armv7) a block is two vectors,
    and half of it loads one weight vector and one broadcast per FMA; with 32 a block is kept
    whole or not as ``pick`` ranks it."""
    whole = [c for c in configs if c["tile_oc"] == block] if target.registers == 16 else []
    tile = pick(whole) if whole else None
    return tile if tile is not None and enough(tile) else pick(configs)


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def row_tiled_compute(wl, cfg):
    """A conv's compute over whole row tiles of ``cfg["tile_w"]`` pixels (see ``tile_widths``)."""
    return conv2d.compute(wl, out_w=round_up(wl.params["out"][3], cfg["tile_w"]))


def vector_tile(extent: int, lanes: int, limit: int = 64) -> int:
    """The largest divisor of ``extent`` up to ``limit`` that fills whole vectors,
    else any divisor."""
    whole = [d for d in divisors(extent, limit) if d % lanes == 0]
    return max(whole) if whole else max(divisors(extent, limit))


def prod(xs) -> int:
    n = 1
    for x in xs:
        n *= int(x)
    return n


def extent(sch, loop) -> int:
    return int(sch.get(loop).extent)


def flat_parallel_vectorize(sch, block, lanes: int, vec: int | None = None) -> None:
    """Fuse all spatial loops of a block, vectorise a divisor-sized tail, parallelise the rest."""
    loops = sch.get_loops(block)
    if not loops:
        return  # a scalar
    total = prod(extent(sch, lp) for lp in loops)
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    vec = vec or vector_tile(total, lanes, 4 * lanes)
    if vec > 1:
        outer, inner = sch.split(fused, [None, vec])
        sch.vectorize(inner)
    else:
        outer = fused
    if total >= PARALLEL_MIN and total // vec > 1:
        sch.parallel(outer)


def vector_reduction(sch, block, lane, first_reduce, unroll=()) -> None:
    """Vectorise a reduction block's lane loop, unroll the given loops, split its initialisation off
    at the first reduction loop and vectorise that too. The order is s_tir's: once the update block
    is split from its init, its loops can no longer be vectorised or parallelised."""
    sch.vectorize(lane)
    for loop in unroll:
        sch.unroll(loop)
    init = sch.decompose_reduction(block, first_reduce)
    sch.vectorize(sch.get_loops(init)[-1])


def has_block(sch, name: str) -> bool:
    from tvm.s_tir import ScheduleError

    try:
        sch.get_sblock(name)
    except ScheduleError:  # s_tir's answer for "no block of that name"
        return False
    return True


def accumulator_aim(target, spanning: bool) -> int:
    """The accumulators a register tile aims at: half the registers; with 32, two fewer for a tile
    spanning blocks of one vector or less, which loads a weight vector per block (on a Zen 5,
    alone, 80 channels x 3 px ran 12-22% faster than 80 x 4, and 32 x 7 up to 13% faster than
    32 x 8)."""
    half = target.registers // 2
    return half - 2 if spanning and target.registers > 16 else half


def inline_pad_values(params) -> list[int]:
    """The values of an ``inline_pad`` knob (see ``schedule_pad``): offered where the layer pads."""
    return [0, 1] if any(params["pads"]) else [0]


def inline_pad_default(params) -> int:
    """Every template's default ``inline_pad``: on wherever the layer pads."""
    return max(inline_pad_values(params))


def schedule_pad(sch, target, name="pad", inline: bool = False) -> None:
    """Materialise a padding stage (when the workload pads): threads over (batch, channel block,
    row), vectors along the row. Fusing every axis instead costs a div/mod per element in the
    bounds test: ResNet-18's max-pool padding took 0.9 ms that way. With ``inline``, store no
    padding: each load tests whether it reads the padding, a test on rows and columns that LLVM
    takes out of the vector loops over channels (the templates' ``inline_pad`` knobs)."""
    if not has_block(sch, name):
        return
    block = sch.get_sblock(name)
    if inline:
        sch.compute_inline(block)
        return
    loops = sch.get_loops(block)
    total = prod(extent(sch, lp) for lp in loops)
    outer = sch.fuse(*loops[:3])
    _vectorize_copy(sch, sch.fuse(*loops[3:]) if len(loops) > 4 else loops[3], target)
    if total >= PARALLEL_MIN:
        sch.parallel(outer)


def pad_rows_at(sch, loop, target, name="pad") -> None:
    """Pad only the input rows that an output row reads, inside its (parallel) row loop: they stay
    in L1 for the window that reads them at once, where a padded copy of the whole input had gone
    out to L3 and back (the stem's max pool in ResNets)."""
    if not has_block(sch, name):
        return
    block = sch.get_sblock(name)
    sch.compute_at(block, loop)
    loops = sch.get_loops(block)
    own = loops[[sch.get(lp) for lp in loops].index(sch.get(loop)) + 1:]
    _vectorize_copy(sch, sch.fuse(*own[-2:]), target)  # a row's pixels, or their blocks, as one


def _vectorize_copy(sch, inner, target) -> None:
    """A padding copy's innermost loop in vectors of up to four registers."""
    vec = vector_tile(extent(sch, inner), target.lanes, 4 * target.lanes)
    if vec > 1:
        sch.vectorize(sch.split(inner, [None, vec])[1])


def lane_partials(sch, block, lanes: int, parallel: bool) -> None:
    """Reduce a row (the block's reduction loops, fused) in vector lanes (rfactor: ``lanes`` partial
    results, each summing every lanes-th element), then one short sum across the lanes. Vectors
    across rows instead read one element per row per lane: LayerNorm over 3136 x 96 took 0.22 ms
    so, 0.045 ms like this."""
    loops = sch.get_loops(block)
    n_spatial = sum(iv.iter_type == 0 for iv in sch.get(block).iter_vars)
    spatial, reds = loops[:n_spatial], loops[n_spatial:]
    red = sch.fuse(*reds) if len(reds) > 1 else reds[0]  # an instance norm's H and W
    rows = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
    _, part = sch.split(red, [None, lanes])
    partial = sch.rfactor(part, len(spatial))  # lanes last: each row's partials contiguous
    row, step, lane = sch.get_loops(partial)
    if parallel:
        sch.parallel(row)
    sch.vectorize(lane)
    init = sch.decompose_reduction(partial, step)
    sch.vectorize(sch.get_loops(init)[-1])
    if parallel:
        sch.parallel(rows)
