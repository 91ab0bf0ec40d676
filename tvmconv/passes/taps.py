"""Drop the taps of a conv that read only padding.

A 3x3 conv dilated by 24 or 36 on a 14x14 map (DeepLabV3's atrous pyramid at output stride 16)
reads zeros with all but its centre tap: it is a 1x1 conv that costs nine times as much. Dilated
by 12, the outer taps reach the image only from its first and last two rows and columns. Along
each axis the output splits into bands of rows (columns) that read the same range of taps, every
one inside the image; a band pair is then a conv of its taps only, over a slice of the input
without padding, and the bands are concatenated back. A conv whose every output reads the same
taps loses the dead ones and stays one conv.
"""

from __future__ import annotations

from ..graph import Graph, Node, has_bias
from ..layers.conv2d import live_taps

# Split a conv into bands when at most this share of its multiply-adds read the image: each band
# pair is a kernel of its own, and the bands are concatenated by more. On the zoo's DeepLabV3
# (pyramid rates 6/12/18 on 28x28, live shares 0.73/0.51/0.33; backbone rates 2 and 4, 0.91 and
# 0.82), splitting up to 0.6 ran it 1.07-1.09x faster, up to 0.75 1.06x, up to 0.85 0.90x.
MAX_LIVE = 0.6
# ...and when the multiply-adds it saves outweigh the weights it reads again: each band pair
# streams its own taps' weights, so nine band pairs of a 3x3 conv read 49 taps' worth for 9. On
# a Zen 5 (AVX-512, 2 cores) a conv ran at ~480 GFLOP/s and weights streamed from memory at ~27
# GB/s inside a network: a byte of weights cost as much time as ~18 flops. DeepLabV3 at 75x91
# input (backbone rate 4 on a 10x12 map: 243 MFLOP saved for 42 MB more weights, 5.8 flops per
# byte) ran 13% faster unsplit; at 61x47 (rate 4 on 8x6, 12.4) the two ran alike; the pyramid
# at 224x224 (43 and 148) stays split.
FLOPS_PER_WEIGHT_BYTE = 16


def _bands(size: int, out: int, k: int, stride: int, dil: int, pad: int):
    """[(first output, end, first tap, end tap)] of the runs of outputs that read the same taps
    inside the image, along one axis; None when some output reads only padding."""
    bands = []
    for y, (k0, k1) in enumerate(live_taps(size, out, k, stride, dil, pad)):
        if k0 >= k1:
            return None
        if bands and bands[-1][2:] == (k0, k1):
            bands[-1] = (bands[-1][0], y + 1, k0, k1)
        else:
            bands.append((y, y + 1, k0, k1))
    return bands


def _live(bands, k: int) -> float:
    return sum((y1 - y0) * (k1 - k0) for y0, y1, k0, k1 in bands) / (bands[-1][1] * k)


def _saves_more_than_it_reads(graph: Graph, node: Node, rows, cols, live: float) -> bool:
    """Whether splitting into the band pairs saves more flops than ``FLOPS_PER_WEIGHT_BYTE``
    times the bytes of weights the band pairs read beyond the conv's own."""
    w = graph.consts[node.inputs[1]]
    n, (_, _, oh, ow) = graph.shapes[node.inputs[0]][0], graph.shapes[node.outputs[0]]
    per_tap = w.shape[0] * w.shape[1]  # output channels x input channels per group
    taps = w.shape[2] * w.shape[3]
    read = sum(k1 - k0 for *_, k0, k1 in rows) * sum(k1 - k0 for *_, k0, k1 in cols)
    saved = 2 * (1 - live) * per_tap * taps * n * oh * ow
    return saved >= FLOPS_PER_WEIGHT_BYTE * 4 * per_tap * (read - taps)


def _pointwise_epilogue(graph: Graph, node: Node) -> bool:
    """Whether every operand after the weights (the bias, fused constants) is the same for each
    pixel, so that each band's conv can take them as they are. A fused constant broadcasts
    against the output as numpy does: a (W,) or (H, W) one varies over the pixels."""
    operands = node.inputs[3:] if has_bias(graph, node) else node.inputs[2:]
    return all(graph.is_const(i) and (1, 1, *graph.consts[i].shape)[-2:] == (1, 1)
               for i in operands)


