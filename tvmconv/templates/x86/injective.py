"""Elementwise and data-movement kernels: one flat loop, a vector tail, threads over the rest."""

from __future__ import annotations

from ...config import Config, Space
from ...layers.transform import collapsed
from .common import extent, flat_parallel_vectorize, parallel_if_worth, prod, vector_tile

NAME = "injective_flat"
KINDS = ("elementwise", "transpose", "concat", "slice", "take", "pad", "resize", "depth_to_space",
         "space_to_depth", "layout_transform")


def _unblocks(wl) -> bool:
    """A layout transform from channel blocks to plain NCHW (a network's output, a plain op)."""
    p = wl.params
    return wl.kind == "layout_transform" and p["dst"] == 0 and p["src"] > 1


# bytes in a cache line (16 floats)
CACHE_LINE = 64


def _into_blocks(wl) -> bool:
    """A layout transform from plain NCHW into channel blocks (after a plain op)."""
    p = wl.params
    return wl.kind == "layout_transform" and p["src"] == 0 and p["dst"] > 1


def _reblocks(wl) -> bool:
    """A layout transform from one channel block size to another (around a grouped conv whose
    groups take narrower blocks: RegNet's groups of 24 channels in blocks of 8)."""
    p = wl.params
    return wl.kind == "layout_transform" and p["src"] > 1 and p["dst"] > 1


# L1 data caches repeat their sets every 4 KB (64 sets of 64-byte lines)
SET_STRIDE = 4096


def _into_blocks_along_rows(wl) -> bool:
    """Into blocks narrower than a cache line, or from planes a whole number of 4 KB long: then
    vectors run along rows (``_block``). A block of a cache line or more takes its vectors
    within the block, each lane read from another channel's plane: into 16-channel blocks that
    ran 1.1-1.8x faster than along rows in 4 of 6 cases, into 8-channel ones 1.1-3x slower in
    all 6 (AVX2 and AVX-512, 14x14 to 112x112). But planes a multiple of 4 KB apart put all the
    lanes of such a gather in one L1 set, more than it has ways: on planes of 32x32, 64x64, 96x96,
    128x128, 224x224 and 256x256, along rows ran 1.7-4.4x faster (AVX-512 and AVX2, 16- and
    32-channel blocks; a lone 32 -> 32 3x3 conv at 128x128 spent 0.44 ms of its 2.6 in the
    transform), where on 120x120 and 144x144 it ran 1.4-1.7x slower."""
    if not _into_blocks(wl):
        return False
    _, _, h, w, block = wl.params["out"]
    return block * 4 < CACHE_LINE or (h * w * 4) % SET_STRIDE == 0


def _span(wl) -> int:
    """How many output elements one vector step may cover: all of them, flattened, except where
    the source pixel of a blocked output changes from one output pixel to the next (a resize, a
    pixel shuffle, a reflection pad: a vector across pixels would gather), so vectors stay in a
    channel block, as they do from plain NCHW into wide blocks; and a row of pixels when
    unblocking or into narrow blocks (see ``_unblock`` and ``_block``). From blocks into blocks
    of another size, the smaller block: a run of channels contiguous on both sides (16 into 8
    over 408x14x14: 9 us so, 36 with vectors across pixels)."""
    out = wl.params["out"]
    if wl.kind == "take":  # the elements after the gathered axis are copied as one run
        return prod(out[wl.params["axis"] + 1:])
    moves = wl.kind in ("resize", "depth_to_space", "pad")
    if _into_blocks_along_rows(wl):
        return out[-2]
    if _reblocks(wl):
        return min(wl.params["src"], wl.params["dst"])
    if (moves and len(out) == 5) or _unblocks(wl) or _into_blocks(wl):
        return out[-1]
    if row := _row(wl):
        return row
    return _contiguous(out, wl.params["inputs"]) if wl.kind == "elementwise" else prod(out)


def _row(wl) -> int | None:
    """The last axis of a transpose, slice or concat over its fewest axes
    (``layers.transform.collapsed``) when it is copied whole and in order: each vector is a plain
    load and store within it. None otherwise."""
    if wl.kind not in ("transpose", "slice", "concat"):
        return None
    p = (collapsed(wl) or wl).params
    last = len(p["out"]) - 1
    whole = {"transpose": lambda: p["perm"][-1] == last, "slice": lambda: p["steps"][-1] == 1,
             "concat": lambda: p["axis"] != last}[wl.kind]()
    return p["out"][-1] if whole and last > 0 else None


