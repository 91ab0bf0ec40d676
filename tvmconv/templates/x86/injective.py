"""Elementwise and data-movement kernels: one flat loop, a vector tail, threads over the rest."""

from __future__ import annotations

from ...config import Config, Space
from .common import flat_parallel_vectorize, prod, vector_tile

NAME = "injective_flat"
KINDS = ("elementwise", "transpose", "concat", "slice", "pad", "resize", "depth_to_space",
         "space_to_depth", "layout_transform")


def _span(wl) -> int:
    """How many output elements one vector step may cover: all of them, flattened, except where
    the source pixel of a blocked output changes from one output pixel to the next (a resize, a
    pixel shuffle: a vector across pixels would gather), so vectors stay in a channel block."""
    out = wl.params["out"]
    moves = wl.kind in ("resize", "depth_to_space")
    return out[-1] if moves and len(out) == 5 else prod(out)


def space(wl, target) -> Space:
    span = _span(wl)
    opts = sorted({vector_tile(span, target.lanes, v) for v in (target.lanes, 2 * target.lanes,
                                                                4 * target.lanes)})
    return Space({"vector": opts})


def default(wl, target) -> Config:
    """Two vectors per step; four for a transform into a block narrower than a vector (an RGB
    image into NCHW3c gathers from three planes: 224x224 took 0.025 ms so, 0.056 ms with two)."""
    out = wl.params["out"]
    narrow = wl.kind == "layout_transform" and len(out) == 5 and out[-1] < target.lanes
    return Config.of({"vector": vector_tile(_span(wl), target.lanes,
                                            (4 if narrow else 2) * target.lanes)})


def apply(sch, wl, cfg: Config, target) -> None:
    block = sch.get_sblock(wl.kind)  # each data-movement compute is named after its kind
    flat_parallel_vectorize(sch, block, target.lanes, cfg["vector"])