def drop_padding_taps(graph: Graph) -> None:
    nodes = []
    for node in graph.nodes:
        nodes.extend(_split(graph, node) if node.op == "conv2d" else [node])
    graph.nodes = nodes


def _split(graph: Graph, node: Node) -> list[Node]:
    x, w_name = node.inputs[:2]
    a = node.attrs
    if not graph.is_const(w_name) or len(graph.shapes[x]) != 4:
        return [node]
    w = graph.consts[w_name]
    (_, _, h, wd), (_, _, oh, ow) = graph.shapes[x], graph.shapes[node.outputs[0]]
    kh, kw = w.shape[2:]
    pt, pl = a["pads"][:2]
    rows = _bands(h, oh, kh, a["strides"][0], a["dilations"][0], pt)
    cols = _bands(wd, ow, kw, a["strides"][1], a["dilations"][1], pl)
    if rows is None or cols is None:
        return [node]
    live = _live(rows, kh) * _live(cols, kw)
    one = len(rows) == len(cols) == 1
    if live == 1 or not (one or (live <= MAX_LIVE and _pointwise_epilogue(graph, node)
                                 and _saves_more_than_it_reads(graph, node, rows, cols, live))):
        return [node]
    nodes = []
    row_parts = [_concat(graph, [_band_conv(graph, node, band, col, nodes) for col in cols], 3,
                         nodes) for band in rows]
    _concat(graph, row_parts, 2, nodes)
    del graph.shapes[nodes[-1].outputs[0]]
    nodes[-1].outputs = list(node.outputs)  # the last node computes the whole output
    return nodes


def _band_conv(graph: Graph, node: Node, rows, cols, nodes: list) -> str:
    """The conv of one band pair: its taps over the slice of the input they read."""
    x, w_name = node.inputs[:2]
    a = node.attrs
    n, c, h, wd = graph.shapes[x]
    oc = graph.shapes[node.outputs[0]][1]
    (y0, y1, i0, i1), (x0, x1, j0, j1) = rows, cols
    (sh, sw), (dh, dw) = a["strides"], a["dilations"]
    top, left = y0 * sh - a["pads"][0] + i0 * dh, x0 * sw - a["pads"][1] + j0 * dw
    bottom = (y1 - 1) * sh - a["pads"][0] + (i1 - 1) * dh + 1
    right = (x1 - 1) * sw - a["pads"][1] + (j1 - 1) * dw + 1
    src = x
    if (top, left, bottom, right) != (0, 0, h, wd):
        src = graph.fresh("taps_in")
        graph.shapes[src] = (n, c, bottom - top, right - left)
        nodes.append(Node("slice", [x], [src], {"starts": (0, 0, top, left),
                                                "steps": (1, 1, 1, 1)}, node.name))
    w = graph.add_const(graph.consts[w_name][:, :, i0:i1, j0:j1], "taps_w")
    out = graph.fresh("taps_out")
    graph.shapes[out] = (n, oc, y1 - y0, x1 - x0)
    attrs = {**a, "pads": (0, 0, 0, 0),
             "dilations": (dh if i1 - i0 > 1 else 1, dw if j1 - j0 > 1 else 1)}
    nodes.append(Node("conv2d", [src, w, *node.inputs[2:]], [out], attrs, node.name))
    return out


def _concat(graph: Graph, parts: list[str], axis: int, nodes: list) -> str:
    if len(parts) == 1:
        return parts[0]
    shapes = [graph.shapes[p] for p in parts]
    out = graph.fresh("taps_cat")
    shape = list(shapes[0])
    shape[axis] = sum(s[axis] for s in shapes)
    graph.shapes[out] = tuple(shape)
    nodes.append(Node("concat", parts, [out], {"axis": axis}))
    return out
