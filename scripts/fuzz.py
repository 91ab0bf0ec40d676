"""Random small CNNs against onnxruntime: odd shapes, strides, dilations, groups, one-sided pads,
pools, squeeze-excite, residuals, concats, channel shuffles, resizes, transposed convs, pads,
norms, reductions, slices, splits, depth/space moves, broadcast constants, channels-last blocks
and a classifier head, at opsets 14, 17 and 21. Each network is compiled for the target, run,
and compared (max|diff| / max|ref| <= 1e-4); where it differs, the network evaluated in float64
(onnx's reference evaluator) decides whether tvmconv or onnxruntime is off. A failing one is
saved as fuzz-SEED-N.onnx with its layers printed.

    python scripts/fuzz.py [--seed 0] [--count 100] [--target x86 ...] [--batch] [--out DIR]

Targets this host cannot run (aarch64, armv7, cuda, AVX-512 code on an AVX2 host) are compiled
only, which for cuda includes nvcc's check of every kernel. Fuzzed networks found five bugs in
the seventeenth session and four in the eighteenth (see their notes); run it after changing a
template.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tvmconv  # noqa: E402
from tvmconv import relative_error  # noqa: E402
from tvmconv.target import resolve  # noqa: E402

TOL = 1e-4
# where onnxruntime is this far off float64 too, the network amplifies float32 rounding (a Tanh
# of values near 1e4), and tvmconv may be off by as much again, times this
ILL_CONDITIONED = 4
ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSwish", "Tanh", "PRelu",
               "BatchNormalization", "Elu", "HardSigmoid")


class Net:
    """A chain of layers on one (channels, height, width) activation, built node by node."""

    def __init__(self, rng, batch: int, c: int, h: int, w: int, opset: int):
        self.rng, self.batch, self.opset = rng, batch, opset
        self.nodes, self.inits, self.layers = [], [], [f"input {batch}x{c}x{h}x{w}"]
        self.shape = {"x": (c, h, w)}
        self.count = 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value, dtype="float32") -> str:
        name = self._name("k")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op: str, inputs: list[str], shape, **attrs) -> str:
        out = self._name("t")
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        self.shape[out] = shape
        return out

    def conv(self, x: str, out=None, k=None, stride=None, group=None, same=False) -> str:
        c, h, w = self.shape[x]
        r = self.rng
        kh = k or int(r.choice([1, 1, 2, 3, 3, 3, 5, 7]))
        kw = kh if k or r.random() < 0.85 else int(r.choice([1, 3, 5]))
        s = stride or int(r.choice([1, 1, 1, 2, 2, 3]))
        d = 1 if k or r.random() < 0.85 else 2
        if group is None:
            u = r.random()
            group = c if u < 0.25 else 1 if u < 0.85 else int(
                r.choice([g for g in range(1, c + 1) if c % g == 0]))
        out = out or (group * int(r.integers(1, 3)) if 1 < group == c else int(r.integers(1, 71)))
        out = group * max(1, out // group)
        if same or r.random() < 0.5:
            pads = [(kh - 1) * d // 2, (kw - 1) * d // 2] * 2
        else:
            pads = [int(r.integers(0, (kk - 1) * d + 1)) for kk in (kh, kw, kh, kw)]
        oh = (h + pads[0] + pads[2] - d * (kh - 1) - 1) // s + 1
        ow = (w + pads[1] + pads[3] - d * (kw - 1) - 1) // s + 1
        if oh < 1 or ow < 1:
            return x
        weights = r.standard_normal((out, c // group, kh, kw)) / np.sqrt(c // group * kh * kw)
        inputs = [x, self.const(weights)]
        if r.random() < 0.7:
            inputs.append(self.const(r.standard_normal(out) * 0.1))
        self.layers.append(f"conv {c}->{out} k{kh}x{kw} s{s} d{d} g{group} pads {pads}")
        return self.node("Conv", inputs, (out, oh, ow), kernel_shape=[kh, kw], strides=[s, s],
                         dilations=[d, d], group=group, pads=pads)

    def activation(self, x: str) -> str:
        c, h, w = shape = self.shape[x]
        op = str(self.rng.choice(ACTIVATIONS))
        self.layers.append(op)
        u = self.rng.random
        extra = {"Clip": lambda: [self.const(0.0), self.const(6.0)],
                 "PRelu": lambda: [self.const(u((c, 1, 1)) * 0.3)],
                 "BatchNormalization": lambda: [self.const(u(c) + 0.5), self.const(u(c) - 0.5),
                                                self.const(u(c) - 0.5), self.const(u(c) + 0.5)]}
        return self.node(op, [x, *extra.get(op, list)()], shape)

    def pool(self, x: str) -> str:
        c, h, w = self.shape[x]
        op = str(self.rng.choice(["MaxPool", "AveragePool"]))
        k, s = int(self.rng.integers(2, 4)), int(self.rng.integers(1, 3))
        p = int(self.rng.integers(0, k // 2 + 1))
        if min(h, w) + 2 * p < k:
            return x
        ceil = int(self.rng.random() < 0.3)

        def size(n):  # with ceil_mode, the last window starts inside the input or its left pad
            out = -(-(n + 2 * p - k) // s) + 1 if ceil else (n + 2 * p - k) // s + 1
            return out - 1 if (out - 1) * s >= n + p else out

        attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [p] * 4, "ceil_mode": ceil}
        if op == "AveragePool":
            attrs["count_include_pad"] = int(self.rng.random() < 0.5)
        self.layers.append(f"{op} {attrs}")
        return self.node(op, [x], (c, size(h), size(w)), **attrs)

    def squeeze_excite(self, x: str) -> str:
        c = self.shape[x][0]
        g = self.node("GlobalAveragePool", [x], (c, 1, 1))
        a = self.node("Relu", [self.conv(g, max(1, c // 4), 1, 1, 1)], (max(1, c // 4), 1, 1))
        b = self.node("Sigmoid", [self.conv(a, c, 1, 1, 1)], (c, 1, 1))
        self.layers.append("squeeze-excite")
        return self.node("Mul", [x, b], self.shape[x])

    def residual(self, x: str) -> str:
        branch = self.activation(self.conv(x, self.shape[x][0], 3, 1, 1, same=True))
        self.layers.append("residual add")
        return self.node("Add", [x, branch], self.shape[x])

    def concat(self, x: str) -> str:
        c, h, w = self.shape[x]
        a, b = self.conv(x, None, 1, 1, 1), self.conv(x, None, 3, 1, 1, same=True)
        self.layers.append("concat")
        return self.node("Concat", [a, b], (self.shape[a][0] + self.shape[b][0], h, w), axis=1)

    def shuffle(self, x: str) -> str:
        c, h, w = self.shape[x]
        if c % 2:
            return x
        a = self.node("Reshape", [x, self.const([self.batch, 2, c // 2, h, w], "int64")], None)
        b = self.node("Transpose", [a], None, perm=[0, 2, 1, 3, 4])
        self.layers.append("channel shuffle")
        return self.node("Reshape", [b, self.const([self.batch, c, h, w], "int64")], (c, h, w))

    def resize(self, x: str) -> str:
        c, h, w = self.shape[x]
        mode = str(self.rng.choice(["nearest", "linear"]))
        self.layers.append(f"resize {mode} x2")
        return self.node("Resize", [x, "", self.const([1, 1, 2, 2])], (c, 2 * h, 2 * w),
                         mode=mode)

    def conv_transpose(self, x: str) -> str:
        c, h, w = self.shape[x]
        r = self.rng
        k, s = int(r.integers(1, 5)), int(r.integers(1, 4))
        d = 1 if r.random() < 0.7 else 2
        group = c if r.random() < 0.2 else 1
        out = group * int(r.integers(1, 3)) if group > 1 else int(r.integers(1, 33))
        pads = [int(r.integers(0, (k - 1) * d + 1)) for _ in range(4)]
        extra = int(r.integers(0, s))  # output_padding: below the stride
        oh, ow = (s * (n - 1) + extra + (k - 1) * d + 1 - a - b
                  for n, a, b in ((h, pads[0], pads[2]), (w, pads[1], pads[3])))
        if min(oh, ow) < 1:
            return x
        weights = r.standard_normal((c, out // group, k, k)) / np.sqrt(c // group * k * k)
        self.layers.append(f"ConvTranspose {c}->{out} k{k} s{s} d{d} g{group} pads {pads} "
                           f"output_padding {extra}")
        return self.node("ConvTranspose", [x, self.const(weights)], (out, oh, ow),
                         kernel_shape=[k, k], strides=[s, s], dilations=[d, d], group=group,
                         pads=pads, output_padding=[extra, extra])

    def pad(self, x: str) -> str:
        c, h, w = self.shape[x]
        modes = ["constant", "reflect", "edge"] + (["wrap"] if self.opset >= 19 else [])
        mode = str(self.rng.choice(modes))

        def amount(n):  # reflect needs pads below the size; constant may crop
            low = -(n // 2) if mode == "constant" else 0
            return int(self.rng.integers(low, min(3, n - 1 if mode == "reflect" else 3) + 1))

        pads = [0, amount(c) if mode == "constant" else 0, amount(h), amount(w)]
        pads += [0, amount(c) if mode == "constant" else 0, amount(h), amount(w)]
        shape = tuple(n + a + b for n, a, b in zip((c, h, w), pads[1:4], pads[5:]))
        if min(shape) < 1:
            return x
        inputs = [x, self.const(pads, "int64")]
        if mode == "constant" and self.rng.random() < 0.5:
            inputs.append(self.const(self.rng.standard_normal()))
        self.layers.append(f"Pad {mode} {pads}")
        return self.node("Pad", inputs, shape, mode=mode)

    def norm(self, x: str) -> str:
        c, h, w = shape = self.shape[x]
        u = self.rng.random
        ops = ["InstanceNormalization", "LRN"] + ["LayerNormalization"] * (self.opset >= 17) + \
            ["GroupNormalization"] * (self.opset >= 21)
        op = str(self.rng.choice(ops))
        attrs, inputs = {}, [x]
        if op == "LRN":
            attrs = {"size": int(self.rng.choice([1, 3, 5, 7])), "alpha": float(u() * 1e-3),
                     "beta": 0.75, "bias": float(1 + u())}
        elif op == "LayerNormalization":
            attrs["axis"] = int(self.rng.choice([1, 2, 3, -1]))
            norm_shape = (c, h, w)[attrs["axis"] - 1 if attrs["axis"] > 0 else 2:]
            inputs += [self.const(u(norm_shape) + 0.5), self.const(u(norm_shape) - 0.5)]
        else:
            inputs += [self.const(u(c) + 0.5), self.const(u(c) - 0.5)]
            if op == "GroupNormalization":
                attrs["num_groups"] = int(self.rng.choice([g for g in range(1, c + 1)
                                                           if c % g == 0]))
        self.layers.append(f"{op} {attrs}")
        return self.node(op, inputs, shape, **attrs)

    def reduce(self, x: str) -> str:
        """A statistic over some axes, broadcast back onto the activation."""
        c, h, w = shape = self.shape[x]
        op = str(self.rng.choice(["ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum",
                                  "ReduceSumSquare", "ReduceL1", "ReduceL2"]))
        axes = sorted(int(a) for a in self.rng.choice([1, 2, 3], int(self.rng.integers(1, 4)),
                                                       replace=False))
        keep = int(self.rng.random() < 0.7)
        kept = tuple(1 if i + 1 in axes else n for i, n in enumerate(shape))
        attrs, inputs = {"keepdims": keep}, [x]
        if self.opset >= 18 or op == "ReduceSum":
            inputs.append(self.const(axes, "int64"))
        else:
            attrs["axes"] = axes
        y = self.node(op, inputs, kept if keep else None, **attrs)
        if not keep:
            y = self.node("Unsqueeze", [y, self.const(axes, "int64")], kept)
        combine = str(self.rng.choice(["Add", "Sub", "Mul", "Max", "Min"]))
        self.layers.append(f"{op} over {axes} keepdims {keep}, {combine} back")
        return self.node(combine, [x, y], shape)

    def slice(self, x: str) -> str:
        c, h, w = self.shape[x]
        axis = int(self.rng.integers(1, 4))
        n = (c, h, w)[axis - 1]
        step = int(self.rng.choice([1, 1, 2, 3, -1, -2]))
        start, end = (int(v) for v in self.rng.integers(-n - 2, n + 3, 2))
        if self.rng.random() < 0.2:
            end = -(2 ** 63) if step < 0 else 2 ** 63 - 1
        size = len(range(n)[slice(start, end, step)])
        if size < 1:
            return x
        shape = tuple(size if i == axis - 1 else m for i, m in enumerate((c, h, w)))
        consts = [self.const([v], "int64") for v in (start, end, axis, step)]
        self.layers.append(f"Slice axis {axis} {start}:{end}:{step}")
        return self.node("Slice", [x, *consts], shape)

    def split(self, x: str) -> str:
        """Channels split into parts, one part changed, joined again in another order."""
        c, h, w = self.shape[x]
        if c < 2:
            return x
        cuts = sorted(int(v) for v in self.rng.choice(range(1, c), min(c - 1, int(
            self.rng.integers(1, 3))), replace=False))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, c])]
        parts = [self._name("t") for _ in sizes]
        self.nodes.append(helper.make_node("Split", [x, self.const(sizes, "int64")], parts,
                                           axis=1))
        for part, size in zip(parts, sizes):
            self.shape[part] = (size, h, w)
        parts[0] = self.activation(parts[0])
        order = [int(i) for i in self.rng.permutation(len(parts))]
        self.layers.append(f"Split {sizes}, Concat in order {order}")
        return self.node("Concat", [parts[i] for i in order], (c, h, w), axis=1)

    def rearrange(self, x: str) -> str:
        c, h, w = self.shape[x]
        b = int(self.rng.choice([2, 3]))
        if c % (b * b) == 0 and self.rng.random() < 0.6:
            mode = str(self.rng.choice(["DCR", "CRD"]))
            self.layers.append(f"DepthToSpace {b} {mode}")
            return self.node("DepthToSpace", [x], (c // (b * b), h * b, w * b), blocksize=b,
                             mode=mode)
        if h % b or w % b:
            return x
        self.layers.append(f"SpaceToDepth {b}")
        return self.node("SpaceToDepth", [x], (c * b * b, h // b, w // b), blocksize=b)

    def binary(self, x: str) -> str:
        """An elementwise op with a constant broadcast from a smaller shape, either side."""
        c, h, w = shape = self.shape[x]
        op = str(self.rng.choice(["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"]))
        const_shape = [(), (1,), (c, 1, 1), (1, h, 1), (1, 1, w), (c, h, w), (1, c, 1, 1),
                       (h, w)][int(self.rng.integers(8))]
        value = self.rng.standard_normal(const_shape)
        if op == "Div":  # the constant divides, away from zero
            value = np.sign(value) * (0.5 + np.abs(value))
        if op == "Pow":  # integer powers of any base
            value = self.rng.integers(1, 4, const_shape)
        inputs = [x, self.const(value)]
        if op not in ("Div", "Pow") and self.rng.random() < 0.5:
            inputs.reverse()
        self.layers.append(f"{op} by a constant of shape {const_shape}")
        return self.node(op, inputs, shape)

    def unary(self, x: str) -> str:
        ops = ["Softplus", "Softsign", "Erf", "Abs", "Neg", "Selu", "Celu", "ThresholdedRelu",
               "Exp"] + ["Mish"] * (self.opset >= 18) + ["Gelu"] * (self.opset >= 20)
        op = str(self.rng.choice(ops))
        if op == "Exp":  # of a bounded value
            x = self.node("Tanh", [x], self.shape[x])
        self.layers.append(op)
        return self.node(op, [x], self.shape[x])

    def channels_last(self, x: str) -> str:
        """A ConvNeXt-style block: to NHWC, a LayerNorm, MatMul or Softmax over channels, back."""
        c, h, w = self.shape[x]
        t = self.node("Transpose", [x], None, perm=[0, 2, 3, 1])
        ops = ["MatMul", "Softmax"] + ["LayerNormalization"] * (self.opset >= 17)
        op = str(self.rng.choice(ops))
        out = c
        if op == "LayerNormalization":
            t = self.node(op, [t, self.const(self.rng.random(c) + 0.5),
                               self.const(self.rng.random(c) - 0.5)], None, axis=-1)
        elif op == "MatMul":
            out = int(self.rng.integers(1, 41))
            t = self.node("MatMul", [t, self.const(self.rng.standard_normal((c, out)) /
                                                   np.sqrt(c))], None)
            t = self.node("Add", [t, self.const(self.rng.standard_normal(out) * 0.1)], None)
        else:
            t = self.node("Softmax", [t], None, axis=-1)
        self.layers.append(f"channels-last {op} {c}->{out}")
        return self.node("Transpose", [t], (out, h, w), perm=[0, 3, 1, 2])

    def channel_softmax(self, x: str) -> str:
        op = str(self.rng.choice(["Softmax", "LogSoftmax"]))
        axis = int(self.rng.choice([1, 2, 3, -1]))
        self.layers.append(f"{op} axis {axis}")
        return self.node(op, [x], self.shape[x], axis=axis)

    def global_pool(self, x: str) -> str:
        c, h, w = self.shape[x]
        op = str(self.rng.choice(["GlobalMaxPool", "GlobalLpPool", "GlobalAveragePool",
                                  "LpPool"]))
        if op == "LpPool":
            k = int(self.rng.integers(1, min(h, w, 3) + 1))
            self.layers.append(f"LpPool k{k}")
            return self.node(op, [x], (c, h - k + 1, w - k + 1), kernel_shape=[k, k],
                             p=int(self.rng.choice([1, 2, 3])))
        self.layers.append(op)
        pooled = self.node(op, [x], (c, 1, 1))
        if self.rng.random() < 0.5:
            return pooled
        self.layers.append("Expand, Add back")
        wide = self.node("Expand", [pooled, self.const([self.batch, c, h, w], "int64")],
                         (c, h, w))
        return self.node("Add", [x, wide], (c, h, w))

    def dense_to_map(self, x: str) -> str:
        """A generator's projection: flattened, a Gemm, reshaped back to a small map."""
        c, h, w = self.shape[x]
        if c * h * w > 4096:
            return x
        c2, h2, w2 = (int(v) for v in self.rng.integers(1, [17, 9, 9]))
        flat = self.node("Flatten", [x], None)
        y = self.node("Gemm", [flat, self.const(self.rng.standard_normal((c * h * w, c2 * h2 * w2))
                                                / np.sqrt(c * h * w)),
                               self.const(self.rng.standard_normal(c2 * h2 * w2) * 0.1)], None)
        self.layers.append(f"dense {c}x{h}x{w} -> {c2}x{h2}x{w2}")
        return self.node("Reshape", [y, self.const([self.batch, c2, h2, w2], "int64")],
                         (c2, h2, w2))

    def branches(self, x: str) -> str:
        """Inception-style: a 1x1 conv, a 3x3 conv and a pooled 1x1 conv of one input, joined
        by a concat or by an elementwise Sum, Max, Min or Mean of equal widths."""
        c, h, w = self.shape[x]
        join = str(self.rng.choice(["Concat", "Sum", "Max", "Min", "Mean"]))
        width = None if join == "Concat" else int(self.rng.integers(1, 41))
        pooled = self.node("MaxPool", [x], (c, h, w), kernel_shape=[3, 3], pads=[1] * 4)
        parts = [self.conv(x, width, 1, 1, 1), self.conv(x, width, 3, 1, 1, same=True),
                 self.conv(pooled, width, 1, 1, 1)]
        self.layers.append(f"branches joined by {join}")
        if join == "Concat":
            return self.node(join, parts, (sum(self.shape[t][0] for t in parts), h, w), axis=1)
        return self.node(join, parts, (width, h, w))

    def head(self, x: str) -> str:
        c = self.shape[x][0]
        n = int(self.rng.integers(1, 21))
        flat = self.node("Flatten", [self.node("GlobalAveragePool", [x], None)], None)
        if self.rng.random() < 0.5:
            y = self.node("Gemm", [flat, self.const(self.rng.standard_normal((n, c)) * 0.2),
                                   self.const(self.rng.standard_normal(n))], None, transB=1)
        else:
            y = self.node("MatMul", [flat, self.const(self.rng.standard_normal((c, n)) * 0.2)],
                          None)
        self.layers.append(f"classifier -> {n}")
        return self.node("Softmax", [y], None, axis=1) if self.rng.random() < 0.5 else y