def _contiguous(out, inputs) -> int:
    """Output elements over which each broadcast input is read contiguously or as one scalar: a
    per-channel gate against channel blocks stays within a block (a vector across pixels would
    gather the gate: 0.065 ms for 144x56x56 in 16-channel blocks, 0.011 ms within blocks)."""
    span, read = 1, [None] * len(inputs)  # per input so far: "full" or "one" (broadcast)
    for axis in range(1, len(out) + 1):
        if out[-axis] == 1:
            continue
        for k, shape in enumerate(inputs):
            d = shape[-axis] if axis <= len(shape) else 1
            state = "full" if d == out[-axis] else "one"
            if read[k] not in (None, state):
                return span
            read[k] = state
        span *= out[-axis]
    return span


def space(wl, target) -> Space:
    span = _span(wl)
    opts = sorted({vector_tile(span, target.lanes, v) for v in (target.lanes, 2 * target.lanes,
                                                                4 * target.lanes)})
    return Space({"vector": opts})


def default(wl, target) -> Config:
    """Two vectors per step; four for a transform into a block narrower than a vector (an RGB
    image into NCHW3c gathers from three planes: 224x224 took 0.025 ms so, 0.056 ms with two);
    a cache line from plain NCHW into wide blocks, each lane a gather (30 channels into a block
    of 32: 7.3 us so with AVX-512, 11.2 with two vectors)."""
    out = wl.params["out"]
    narrow = wl.kind == "layout_transform" and len(out) == 5 and out[-1] < target.lanes
    if _into_blocks(wl) and not _into_blocks_along_rows(wl):
        return Config.of({"vector": vector_tile(_span(wl), target.lanes, CACHE_LINE // 4)})
    return Config.of({"vector": vector_tile(_span(wl), target.lanes,
                                            (4 if narrow else 2) * target.lanes)})


def apply(sch, wl, cfg: Config, target) -> None:
    block = sch.get_sblock(wl.kind)  # each data-movement compute is named after its kind
    if _unblocks(wl):
        _unblock(sch, block, wl, cfg["vector"])
    elif _into_blocks_along_rows(wl):
        _block(sch, block, wl, cfg["vector"])
    elif _row(wl):
        _along_rows(sch, block, wl, cfg["vector"])
    else:
        flat_parallel_vectorize(sch, block, target.lanes, cfg["vector"])


def _along_rows(sch, block, wl, vec: int) -> None:
    """Vectors along the last axis only, threads over the rest. Flattened, TVM had to prove each
    vector within a row and often could not: ShuffleNet's 116x28x28 channel shuffle took 64 us
    in the network so."""
    *outer, last = sch.get_loops(block)
    lo, li = sch.split(last, [None, vec])
    rows = sch.fuse(*outer, lo)
    if extent(sch, rows) > 1:
        parallel_if_worth(sch, rows, wl)
    if vec > 1:
        sch.vectorize(li)


def _unblock(sch, block, wl, vec: int) -> None:
    """NCHW[b]c -> NCHW one channel block at a time: for a run of ``vec`` pixels, each channel's
    row is one vector store, its loads strided within the block's few cache lines. Flattened
    vectors instead gathered across blocks and rows: a 32-channel 112x112 output took 0.198 ms,
    0.034 like this."""
    n, c, h, w = sch.get_loops(block)
    cb, cl = sch.split(c, [None, wl.params["src"]])
    _rows_per_channel(sch, wl, vec, n, cb, h, w, cl)


def _block(sch, block, wl, vec: int) -> None:
    """NCHW -> NCHW[b]c, the converse of ``_unblock``: per channel of a block, a run of ``vec``
    pixels is one vector load along its row, stored ``b`` apart within the block's few cache
    lines. Flattened, each lane's index took divisions and its load a gather: 18 channels of
    112x112 into blocks of 8 took 0.09 ms so."""
    _rows_per_channel(sch, wl, vec, *sch.get_loops(block))


def _rows_per_channel(sch, wl, vec: int, n, cb, h, w, ci) -> None:
    """Threads over (batch, channel block, row); per channel of the block, vectors along the
    row."""
    wo, wi = sch.split(w, [None, vec])
    sch.reorder(n, cb, h, wo, ci, wi)
    parallel_if_worth(sch, sch.fuse(n, cb, h), wl)
    if vec > 1:
        sch.vectorize(wi)
