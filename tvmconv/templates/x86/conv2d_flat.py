"""A conv over its output pixels flattened into one row: the 1x1 template's micro-kernel and
knobs (``pointwise``) for any kernel and stride, where the direct template's row tiles would
run past short rows.

On a Zen 3 (AVX2) a 16-channel block is two vectors and the direct template's whole-block tile
is 4 pixels: 7-pixel rows (ResNets' last stage) are then computed as 8, an eighth wasted, while
their 49 pixels take tiles of 5 (2% wasted, 10 accumulators). Each output pixel's input row and
column come from a division by the row width, once per tile pixel outside the reduction.
"""

from __future__ import annotations

from ...config import Config
from ...workload import Workload
from . import conv2d as direct
from . import pointwise
from .common import row_tiled_compute, schedule_pad

NAME = "conv2d_flat"
KINDS = ("conv2d",)


def applicable(wl, target) -> bool:
    """Ungrouped convs whose rows the direct template's default tile does not divide (1x1
    stride-1 ones have ``pointwise``)."""
    return (wl.params["groups"] == 1 and not pointwise.applicable(wl, target)
            and pointwise.operands_flatten(wl) and direct.ragged_rows(wl, target))


space = pointwise.space
default = pointwise.default


def view(wl) -> Workload:
    """The output (and the operands of its epilogue) as one row of H x W pixels; the input as
    it is, read through ``flat`` = (H, W)."""
    p = dict(wl.params)
    n, c, h, w, b = p["out"]
    p["out"], p["flat"] = (n, c, 1, h * w, b), (h, w)
    p["operands"] = tuple((i, (s[0], s[1], 1, h * w, s[4]) if tuple(s[2:4]) == (h, w) else s)
                          for i, s in p["operands"])
    return Workload(wl.kind, tuple(sorted(p.items())))


compute = row_tiled_compute  # over the flattened view's whole tiles


def apply(sch, wl, cfg: Config, target) -> None:
    pointwise.apply(sch, wl, cfg, target)
    schedule_pad(sch, target)