def network(rng, batch: bool) -> tuple[onnx.ModelProto, list[str], tuple]:
    n = int(rng.choice([1, 2, 3])) if batch else 1
    c = int(rng.integers(1, 41))
    h, w = map(int, rng.integers(1, 7, 2) if rng.random() < 0.15 else rng.integers(5, 71, 2))
    opset = int(rng.choice([14, 17, 21]))
    net = Net(rng, n, c, h, w, opset)
    grow = [net.conv] * 8 + [net.activation] * 2 + [
        net.pool, net.squeeze_excite, net.residual, net.concat, net.shuffle, net.conv_transpose,
        net.pad, net.norm, net.reduce, net.slice, net.split, net.rearrange, net.binary,
        net.unary, net.channels_last, net.channel_softmax, net.global_pool, net.dense_to_map,
        net.branches]
    x = "x"
    for _ in range(int(rng.integers(2, 8))):
        x = grow[int(rng.integers(len(grow)))](x)
        if rng.random() < 0.1 and net.shape[x][1] < 40:
            x = net.resize(x)
        if rng.random() < 0.4:
            x = net.activation(x)
    if rng.random() < 0.3:
        x = net.head(x)
    graph = helper.make_graph(
        net.nodes, "fuzz", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, h, w])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], net.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset < 21 else 10
    return model, net.layers, (n, c, h, w)


