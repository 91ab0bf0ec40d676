"""The runtime's contract: inputs by position or name, outputs as documented, wrong arrays refused
with a message naming what was expected, and artefacts that are truncated, altered, foreign or built
for another CPU refused by ``load``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import (
    assert_close,
    make_model,
    rng_inputs,
    run_ort,
    two_io_model,
    weights,
    workloads,
)
from onnx import helper

import tvmconv
from tvmconv.artefact import FORMAT, append_metadata, read_metadata
from tvmconv.errors import InputError

SHAPE = (1, 3, 4, 4)


@pytest.fixture(scope="module")
def model(two_io_artefact):
    return tvmconv.load(two_io_artefact)


@pytest.fixture(scope="module")
def feeds():
    rng = np.random.default_rng(0)
    return {n: rng.standard_normal(SHAPE).astype(np.float32) for n in "ab"}


def test_signature(model):
    assert [(i.name, i.shape, i.dtype) for i in model.inputs] == [("a", SHAPE, "float32"),
                                                                  ("b", SHAPE, "float32")]
    assert [(o.name, o.shape) for o in model.outputs] == [("y", SHAPE), ("z", SHAPE)]
    assert "a: float32[1, 3, 4, 4]" in repr(model)


def test_two_outputs_come_back_as_a_list(model, feeds):
    outs = model(feeds["a"], feeds["b"])
    assert isinstance(outs, list) and len(outs) == 2
    for got, ref, name in zip(outs, run_ort(two_io_model(), feeds), "yz"):
        assert_close(got, ref, what=name)


def test_inputs_by_name(model, feeds):
    """A dict, keyword arguments and positions in the model's order all give the same result."""
    positional = model.run(feeds["a"], feeds["b"])
    by_dict = model.run({"b": feeds["b"], "a": feeds["a"]})
    by_kwargs = model.run(b=feeds["b"], a=feeds["a"])
    for p, d, k in zip(positional, by_dict, by_kwargs):
        assert np.array_equal(p, d) and np.array_equal(p, k)


def test_wrong_shape(model, feeds):
    with pytest.raises(ValueError, match=r"'b'.*expected \(1, 3, 4, 4\)"):
        model(feeds["a"], np.zeros((1, 3, 4, 5), np.float32))


def test_wrong_dtype(model, feeds):
    with pytest.raises(TypeError, match="float32"):
        model(feeds["a"].astype(np.float64), feeds["b"])


