"""Plan the blocked NCHW[b]c layout across the whole network and pre-transform constants.

Each 4-D activation gets one channel block (0 = plain NCHW). Convs fix their input and output blocks
from the channel counts and the target's vector width; pooling, elementwise chains and channel
concats keep the block of what they read; every other op reads plain tensors. A layout_transform
node is inserted only where a consumer needs another block than its producer wrote, so a CNN's
conv/pool/add trunk runs blocked end to end. Weights, biases and per-channel constants are packed
here, once; grouped convs narrower than a vector are first widened to whole-vector groups.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import divisors
from ..graph import Graph, Node, blockable, has_bias
from ..layers.conv2d import pack_depthwise, pack_weights, pad_channels
from ..layers.dense import pack_weights as pack_dense
from ..layers.pool import avg_divisor

# ops whose fused epilogue runs on the channel blocks their output is stored in (``_epilogue``),
# so every activation it reads must be blockable (``passes.fuse`` checks before merging)
BLOCKED_EPILOGUES = ("conv2d", "instance_norm")


def pick_block(channels: int, lanes: int) -> int:
    """The channel block: one or two whole vectors, else the widest whole smaller vector (AVX-512
    code on 24 channels runs 8-lane ymm blocks: a 24-lane block measured 14 GFLOP/s, 8-lane ~300),
    else the largest small divisor (3 input channels, primes)."""
    unit = lanes
    while unit >= 4:
        fits = [d for d in (2 * unit, unit) if d <= 2 * lanes and channels % d == 0]
        if fits:
            return fits[0]
        unit //= 2
    return max(divisors(channels, 2 * lanes))


# Padding costs (padded / real) channels of extra work; below this it beats narrow vectors.
MAX_PAD_WASTE = 1.5
# the narrowest block worth padding to: one 128-bit vector of floats
MIN_VECTOR = 4


# Padded channels per real one a 16-register target accepts for blocks of two vectors.
MAX_PAIR_WASTE = 1.02


def out_block(channels: int, lanes: int, registers: int = 32) -> int:
    """The block a conv writes: ``pick_block``'s when that fills whole vectors, else whole vectors
    with the last block padded (1000 classes as 63 x 16, 24 channels as one block of 32) when
    that wastes little: an 8-lane block runs AVX-512 at half rate (SqueezeNet's 512 -> 1000 1x1
    conv measured 240 GFLOP/s with 8-lane blocks, its 13x13 neighbours ~470 with 16). Failing
    that, padded half vectors rather than an odd block (18 channels as 3 x 8, not one block of
    18 lanes: MixNet-style splits ran transforms into it at 2.6 GFLOP/s).

    With 16 registers a block of one vector is padded to two when that wastes at most 2%: a
    one-vector register tile loads a broadcast per FMA. On a Zen 3 (AVX2) the 512 -> 1000 1x1
    conv on 13x13 ran at 136 GFLOP/s as 63 x 16 channels (6 px x 16 tiles), 110 as 125 x 8."""
    exact = pick_block(channels, lanes)
    if exact == lanes and registers == 16 and (
            -(-channels // (2 * lanes)) * 2 * lanes / channels <= MAX_PAIR_WASTE):
        return 2 * lanes
    if exact % lanes == 0 or channels < lanes:
        return exact
    options = [(2 * lanes, lanes)]
    if lanes // 2 >= MIN_VECTOR and exact % (lanes // 2):  # not for NEON's 4 lanes
        options.append((lanes // 2,))
    for blocks in options:
        padded = {b: -(-channels // b) * b for b in blocks}
        block = min(padded, key=lambda b: (padded[b], -b))
        if padded[block] / channels <= MAX_PAD_WASTE:
            return block
    return exact


def blocked_operand(const: np.ndarray, block: int) -> np.ndarray:
    """A constant broadcast against a logical NCHW tensor,
    rewritten to broadcast against NCHW[b]c."""
    if const.ndim > 4:
        raise ValueError("operand of rank > 4")
    c4 = const.reshape((1,) * (4 - const.ndim) + const.shape)
    if c4.shape[1] == 1:
        n, _, h, w = c4.shape
        return np.ascontiguousarray(c4.reshape(n, 1, h, w, 1))
    c4 = pad_channels(c4, 1, block)
    n, c, h, w = c4.shape
    return np.ascontiguousarray(c4.reshape(n, c // block, block, h, w).transpose(0, 1, 3, 4, 2))


class _Planner:
    def __init__(self, graph: Graph, target):
        self.g = graph
        self.lanes = target.lanes
        self.cpu = target.family != "cuda"
        self.registers = target.registers if self.cpu else 32
        self.nodes: list[Node] = []
        self.cache: dict[tuple[str, int], str] = {}
        self.users = graph.consumers()
        self.flat_blocked: dict[str, tuple[int, int, int, int]] = {}  # value -> (C, H, W, block)
        producers = graph.producers()
        # a concat's common block also divides any shuffle's channels on its way: it decides
        self.conv_blocks = {**self._group_blocks(producers), **self._shuffle_blocks(producers),
                            **self._concat_blocks(producers)}

    def out_block(self, channels: int) -> int:
        return out_block(channels, self.lanes, self.registers)

    def _whole_blocks(self, channels) -> list[int]:
        """The blocks of one or two whole vectors that divide every channel count, widest first."""
        return [b for b in (2 * self.lanes, self.lanes) if all(c % b == 0 for c in channels)]

    def _concat_blocks(self, producers) -> dict[str, int]:
        """Output blocks for convs whose results are concatenated along channels, directly or
        through ops that keep each pixel's channels (a resize, a pool, a crop): one block that
        fills whole vectors and divides every part, where the parts' own blocks differ
        (GoogLeNet's 64 + 128 + 32 + 32 parts: otherwise a plain concat and five transforms)."""
        g, found = self.g, {}
        for node in g.nodes:
            parts = node.inputs
            if node.op != "concat" or node.attrs.get("axis") != 1 or any(
                    g.is_const(v) or len(g.shapes[v]) != 4 for v in parts):
                continue
            convs = [self._source_conv(v, producers) for v in parts]
            if any(c is None for c in convs):
                continue
            channels = [g.shapes[v][1] for v in parts]
            if len({self.out_block(c) for c in channels}) == 1:
                continue
            common = self._whole_blocks(channels)
            if common:
                found.update((c.outputs[0], common[0]) for c in convs)
        return found

    def _source_conv(self, value: str, producers) -> Node | None:
        """The ungrouped conv whose output ``value`` is, or is made from by ops that keep each
        pixel's channels or shuffle whole blocks of them (a transposed conv's DCR pixel shuffle);
        None if there is none."""
        node = producers.get(value)
        while node is not None and (
                (node.op in ("resize", "pool2d", "slice")
                 and self.g.shapes[node.inputs[0]][1] == self.g.shapes[value][1])
                or (node.op == "depth_to_space" and node.attrs["mode"] == "DCR")):
            node = producers.get(node.inputs[0])
        return node if node is not None and node.op == "conv2d" and node.attrs["groups"] == 1 \
            else None

    def _group_blocks(self, producers) -> dict[str, int]:
        """Output blocks for convs feeding grouped convs: the block each group is read in, when it
        fills whole vectors (RegNet's 96 channels in groups of 16 on AVX-512: written as 16, not
        32 and then transformed)."""
        g, found = self.g, {}
        for node in g.nodes:
            src = node.inputs[0] if node.op == "conv2d" else None
            conv = producers.get(src)
            if conv is None or conv.op != "conv2d" or conv.attrs["groups"] != 1:
                continue
            groups, icg = node.attrs["groups"], g.consts[node.inputs[1]].shape[1]
            if groups > 1 and icg > 1:
                found.setdefault(src, set()).add(pick_block(icg, self.lanes))
        # narrower blocks would slow the producer down more than a transform costs (ResNeXt's
        # groups of 4 channels: 0.61x the best peer so, 0.89x with the transform)
        return {v: blocks.pop() for v, blocks in found.items()
                if len(blocks) == 1 and min(blocks) % self.lanes == 0}

    def _shuffle_blocks(self, producers) -> dict[str, int]:
        """Output blocks for convs feeding a DCR pixel shuffle (a transposed conv's phases): a
        block that divides the shuffle's output channels, so it moves whole blocks (a 16-channel
        decoder's 64 phase channels: blocks of 16, not 32)."""
        g, found = self.g, {}
        for node in g.nodes:
            conv = producers.get(node.inputs[0]) if node.op == "depth_to_space" else None
            if conv is None or conv.op != "conv2d" or node.attrs["mode"] != "DCR":
                continue
            fits = self._whole_blocks([g.shapes[node.outputs[0]][1]])
            if fits and len(self.users.get(node.inputs[0], [])) == 1:
                found[node.inputs[0]] = fits[0]
        return found

    def layout(self, value: str) -> int:
        return self.g.layouts.get(value, 0)

    def as_layout(self, value: str, block: int) -> str:
        """``value`` in the given block, adding (or reusing) a transform node if needed."""
        if self.g.is_const(value) or self.layout(value) == block:
            return value
        key = (value, block)
        if key not in self.cache:
            out = self.g.fresh(f"{value}@{block}")
            self.g.shapes[out] = self.g.shapes[value]
            self.g.layouts[out] = block
            src = self.layout(value)
            n, c, h, w = self.g.shapes[value]
            unpadded = all(b == 0 or c % b == 0 for b in (src, block))
            if {src, block} == {0, 1} or (h * w == 1 and unpadded):
                # NCHW and NCHW1c share their bytes, as every block does on a 1x1 image (after a
                # global pool): a reshape, not a copy
                self.nodes.append(Node("reshape", [value], [out], {}))
            else:
                attrs = {"src": src, "dst": block}
                if not unpadded:
                    attrs["channels"] = c  # a padded side: only these channels are real
                self.nodes.append(Node("layout_transform", [value], [out], attrs))
            self.cache[key] = out
        return self.cache[key]

    def operand(self, value: str, block: int, out_shape) -> str:
        """An epilogue/elementwise operand matched to an output stored with ``block``."""
        if self.g.is_const(value):
            if block == 0:
                return value
            return self.g.add_const(blocked_operand(self.g.consts[value], block), "packed")
        if block and not blockable(self.g.shapes[value], out_shape):
            raise AssertionError("blocked outputs only take full-shape or per-channel operands")
        return self.as_layout(value, block)

    # -- per-op rules ---------------------------------------------------------------------------
    def conv2d(self, node: Node) -> None:
        g, a = self.g, node.attrs
        w = g.consts[node.inputs[1]]
        oc, icg, kh, kw = w.shape
        ic = g.shapes[node.inputs[0]][1]
        groups = a["groups"]
        depthwise = groups == ic and icg == 1 and groups > 1
        db = self.layout(node.inputs[0])
        if depthwise and oc == ic:
            # per channel: any block of the input serves, padded or not
            ib = ob = db or self.out_block(ic)
            packed = pack_depthwise(w, ob)
        elif depthwise:
            ib, ob = pick_block(ic, self.lanes), pick_block(oc, self.lanes)
            packed = pack_depthwise(w, ob)
        elif groups > 1:
            ib, ob = pick_block(icg, self.lanes), pick_block(oc // groups, self.lanes)
            packed = pack_weights(w, groups, ib, ob)
        else:
            # the reduction runs over real input channels in sub-blocks of ``ib`` that tile the
            # stored block ``db``, so a padded input is read as it is, its padding never touched.
            # A plain input (an RGB image, ShuffleNet's channel splits) is read as NCHW1c, which
            # shares its bytes: no transform kernel (into 29-channel blocks for 58 channels it
            # took as long as the conv), and the broadcast-FMA loop runs as fast
            if not db:
                db = self._plain_input_block(node, ic)
            if db:
                ib = ic if ic <= db else math.gcd(ic, db)
            else:
                ib = 1
            ob = self.conv_blocks.get(node.outputs[0], self.out_block(oc))
            if self._few_channels(node, ob):
                ib = ob = db = 1
            packed = pack_weights(w, groups, ib, ob)
        if groups > 1 or not db:
            db = ib
        node.inputs[0] = self.as_layout(node.inputs[0], db)
        node.inputs[1] = g.add_const(packed, "packed_w")
        a.update(kernel_hw=(kh, kw), depthwise=depthwise, multiplier=oc // ic if depthwise else 1)
        a["bias_index"] = 2 if has_bias(self.g, node) else None
        self._epilogue(node, ob, start=2)

    def _plain_input_block(self, node: Node, ic: int) -> int:
        """The block a plain input of a vector's worth of channels or more (a network whose
        input is a feature map) is moved into before a stride-1 spatial conv, on CPUs; 0 where
        it stays plain. Read as NCHW1c, Winograd's transforms ran one channel at a time, and a
        64 -> 64 3x3 conv at 56x56 took 3.3x as long as on blocks (one transform of its input
        costs about as much as a tenth of the conv). Not where the conv would still read the
        blocks one channel at a time (37 channels: sub-blocks of gcd(37, block) = 1): the
        transform would buy nothing."""
        kh, kw = self.g.consts[node.inputs[1]].shape[2:]
        block = self.out_block(ic)
        wanted = (self.cpu and ic >= self.lanes and kh * kw > 1
                  and tuple(node.attrs["strides"]) == (1, 1) and math.gcd(ic, block) > 1)
        return block if wanted else 0

    def _few_channels(self, node: Node, ob: int) -> bool:
        """A conv whose output channels fill less than half a vector (CycleGAN's last 7x7 conv to
        RGB) runs on plain NCHW in and out, vectors along rows of pixels (template
        conv2d_pixels, on CPUs). Its input may then need a transform from channel blocks, which
        pays only for a window of more than one pixel, read once per channel."""
        kh, kw = self.g.consts[node.inputs[1]].shape[2:]
        return (self.cpu and 2 * ob <= self.lanes and kh * kw > 1 and node.attrs["strides"][1] == 1
                and self.g.shapes[node.outputs[0]][3] >= self.lanes
                and node.outputs[0] not in self.conv_blocks)

    def _epilogue(self, node: Node, block: int, start: int) -> None:
        out = node.outputs[0]
        shape = self.g.shapes[out]
        if node.attrs.get("bias_index") is not None:
            b = self.g.consts[node.inputs[2]]
            bias_shape = (-1, 1, 1) if len(shape) == 4 else (-1,)
            node.inputs[2] = self.g.add_const(b.reshape(bias_shape), "bias")
        for i in range(start, len(node.inputs)):
            node.inputs[i] = self.operand(node.inputs[i], block, shape)
        if block:
            self.g.layouts[out] = block

    def reshape(self, node: Node) -> None:
        """Flatten of a blocked image read only by dense layers: flatten the blocked bytes as they
        are and permute the dense weights' rows to match (one layout_transform kernel fewer)."""
        src, out = node.inputs[0], node.outputs[0]
        block, shape = self.layout(src), self.g.shapes[src]
        readers = self.users.get(out, [])
        if (block and len(shape) == 4 and shape[1] % block == 0
                and self.g.shapes[out] == (shape[0], int(np.prod(shape[1:])))
                and out not in self.g.outputs and readers
                and all(r.op == "dense" and r.inputs[0] == out for r in readers)):
            self.flat_blocked[out] = (*shape[1:], block)
            return
        self.plain(node)

    def dense(self, node: Node) -> None:
        w = self.g.consts[node.inputs[1]]
        if node.inputs[0] in self.flat_blocked:
            c, h, wd, b = self.flat_blocked[node.inputs[0]]
            # row (cb, y, x, ci) of the blocked flatten is row (cb * b + ci, y, x) of NCHW's
            w = w.reshape(c // b, b, h, wd, -1).transpose(0, 2, 3, 1, 4).reshape(c * h * wd, -1)
        node.inputs[0] = self.as_layout(node.inputs[0], 0)
        node.inputs[1] = self.g.add_const(pack_dense(w, pick_block(w.shape[1], self.lanes)),
                                          "packed_w")
        node.attrs["bias_index"] = 2 if has_bias(self.g, node) else None
        self._epilogue(node, 0, start=2)

    def matmul(self, node: Node) -> None:
        node.inputs[:2] = [self.as_layout(i, 0) for i in node.inputs[:2]]
        self._epilogue(node, 0, start=2)

    def elementwise(self, node: Node) -> None:
        """Blocked like its first full-shape input when every other input can be read in those
        blocks (per-channel gates included); else plain."""
        g = self.g
        out_shape = g.shapes[node.outputs[0]]
        acts = [i for i in node.inputs if not g.is_const(i)]
        full = [i for i in acts if g.shapes[i] == out_shape]
        block = self.layout(full[0]) if full and len(out_shape) == 4 else 0
        if block and not all(blockable(g.shapes[i], out_shape) for i in acts):
            block = 0
        node.inputs = [self.operand(i, block, out_shape) for i in node.inputs]
        if block:
            g.layouts[node.outputs[0]] = block

    def instance_norm(self, node: Node) -> None:
        """On the channel blocks it reads (CycleGAN's and style-transfer nets' norms between
        convs): no transforms around it, and its moments are vectors over a block's lanes, where
        plain NCHW gave vectors across channels, one plane apart (1.7 GFLOP/s). Scale and bias
        are packed [C/b, b]."""
        x, (scale, bias) = node.inputs[0], node.inputs[1:3]
        block = self.layout(x)
        if block and len(self.g.shapes[x]) == 4 and self.g.is_const(scale) \
                and self.g.is_const(bias):
            node.inputs[1:3] = [self.g.add_const(
                pad_channels(self.g.consts[v].reshape(-1), 0, block).reshape(-1, block), "packed")
                for v in (scale, bias)]
            node.attrs["blocked"] = True
        else:
            block = 0
            node.inputs[:3] = [self.as_layout(v, 0) for v in node.inputs[:3]]
        self._epilogue(node, block, start=3)

    def pad(self, node: Node) -> None:
        """A pad of H and W keeps the channel blocks (CycleGAN's reflection pads), its pads
        extended to the blocked axes. Else plain."""
        block, pads = self.layout(node.inputs[0]), node.attrs["pads"]
        if block and len(pads) == 8 and not any(pads[i] for i in (0, 1, 4, 5)):
            node.attrs["pads"] = (*pads[:4], 0, *pads[4:], 0)
            self.g.layouts[node.outputs[0]] = block
        else:
            self.plain(node)

    def transpose(self, node: Node) -> None:
        """Between NCHW and NHWC (ConvNeXt's permutes around its channel-last LayerNorm and
        Linear layers; TensorFlow exports) over channel blocks, as a transpose of the blocked
        5-D form: [N, C/b, H, W, b] -> [N, H, W, C/b, b] is NHWC when b divides C, so each block
        moves whole, one vector per pixel, where going through plain NCHW took a layout
        transform and a transpose that gathered one value per channel plane."""
        g, (x,), out = self.g, node.inputs, node.outputs[0]
        shape, perm = g.shapes[x], tuple(node.attrs["perm"])
        block = self.layout(x)
        if perm == (0, 2, 3, 1) and block and shape[1] % block == 0:
            n, c, h, w = shape
            blocks = g.fresh(f"{out}@nhwc")
            g.shapes[blocks] = (n, h, w, c // block, block)
            self.nodes.append(Node("transpose", [x], [blocks], {"perm": (0, 2, 3, 1, 4)}))
            node.op, node.inputs, node.attrs = "reshape", [blocks], {}  # to [N, H, W, C]
            return
        if perm == (0, 3, 1, 2) and self._written_blocked(out):
            n, h, w, c = shape
            block = self.out_block(c)
            if c % block == 0 and block % self.lanes == 0:
                split = g.fresh(f"{x}@split")
                g.shapes[split] = (n, h, w, c // block, block)
                self.nodes.append(Node("reshape", [self.as_layout(x, 0)], [split]))
                node.inputs, node.attrs = [split], {"perm": (0, 3, 1, 2, 4)}
                g.layouts[out] = block
                return
        self.plain(node)

    def _written_blocked(self, value: str) -> bool:
        """Whether every reader of ``value`` takes channel blocks as they come."""
        takes_blocks = ("conv2d", "elementwise", "pool2d", "instance_norm", "pad", "resize",
                        "concat")
        readers = self.users.get(value, [])
        return value not in self.g.outputs and bool(readers) and all(
            r.op in takes_blocks for r in readers)

    def depth_to_space(self, node: Node) -> None:
        """DCR on channel blocks when the output channels fill whole blocks (a transposed conv's
        pixel shuffle): each output block is one input block. Else plain."""
        block = self.layout(node.inputs[0])
        if block and node.attrs["mode"] == "DCR" and self.g.shapes[node.outputs[0]][1] % block == 0:
            self.g.layouts[node.outputs[0]] = block
        else:
            self.plain(node)

    def slice(self, node: Node) -> None:
        """A crop of H and W (a transposed conv's pads), or a channel slice of whole blocks
        (Res2Net's splits into scales), keeps the channel blocks: its channel start is then
        counted in blocks. Else plain."""
        block, a = self.layout(node.inputs[0]), node.attrs
        src, out = self.g.shapes[node.inputs[0]], self.g.shapes[node.outputs[0]]
        if block and len(src) == 4 and a["starts"][0] == 0 and a["steps"][:2] == (1, 1) \
                and out[0] == src[0]:
            start = a["starts"][1]
            if out[1] == src[1] or (start % block == 0 and out[1] % block == 0):
                a["starts"] = (0, start // block, *a["starts"][2:])
                self.g.layouts[node.outputs[0]] = block
                return
        self.plain(node)

    def resize(self, node: Node) -> None:
        block = self.layout(node.inputs[0])  # each pixel's channel block moves as a whole
        if block:
            self.g.layouts[node.outputs[0]] = block

    def pool2d(self, node: Node) -> None:
        block = self.layout(node.inputs[0])
        if block:
            self.g.layouts[node.outputs[0]] = block
        a = node.attrs
        if a["kind"] == "avg":
            shape = self.g.shapes
            div = avg_divisor(shape[node.inputs[0]][2:], shape[node.outputs[0]][2:], a["kernel"],
                              a["strides"], a["dilations"], a["pads"], a["count_include_pad"])
            node.inputs.append(self.g.add_const(div, "pool_divisor"))

    def concat(self, node: Node) -> None:
        g = self.g
        blocks = {self.layout(i) for i in node.inputs}
        block = blocks.pop() if len(blocks) == 1 else 0
        axis = node.attrs["axis"]
        if (not block or axis not in (1, 2, 3) or any(g.is_const(i) for i in node.inputs)
                or (axis == 1 and any(g.shapes[i][1] % block for i in node.inputs))):
            self.plain(node)
            return
        # channel blocks concatenate along axis 1 unchanged, as do rows and columns of blocks
        g.layouts[node.outputs[0]] = block

    def plain(self, node: Node) -> None:
        node.inputs = [self.as_layout(i, 0) for i in node.inputs]

    def run(self) -> None:
        for node in self.g.nodes:
            getattr(self, node.op, self.plain)(node)
            self.nodes.append(node)
        outputs = []
        for out in self.g.outputs:
            outputs.append(self.as_layout(out, 0))
        self.g.outputs = outputs
        self.g.nodes = self.nodes


# at most this many times the multiply-adds for whole vectors (see widen_groups)
MAX_GROUP_WIDENING = 4


def widen_groups(graph: Graph, lanes: int) -> None:
    """Grouped convs with fewer input channels per group than a vector (ResNeXt's 4) run as convs
    of whole-vector groups with block-diagonal weights: k times the multiply-adds, but each
    vector filled rather than 1/k of it, and no transform into narrow channel blocks before them.
    ResNeXt's 128-channel 3x3 stride-2 conv in 32 groups of 4 at 112x112 (AVX-512): 0.31 ms
    in 4-channel blocks after a 0.26 ms transform into them; 0.34 ms as 8 groups of 16, no
    transform."""
    for node in graph.nodes:
        if node.op != "conv2d" or node.attrs["groups"] == 1:
            continue
        w = graph.consts[node.inputs[1]]
        oc, icg = w.shape[:2]
        groups, k = node.attrs["groups"], lanes // icg
        if icg == 1 or lanes % icg or not 1 < k <= MAX_GROUP_WIDENING or groups % k:
            continue
        ocg = oc // groups
        wide = np.zeros((oc, icg * k, *w.shape[2:]), w.dtype)
        for o in range(oc):
            part = (o // ocg) % k  # which of the k merged groups this output belongs to
            wide[o, part * icg:(part + 1) * icg] = w[o]
        node.inputs[1] = graph.add_const(wide, "widened_w")
        node.attrs["groups"] = groups // k


def plan(graph: Graph, target) -> None:
    widen_groups(graph, target.lanes)
    _Planner(graph, target).run()