def float64_reference(model, x) -> np.ndarray | None:
    """The network evaluated in float64 by onnx's reference evaluator (None where it lacks an
    operator): the judge where tvmconv and onnxruntime disagree, as onnxruntime's own float32
    rounding can be what differs (an InstanceNorm of a near-constant channel amplifies it by
    1/sqrt(epsilon))."""
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import RuntimeImplementationError

    wide = onnx.ModelProto()
    wide.CopyFrom(model)
    for init in wide.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float64),
                                                  init.name))
    for value in (*wide.graph.input, *wide.graph.output):
        value.type.tensor_type.elem_type = TensorProto.DOUBLE
    try:
        return ReferenceEvaluator(wide).run(None, {"x": x.astype(np.float64)})[0]
    except RuntimeImplementationError:
        return None


def check(model, shape, target: str, rng) -> str | None:
    """Why this network fails on ``target``, or None."""
    import onnxruntime as ort

    x = rng.standard_normal(shape).astype("float32")
    ref = ort.InferenceSession(model.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    try:
        compiled = tvmconv.compile(model, target=target)
        if not compiled.target.runs_here:
            return None
        got = compiled.model().run({"x": x})[0]
    except Exception as e:  # any failure is a finding, reported by name
        return f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    if got.shape != ref.shape:
        return f"shape {got.shape}, onnxruntime {ref.shape}"
    err = relative_error(got, ref)
    if err <= TOL:
        return None
    exact = float64_reference(model, x)
    if exact is None:
        return f"max|diff|/max|ref| = {err:.3g}"
    if relative_error(got, exact) <= max(TOL, ILL_CONDITIONED * relative_error(ref, exact)):
        return None
    return f"max|diff|/max|ref| = {err:.3g} (float64: tvmconv {relative_error(got, exact):.3g}, " \
           f"onnxruntime {relative_error(ref, exact):.3g})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=100, help="networks (default 100)")
    p.add_argument("--target", nargs="+", default=["x86"], help="targets, taken in turn")
    p.add_argument("--batch", action="store_true", help="batches of 1-3, not 1")
    p.add_argument("--out", type=Path, default=Path("."), help="where failing networks go")
    args = p.parse_args()
    for t in args.target:
        try:
            resolve(t)  # an unknown target fails before any work
        except tvmconv.TvmconvError as e:
            p.error(str(e))
    rng = np.random.default_rng(args.seed)
    failed = 0
    for i in range(args.count):
        model, layers, shape = network(rng, args.batch)
        target = args.target[i % len(args.target)]
        why = check(model, shape, target, rng)
        if why:
            failed += 1
            path = args.out / f"fuzz-{args.seed}-{i}.onnx"
            onnx.save(model, str(path))
            print(f"FAIL {path} on {target}: {why}\n  " + " | ".join(layers), flush=True)
    print(f"{args.count} networks, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
