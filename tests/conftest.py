"""Shared test helpers: the reference model zoo, tiny ONNX graph builders, and the comparison of
tvmconv against onnxruntime that every numerical test uses."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tvmconv import relative_error

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # so tests can `import zoo`

OPSET = 17
TOL = 1e-4  # max|diff| / max|ref| for every numerical comparison


# -- comparison -----------------------------------------------------------------------------------

def assert_close(got, ref, tol: float = TOL, what: str = "output") -> None:
    """Same shape, NaN and infinite where the reference is, and within ``tol`` relative error."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    assert np.array_equal(np.isnan(got), np.isnan(ref)), f"{what}: NaNs differ"
    assert np.array_equal(got[np.isinf(ref)], ref[np.isinf(ref)]) and np.array_equal(
        np.isinf(got), np.isinf(ref)), f"{what}: infinities differ"
    fin = np.isfinite(ref)
    err = relative_error(got[fin], ref[fin])
    assert err <= tol, f"{what}: max|diff|/max|ref| = {err:.3g} > {tol:g}"


# -- building ONNX graphs -------------------------------------------------------------------------

def make_model(nodes, inputs: dict[str, tuple], outputs: list[str],
               consts: dict[str, np.ndarray] | None = None, opset: int = OPSET) -> onnx.ModelProto:
    """A checked model from nodes; float32 graph inputs by shape, initializers from numpy, output
    types filled in by ONNX's shape inference."""
    graph = helper.make_graph(
        list(nodes), "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), n) for n, v in (consts or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = helper.find_min_ir_version_for(model.opset_import)  # onnxruntime reads it
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model


def single(op: str, x_shape: tuple, consts: dict | None = None, const_inputs=(), n_out: int = 1,
           opset: int = OPSET, **attrs) -> onnx.ModelProto:
    """One ``op`` node reading graph input ``x`` then ``const_inputs`` (names in ``consts``, or ""
    for an omitted optional input)."""
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, ["x", *const_inputs], outs, name=f"{op.lower()}_node", **attrs)
    return make_model([node], {"x": x_shape}, outs, consts, opset)


def rng_inputs(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded standard-normal float32 arrays for every graph input."""
    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    return {vi.name: rng.standard_normal([d.dim_value for d in vi.type.tensor_type.shape.dim])
            .astype(np.float32) for vi in model.graph.input if vi.name not in inits}


def weights(shape, seed: int = 1, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def scalar_after_reduce() -> onnx.ModelProto:
    """Elementwise ops on a rank-0 value: a mean over every axis (keepdims=0), scaled, squashed."""
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "k"], ["s"]), helper.make_node("Sigmoid", ["s"], ["y"])]
    return make_model(nodes, {"x": (2, 3, 4, 5)}, ["y"], {"k": np.array(3.0, np.float32)})


def image_to_image(channels: int = 16, hw: tuple[int, int] = (11, 37),
                   out_channels: int = 3) -> onnx.ModelProto:
    """A CycleGAN-style tail: reflection pad, conv, instance norm, ReLU, reflection pad, and a 5x5
    conv to ``out_channels`` (blocked norms and pads, a conv to few channels)."""
    reflect = np.array([0, 0, 2, 2, 0, 0, 2, 2], np.int64)
    nodes = [helper.make_node("Pad", ["x", "p"], ["p1"], mode="reflect"),
             helper.make_node("Conv", ["p1", "w1"], ["c1"]),
             helper.make_node("InstanceNormalization", ["c1", "s", "b"], ["n1"]),
             helper.make_node("Relu", ["n1"], ["r1"]),
             helper.make_node("Pad", ["r1", "p"], ["p2"], mode="reflect"),
             helper.make_node("Conv", ["p2", "w2", "b2"], ["y"])]
    return make_model(nodes, {"x": (1, 3, *hw)}, ["y"], {
        "p": reflect, "w1": weights((channels, 3, 5, 5), 1, 0.2), "s": weights(channels, 2) + 1,
        "b": weights(channels, 3), "w2": weights((out_channels, channels, 5, 5), 4, 0.1),
        "b2": weights(out_channels, 5)})


# -- running --------------------------------------------------------------------------------------

def ort_session(model: onnx.ModelProto):
    """The reference: onnxruntime on CPU, graph optimisations off, one thread."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort_session(model).run(None, feeds)


def run_tvmconv(model, feeds: dict[str, np.ndarray], target: str = "x86",
                **compile_kwargs) -> list[np.ndarray]:
    import tvmconv

    compiled = tvmconv.compile(model, target=target, **compile_kwargs)
    skip_unless_runs_here(compiled.target)
    return compiled.model().run(feeds)


def skip_unless_runs_here(spec) -> None:
    """Skip the rest of a test whose code this host cannot run (AVX-512 code on an AVX2 host), once
    it has compiled: every host checks that each target's code builds; AVX-512 hosts run both."""
    if not spec.runs_here:
        pytest.skip(f"{spec.key} code compiled; this host cannot run it")


def check_vs_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray] | None = None,
                 seed: int = 0, tol: float = TOL, target: str = "x86") -> list[np.ndarray]:
    """Compile ``model`` for an x86 target, run it and onnxruntime on the same inputs,
    compare every output."""
    feeds = rng_inputs(model, seed) if feeds is None else feeds
    ref = run_ort(model, feeds)
    got = run_tvmconv(model, feeds, target=target)
    assert len(got) == len(ref), f"{len(got)} outputs, onnxruntime gives {len(ref)}"
    for k, (g, r) in enumerate(zip(got, ref)):
        assert_close(g, r, tol, what=f"output {k} ({model.graph.output[k].name})")
    return got


# -- the reference model zoo ----------------------------------------------------------------------

@functools.cache
def _zoo_path(name: str) -> Path:
    import zoo

    return zoo.model_path(name)  # $TVMCONV_CACHE or ~/.cache/tvmconv/models; built on first use


@pytest.fixture(scope="session")
def zoo_model():
    """``zoo_model(name)`` -> path of the cached ONNX file of a reference CNN."""
    return _zoo_path


# -- compiled fixtures and compiler internals -----------------------------------------------------

def two_io_model() -> onnx.ModelProto:
    """Inputs a, b [1, 3, 4, 4]; outputs y = relu(conv(a) + b) [1, 3, 4, 4], z = sigmoid(a)."""
    nodes = [helper.make_node("Conv", ["a", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"]),
             helper.make_node("Sigmoid", ["a"], ["z"])]
    return make_model(nodes, {"a": (1, 3, 4, 4), "b": (1, 3, 4, 4)}, ["y", "z"],
                      {"w": weights((3, 3, 3, 3), 9, 0.3)})


@pytest.fixture(scope="session")
def two_io_artefact(tmp_path_factory) -> Path:
    """``two_io_model`` compiled for this machine and exported once per session."""
    import tvmconv

    path = tmp_path_factory.mktemp("artefact") / "two_io.so"
    return tvmconv.compile(two_io_model(), target="x86").export(path)


def workloads(model, target: str = "x86") -> list:
    """The kernel workloads tvmconv's build derives from a model (what tuning records key on)."""
    from tvmconv.frontend import from_onnx
    from tvmconv.passes import optimize
    from tvmconv.target import resolve
    from tvmconv.workload import from_node

    graph = from_onnx(model)
    optimize(graph, resolve(target))
    return [wl for wl in (from_node(n, graph) for n in graph.nodes) if wl is not None]
