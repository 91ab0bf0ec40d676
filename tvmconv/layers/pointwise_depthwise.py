"""A 1x1 conv and the depthwise conv that reads its output, as one kernel.

MobileNet's and EfficientNet's inverted residuals widen the channels with a 1x1 conv, then filter
each channel alone. The widened map is the largest tensor of the block (96x112x112 in
MobileNetV2: 4.8 MB), written to memory by one kernel and read back by the next. A depthwise
output block reads only the same channel block of it, so one kernel can compute a band of rows
of one block of the widened map into a buffer that stays in cache, and filter it there
(see ``passes.pointwise`` for when, ``templates/x86/pointwise_depthwise.py`` for the loops).
"""

from __future__ import annotations

from tvm import te

from . import conv2d


def compute(wl, out_w: int | None = None) -> list[te.Tensor]:
    """Kernel arguments: data, the 1x1 conv's weights and operands, the depthwise conv's weights
    and operands, output; ``out_w`` as in ``conv2d.compute``, for the depthwise conv."""
    pointwise, depthwise = wl.parts()
    data = te.placeholder(pointwise.params["data"], name="data")
    pointwise_args, widened = conv2d.stages(pointwise, data, name="widened")
    depthwise_args, out = conv2d.stages(depthwise, widened, out_w)
    return [data, *pointwise_args, *depthwise_args, out]
