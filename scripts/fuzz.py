"""Random small CNNs against onnxruntime: odd shapes, strides, dilations, groups, one-sided pads,
pools, squeeze-excite, residuals, concats, channel shuffles, resizes, a classifier head. Each
network is compiled for the target, run, and compared (max|diff| / max|ref| <= 1e-4); a failing
one is saved as fuzz-SEED-N.onnx with its layers printed.

    python scripts/fuzz.py [--seed 0] [--count 100] [--target x86 ...] [--batch] [--out DIR]

Targets this host cannot run (aarch64, armv7, cuda, AVX-512 code on an AVX2 host) are compiled
only, which for cuda includes nvcc's check of every kernel. The fuzzed networks of the
seventeenth session found five bugs this way (see its note); run it after changing a template.
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
from tvmconv.target import resolve  # noqa: E402

TOL = 1e-4
ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSwish", "Tanh", "PRelu",
               "BatchNormalization", "Elu", "HardSigmoid")


class Net:
    """A chain of layers on one (channels, height, width) activation, built node by node."""

    def __init__(self, rng, batch: int, c: int, h: int, w: int):
        self.rng, self.batch = rng, batch
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

    def head(self, x: str) -> str:
        c = self.shape[x][0]
        n = int(self.rng.integers(1, 21))
        flat = self.node("Flatten", [self.node("GlobalAveragePool", [x], None)], None)
        y = self.node("Gemm", [flat, self.const(self.rng.standard_normal((n, c)) * 0.2),
                               self.const(self.rng.standard_normal(n))], None, transB=1)
        self.layers.append(f"classifier -> {n}")
        return self.node("Softmax", [y], None, axis=1) if self.rng.random() < 0.5 else y


def network(rng, batch: bool) -> tuple[onnx.ModelProto, list[str], tuple]:
    n = int(rng.choice([1, 2, 3])) if batch else 1
    c = int(rng.integers(1, 41))
    h, w = map(int, rng.integers(1, 7, 2) if rng.random() < 0.15 else rng.integers(5, 71, 2))
    net = Net(rng, n, c, h, w)
    grow = [net.conv] * 6 + [net.activation] * 2 + [net.pool, net.squeeze_excite, net.residual,
                                                     net.concat, net.shuffle]
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, net.layers, (n, c, h, w)


def check(model, shape, target: str, rng) -> str | None:
    """Why this network fails on ``target``, or None."""
    import onnxruntime as ort

    x = rng.standard_normal(shape).astype("float32")
    ref = ort.InferenceSession(model.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    try:
        compiled = tvmconv.compile(model, target=target)
        if not resolve(target).runs_here:
            return None
        got = compiled.model().run({"x": x})[0]
    except Exception as e:  # any failure is a finding, reported by name
        return f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    if got.shape != ref.shape:
        return f"shape {got.shape}, onnxruntime {ref.shape}"
    err = float(np.abs(got - ref).max() / (np.abs(ref).max() + 1e-6))
    return None if err <= TOL else f"max|diff|/max|ref| = {err:.3g}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=100, help="networks (default 100)")
    p.add_argument("--target", nargs="+", default=["x86"], help="targets, taken in turn")
    p.add_argument("--batch", action="store_true", help="batches of 1-3, not 1")
    p.add_argument("--out", type=Path, default=Path("."), help="where failing networks go")
    args = p.parse_args()
    for t in args.target:
        resolve(t)  # an unknown target fails before any work
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