def test_not_an_array(model, feeds):
    with pytest.raises(TypeError, match="numpy array"):
        model(feeds["a"].tolist(), feeds["b"])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input(model, feeds, bad):
    x = feeds["a"].copy()
    x[0, 1, 2, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        model(x, feeds["b"])


def test_relative_error():
    """The one output measure of tests, tuner and scripts: relative to the largest reference
    value, absolute against an all-zero reference, NaN where the output holds one."""
    assert tvmconv.relative_error(np.float32([2, -3.5]), np.float32([2, -4])) == 0.125
    assert tvmconv.relative_error(np.zeros(3) + 1e-5, np.zeros(3)) == pytest.approx(1e-5)
    assert np.isnan(tvmconv.relative_error([np.nan, 1.0], [1.0, 1.0]))
    assert tvmconv.relative_error(np.empty((0, 3)), np.empty((0, 3))) == 0.0


def test_wrong_number_of_inputs(model, feeds):
    with pytest.raises(TypeError, match=r"expected 2 input\(s\)"):
        model(feeds["a"])


def test_unknown_and_missing_names(model, feeds):
    with pytest.raises(ValueError, match=r"unknown \['c'\]"):
        model({"a": feeds["a"], "b": feeds["b"], "c": feeds["a"]})
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        model({"a": feeds["a"]})


# -- artefacts ------------------------------------------------------------------------------------

def test_load_missing(tmp_path):
    with pytest.raises(tvmconv.ArtefactError, match="not found"):
        tvmconv.load(tmp_path / "none.so")


@pytest.mark.parametrize("fraction", [0.5, 0.999])
def test_truncated_artefact(two_io_artefact, tmp_path, fraction):
    data = two_io_artefact.read_bytes()
    cut = tmp_path / "cut.so"
    cut.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(tvmconv.ArtefactError, match="truncated|corrupt"):
        tvmconv.load(cut)


def test_flipped_byte_in_library(two_io_artefact, tmp_path):
    data = bytearray(two_io_artefact.read_bytes())
    _, lib_size = read_metadata(two_io_artefact)
    data[lib_size // 2] ^= 0xFF
    bad = tmp_path / "flipped.so"
    bad.write_bytes(bytes(data))
    with pytest.raises(tvmconv.ArtefactError, match="checksum"):
        tvmconv.load(bad)


def test_altered_metadata(two_io_artefact, tmp_path):
    """An edit to the metadata (here input b's shape, same length) makes the file altered too."""
    data = two_io_artefact.read_bytes()
    _, lib_size = read_metadata(two_io_artefact)
    lib, trailer = data[:lib_size], data[lib_size:]
    old = b'"name": "b", "shape": [1, 3, 4, 4]'
    assert trailer.count(old) == 1
    bad = tmp_path / "altered.so"
    bad.write_bytes(lib + trailer.replace(old, b'"name": "b", "shape": [1, 3, 4, 5]'))
    with pytest.raises(tvmconv.ArtefactError, match="corrupt|altered|checksum"):
        tvmconv.load(bad)


def _bare_library(artefact, path) -> dict:
    """Write the artefact's shared library without tvmconv's trailer to ``path``; its metadata."""
    meta, lib_size = read_metadata(artefact)
    path.write_bytes(artefact.read_bytes()[:lib_size])
    return meta


def test_plain_shared_library_is_not_an_artefact(two_io_artefact, tmp_path):
    """A loadable .so without tvmconv's trailer (e.g. TVM's own export) is refused by name."""
    plain = tmp_path / "plain.so"
    _bare_library(two_io_artefact, plain)
    with pytest.raises(tvmconv.ArtefactError, match="not a tvmconv artefact"):
        tvmconv.load(plain)


@pytest.mark.parametrize("content", [b"", b"hello", b"not an artefact at all\n" * 10])
def test_foreign_file(tmp_path, content):
    path = tmp_path / "foreign.so"
    path.write_bytes(content)
    with pytest.raises(tvmconv.ArtefactError, match="not a tvmconv artefact"):
        tvmconv.load(path)


def test_artefact_for_another_target(two_io_artefact, tmp_path):
    """The same library re-labelled (with a valid checksum) as aarch64 code: load refuses it."""
    other = tmp_path / "arm.so"
    meta = _bare_library(two_io_artefact, other)
    meta = {k: v for k, v in meta.items() if k not in ("format", "sha256")}
    append_metadata(other, {**meta, "target_key": "aarch64-neon"})
    assert read_metadata(other)[0]["target_key"] == "aarch64-neon"  # sound, only foreign
    with pytest.raises(tvmconv.TargetError, match="aarch64-neon"):
        tvmconv.load(other)


def test_artefact_of_a_newer_format(two_io_artefact, tmp_path, monkeypatch):
    """An artefact that a newer tvmconv wrote (which may need more of its runtime) is refused."""
    from tvmconv import artefact

    newer = tmp_path / "newer.so"
    meta = _bare_library(two_io_artefact, newer)
    with monkeypatch.context() as patch:
        patch.setattr(artefact, "FORMAT", FORMAT + 1)
        append_metadata(newer, {k: v for k, v in meta.items() if k not in ("format", "sha256")})
    with pytest.raises(tvmconv.ArtefactError, match="newer tvmconv"):
        tvmconv.load(newer)


def test_winograd_taps_made_as_the_artefact_loads(tmp_path):
    """An artefact keeps a Winograd layer's 3x3 weights and makes its (m + 2)^2 taps as it loads
    (4x as many at F(4,3)): smaller than the taps alone, and right. The two convs share one
    kernel and one load-time kernel, not their weights."""
    from tvmconv.build import choose
    from tvmconv.target import resolve

    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c0"], ["r0"]),
             helper.make_node("Conv", ["r0", "w1"], ["y"], pads=[1, 1, 1, 1])]
    consts = {f"w{i}": weights((128, 128, 3, 3), i, 0.05) for i in range(2)}
    model = make_model(nodes, {"x": (1, 128, 12, 12)}, ["y"], consts)
    spec = resolve("x86")
    taps = 0
    for wl in (w for w in workloads(model) if w.kind == "conv2d"):
        template, cfg = choose(wl, spec, {})
        assert template.NAME == "conv2d_winograd"
        taps += (cfg["tile_m"] + 2) ** 2 * 128 * 128 * 4
    path = tvmconv.compile(model, target=spec).export(tmp_path / "winograd.so")
    assert read_metadata(path)[0]["load_weights"]
    assert path.stat().st_size < taps, (path.stat().st_size, taps)
    feeds = rng_inputs(model)
    assert_close(tvmconv.load(path)(feeds), run_ort(model, feeds)[0])


def test_metadata_round_trip(two_io_artefact):
    meta, lib_size = read_metadata(two_io_artefact)
    assert lib_size > 0 and meta["tvmconv_version"] == tvmconv.__version__
    assert [i["name"] for i in meta["inputs"]] == ["a", "b"]
    assert [o["name"] for o in meta["outputs"]] == ["y", "z"]


def _conv_stack(channels: int = 8, hw: int = 10):
    """x -> three 3x3 convs, each with a ReLU: the last two read and write the same blocks, so
    they are one kernel, called twice."""
    nodes, consts, x = [], {}, "x"
    for i in range(3):
        nodes += [helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        consts[f"w{i}"] = weights((channels, channels, 3, 3), i, 0.2)
        x = f"r{i}"
    return make_model(nodes, {"x": (1, channels, hw, hw)}, [x], consts)


def test_profile_times_every_kernel_call_by_its_layer(tmp_path):
    """``Model.profile``: per kernel, its calls in one inference and their time inside the network,
    named by the layer the artefact's kernel table says it computes."""
    from tvmconv.bench import network_rows

    path = tvmconv.compile(_conv_stack(), target="x86").export(tmp_path / "convs.so")
    table = read_metadata(path)[0]["kernels"]
    model = tvmconv.load(path)
    x = np.random.default_rng(0).standard_normal((1, 8, 10, 10)).astype(np.float32)
    profile = model.profile(x, runs=3)
    assert {k.name for k in profile} == set(table)
    convs = sorted((k.calls, k.layer, k.flops) for k in profile if k.layer.startswith("conv2d"))
    flops = 2.0 * 8 * 8 * 9 * 10 * 10
    assert convs == [(1, "conv2d 8x10x10 -> 8x10x10 k3x3 s1", flops),
                     (2, "conv2d 8x10x10 -> 8x10x10 k3x3 s1", flops)]
    assert all(k.seconds > 0 for k in profile)
    assert [k.seconds for k in profile] == sorted((k.seconds for k in profile), reverse=True)
    twice = next(k for k in profile if k.calls == 2)
    assert twice.gflops == pytest.approx(2 * flops / twice.seconds / 1e9)
    rows = network_rows(model, {"x": x}, runs=2)
    assert sorted((r.count, r.name) for r in rows) == sorted((k.calls, k.layer) for k in profile)
    assert_close(model(x), run_ort(_conv_stack(), {"x": x})[0])  # profiling changed nothing


def test_network_rows_profile_a_settled_network(monkeypatch):
    """The in-network table is profiled after a pause and untimed calls, as each timed turn of
    ``bench.interleaved`` is: straight after the peers' turns their spinning threads and the
    cores' ramp inflated it (MobileNetV2's kernels summed to 2.2-3.1 ms against 1.5 end to end)."""
    from tvmconv import bench

    events = []

    class Network:
        def __call__(self, *inputs):
            events.append("call")

        def profile(self, *inputs, runs):
            events.append("profile")
            return []

    monkeypatch.setattr(bench, "WARMUP_SECONDS", 0.0)
    monkeypatch.setattr(bench.time, "sleep", lambda s: events.append("pause"))
    assert bench.network_rows(Network(), {"x": None}) == []
    assert events == ["pause"] + ["call"] * bench.WARMUP_CALLS + ["profile"]


def test_profile_of_an_artefact_without_a_kernel_table(tmp_path):
    """An artefact from before the kernel table: kernels named by their symbols, no FLOPs."""
    compiled = tvmconv.compile(_conv_stack(), target="x86")
    del compiled.meta["kernels"]
    model = tvmconv.load(compiled.export(tmp_path / "old.so"))
    x = np.zeros((1, 8, 10, 10), np.float32)
    profile = model.profile(x, runs=2)
    assert profile and all(k.layer == k.name and k.flops is None and k.gflops is None
                           for k in profile)
    with pytest.raises(InputError, match="runs must be at least 1"):
        model.profile(x, runs=0)


def test_loads_with_tvm_runtime_alone(two_io_artefact):
    """A board has only TVM's runtime: with TVM_USE_RUNTIME_LIB=1 the compiler library
    (libtvm_compiler) is never loaded, and load() and a call still work."""
    code = ("import numpy as np, tvmconv\n"
            f"m = tvmconv.load({str(two_io_artefact)!r})\n"
            "xs = [np.ones(i.shape, np.float32) for i in m.inputs]\n"
            "assert all(np.isfinite(y).all() for y in m.run(*xs))\n"
            "maps = open('/proc/self/maps').read()\n"
            "assert 'libtvm_runtime' in maps and 'libtvm_compiler' not in maps, 'compiler'\n")
    env = {**os.environ, "TVM_USE_RUNTIME_LIB": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_constant_outputs_keep_their_type(tmp_path):
    """A graph output known when compiling (a Shape, a Constant) comes back with its own type, as
    onnxruntime returns it, and the artefact's metadata says so (an int64 shape came back int32
    and was described as float32)."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Constant", [], ["c"], value=helper.make_tensor(
                 "v", TensorProto.DOUBLE, [2], [1.5, 2.5]))]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info(n, t, None) for n, t in
         (("y", TensorProto.FLOAT), ("s", TensorProto.INT64), ("c", TensorProto.DOUBLE))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tvmconv.compile(model).export(tmp_path / "m.so")
    loaded = tvmconv.load(path)
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    refs = run_ort(model, {"x": x})
    got = loaded.run(x)
    assert [o.dtype for o in loaded.outputs] == [str(r.dtype) for r in refs]
    for g, r in zip(got, refs):
        assert g.dtype == r.dtype and g.shape == r.shape
        assert_close(g.astype(np.float32), r.astype(np.float32))


def test_outputs_are_the_callers_own():
    """An output that is the input (Identity, a same-shape Reshape), a constant, or the same
    tensor as another output comes back as an array of its own: the fuzzer found the first call's
    result overwritten by the next call, and a write into a returned constant returned by every
    later call."""
    from conftest import make_model
    from onnx import helper

    nodes = [helper.make_node("Identity", ["x"], ["same"]),
             helper.make_node("Reshape", ["x", "shape"], ["view"]),
             helper.make_node("Add", ["c", "c"], ["const"]),
             helper.make_node("Relu", ["x"], ["relu"]),
             helper.make_node("Identity", ["relu"], ["relu_again"])]
    outputs = ["same", "view", "const", "relu", "relu_again"]
    model = make_model(nodes, {"x": SHAPE}, outputs,
                       {"shape": np.array(SHAPE, np.int64), "c": np.ones(4, np.float32)})
    m = tvmconv.compile(model).model()
    a, b = (np.full(SHAPE, v, np.float32) for v in (1.0, -2.0))
    first = m.run(a)
    for out in first:
        out[...] = 7.0  # the caller's arrays are the caller's to write
    second = m.run(b)
    for got, ref in zip(second, run_ort(model, {"x": b})):
        assert_close(got, ref)
    m.run(a)
    assert all((out == 7.0).all() for out in first)


def test_worker_threads_are_not_pinned_to_a_core():
    """TVM pins its workers to cores by default; a pinned worker that shares its core with a busy
    process makes every parallel kernel wait for it (ResNet-18 ran 13x slower so). tvmconv leaves
    them free to move, unless TVM_BIND_THREADS says otherwise."""
    code = ("import os, numpy as np, onnx, tvmconv\n"
            "from onnx import helper, TensorProto\n"
            "w = helper.make_tensor('w', TensorProto.FLOAT, [16, 16, 3, 3], [0.01] * 2304)\n"
            "g = helper.make_graph([helper.make_node('Conv', ['x', 'w'], ['y'], pads=[1] * 4)],"
            " 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 16, 64, 64])],"
            " [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)], [w])\n"
            "opset = [helper.make_opsetid('', 17)]\n"
            "m = tvmconv.compile(helper.make_model(g, opset_imports=opset))\n"
            "m.model().run(np.ones((1, 16, 64, 64), np.float32))\n"
            "tasks = os.listdir('/proc/self/task')\n"
            "assert len(tasks) > 1, tasks\n"
            "every = os.sched_getaffinity(0)\n"
            "print(sorted(len(os.sched_getaffinity(int(t))) for t in tasks), len(every))\n"
            "assert all(os.sched_getaffinity(int(t)) == every for t in tasks)\n")
    env = {k: v for k, v in os.environ.items() if k != "TVM_BIND_THREADS"}
    env["TVM_NUM_THREADS"] = "2"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


def test_every_module_folder_is_installed():
    """pyproject.toml lists the packages a (non-editable) install copies: a new folder of modules
    left out of it works in a checkout and is missing from every install."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "pyproject.toml").read_text()  # no tomllib before Python 3.11
    listed = set(re.findall(r'"([\w.]+)"', re.search(r"^packages = \[(.*?)\]", text,
                                                       re.S | re.M).group(1)))
    folders = {".".join(p.parent.relative_to(root).parts) for p in (root / "tvmconv").rglob("*.py")}
    assert "tvmconv.templates.x86" in listed and folders <= listed, \
        f"not installed: {sorted(folders - listed)}"
