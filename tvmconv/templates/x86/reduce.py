"""Softmax, LRN and instance norm: every stage parallel over its outer axes, reductions kept serial.

These layers are a sliver of a CNN's time; the schedule keeps them off one core and vectorises the
stages whose innermost axis is not the reduction.
"""

from __future__ import annotations

from ...config import Config, Space
from .common import PARALLEL_MIN, extent, prod

NAME = "reduce_rows"
KINDS = ("softmax", "lrn", "instance_norm")

_STAGES = {
    "softmax": ("softmax_max", "softmax_sum", "softmax"),
    "lrn": ("lrn_sqsum", "lrn"),
    "instance_norm": ("norm_mean", "norm_var", "instance_norm"),
}


def space(wl, target) -> Space:
    return Space({"parallel": [0, 1]})


def default(wl, target) -> Config:
    return Config.of({"parallel": int(prod(wl.params["out"]) >= PARALLEL_MIN)})


def apply(sch, wl, cfg: Config, target) -> None:
    for name in _STAGES[wl.kind]:
        block = sch.get_sblock(name)
        loops = sch.get_loops(block)
        # create_prim_func lays out a block's data-parallel loops first, its reductions after
        spatial = loops[:sum(iv.iter_type == 0 for iv in sch.get(block).iter_vars)]
        if len(spatial) > 1:
            spatial = [sch.fuse(*spatial)]
        if spatial and cfg["parallel"] and extent(sch, spatial[0]) > 1:
            sch.parallel(spatial[0])
