"""Bad input gets one clear error, of the documented type, before any work is wasted: models,
targets, tuning logs, and the command lines (exit 2, one ``error:`` line, no traceback)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import assert_close, rng_inputs, run_ort, single, two_io_model, weights, workloads
from onnx import TensorProto, helper

import tvmconv
from tvmconv import records
from tvmconv.hostinfo import host_key, usable_cores
from tvmconv.target import resolve

DIGITS = Path(str(resources.files("tvmconv") / "data" / "digits_cnn.onnx"))


# -- models ---------------------------------------------------------------------------------------

def test_missing_model_file(tmp_path):
    with pytest.raises(tvmconv.ModelError, match="not found"):
        tvmconv.compile(tmp_path / "nope.onnx")


def test_truncated_model_file(tmp_path):
    data = DIGITS.read_bytes()
    cut = tmp_path / "half.onnx"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(tvmconv.ModelError, match="half.onnx"):
        tvmconv.compile(cut)


@pytest.mark.parametrize("content", [b"this is not an ONNX model\n" * 5, b""],
                         ids=["text", "empty"])
def test_not_an_onnx_file(tmp_path, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(tvmconv.ModelError, match="model.onnx"):
        tvmconv.compile(path)


def _topk_model() -> onnx.ModelProto:
    """A conv followed by TopK, an operator outside tvmconv's CNN set."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv0"),
             helper.make_node("Flatten", ["c"], ["f"], name="flat0"),
             helper.make_node("TopK", ["f", "k"], ["y", "idx"], name="best_k")]
    graph = helper.make_graph(
        nodes, "topk", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        [onnx.numpy_helper.from_array(weights((2, 3, 3, 3)), "w"),
         onnx.numpy_helper.from_array(np.array([5], np.int64), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_unsupported_operator_before_compiling(monkeypatch):
    """The error names the operator and the node, and comes before any kernel is built."""
    import tvmconv.build

    def must_not_lower(*args, **kwargs):
        raise AssertionError("lowering started for a model with an unsupported operator")

    monkeypatch.setattr(tvmconv.build, "lower", must_not_lower)
    with pytest.raises(tvmconv.UnsupportedError, match=r"TopK.*best_k"):
        tvmconv.compile(_topk_model(), target="x86")


def _unchecked(nodes, inputs: dict, consts: dict | None = None) -> onnx.ModelProto:
    """A model as a careless exporter writes it: no shape inference, outputs without a shape."""
    graph = helper.make_graph(
        nodes, "bad", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                       for n, s in inputs.items()],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.asarray(v), n) for n, v in (consts or {}).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _node(op, *inputs, **attrs):
    return helper.make_node(op, list(inputs), ["y"], name=f"my_{op.lower()}", **attrs)


X = {"x": (1, 3, 5, 5)}
MISFITS = {  # case: (nodes, inputs, constants, what the message names)
    "concat_heights": ([_node("Concat", "x", "z", axis=1)], {**X, "z": (1, 2, 4, 5)}, {},
                       r"Concat node 'my_concat'.*\[1, 3, 5, 5\], \[1, 2, 4, 5\]"),
    "add_broadcast": ([_node("Add", "x", "z")], {**X, "z": (1, 3, 5, 4)}, {},
                      "Add node 'my_add'.*Incompatible dimensions"),
    "mul_constant": ([_node("Mul", "x", "c")], X, {"c": np.ones((4, 1, 1), np.float32)},
                     "Mul node 'my_mul'"),
    "matmul_columns": ([_node("MatMul", "x", "w")], X, {"w": np.ones((4, 2), np.float32)},
                       "MatMul node 'my_matmul'.*matrix multiplication"),
    "gemm_rows": ([_node("Gemm", "x", "w", transB=1)], {"x": (2, 8)},
                  {"w": np.ones((3, 7), np.float32)}, "Gemm node 'my_gemm'"),
    "conv_bias": ([_node("Conv", "x", "w", "b")], X,
                  {"w": np.ones((4, 3, 3, 3), np.float32), "b": np.ones(5, np.float32)},
                  "bias of shape \\[5\\] for 4 output channels"),
    "batch_norm": ([_node("BatchNormalization", "x", "s", "b", "m", "v")], X,
                   {k: np.ones(4 if k == "s" else 3, np.float32) for k in "sbmv"},
                   "BatchNormalization node 'my_batchnormalization'"),
    "instance_norm": ([_node("InstanceNormalization", "x", "s", "b")], X,
                      {k: np.ones(4, np.float32) for k in "sb"}, "one value per channel"),
    "transpose_perm": ([_node("Transpose", "x", perm=[0, 2, 1])], X, {}, "not a permutation"),
    "squeeze_non_unit": ([_node("Squeeze", "x", "a")], X, {"a": np.array([1])},
                         "Squeeze node 'my_squeeze'.*must be 1"),
    "reshape_count": ([_node("Reshape", "x", "s")], X, {"s": np.array([1, 7, -1])},
                      "Reshape node 'my_reshape'"),
    "depth_to_space": ([_node("DepthToSpace", "x", blocksize=2)], X, {}, "blocksize 2"),
    "pad_away": ([_node("Pad", "x", "p")], X, {"p": np.array([0, 0, -3, 0, 0, 0, -3, 0])},
                 "leave nothing"),
    "clip_vector": ([_node("Clip", "x", "lo")], X, {"lo": np.zeros(2, np.float32)},
                    "must be scalars"),
    "softmax_axis": ([_node("Softmax", "x", axis=4)], X, {}, "Softmax node 'my_softmax'"),
    "conv_float64_weights": ([_node("Conv", "x", "w")], X, {"w": np.ones((4, 3, 3, 3))},
                             "Conv node 'my_conv': its input types do not fit.*double"),
    "gemm_int_bias": ([_node("Gemm", "x", "w", "b")], {"x": (2, 8)},
                      {"w": np.ones((8, 3), np.float32), "b": np.ones(3, np.int32)},
                      "Gemm node 'my_gemm': its input types do not fit.*int32"),
}


@pytest.mark.parametrize("case", list(MISFITS))
def test_inputs_that_do_not_fit(case):
    """Operands that do not fit each other (onnxruntime refuses all of these) fail by the node's
    name, before any kernel is built, where they used to compile into kernels that read past
    their buffers or fail inside TVM."""
    nodes, inputs, consts, match = MISFITS[case]
    with pytest.raises(tvmconv.ModelError, match=match):
        tvmconv.compile(_unchecked(nodes, inputs, consts), target="x86")


def test_unnamed_node_named_by_its_output():
    """Exporters may leave node names empty; the message then names the node's output."""
    node = helper.make_node("Concat", ["x", "z"], ["joined"], axis=1)
    with pytest.raises(tvmconv.ModelError, match="Concat node 'joined'"):
        tvmconv.compile(_unchecked([node], {**X, "z": (1, 2, 4, 5)}), target="x86")


def test_outputs_without_a_shape_and_negative_pads():
    """onnxruntime runs a model whose outputs carry no shape (onnx's checker wants one), and so
    does tvmconv; negative pads crop."""
    model = _unchecked([helper.make_node("Pad", ["x", "p"], ["c"]), _node("Relu", "c")],
                       {"x": (1, 19, 9, 11)}, {"p": np.array([0, -1, -1, 2, 0, 1, 3, -1])})
    feeds = rng_inputs(model)
    ref = run_ort(model, feeds)[0]
    assert ref.shape == (1, 19, 11, 12)
    assert_close(tvmconv.compile(model, target="x86").model().run(feeds)[0], ref)


def test_unsupported_input_dtype():
    model = single("Relu", (1, 3, 4, 4))
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    with pytest.raises(tvmconv.UnsupportedError, match="float32"):
        tvmconv.compile(model)


@pytest.mark.parametrize("attrs, scales, match", [
    ({"mode": "cubic"}, [1, 1, 2, 2], "mode 'cubic'"),
    ({}, [1, 2, 2, 2], "resizes batch or channels"),
    ({"coordinate_transformation_mode": "tf_crop_and_resize"}, [1, 1, 2, 2], "tf_crop_and_resize"),
])
def test_resize_outside_scope(attrs, scales, match):
    """Resize modes tvmconv does not compute are refused by name, before any kernel is built."""
    model = single("Resize", (1, 3, 4, 4), {"s": np.array(scales, np.float32)}, ["", "s"],
                   opset=13, **attrs)
    with pytest.raises(tvmconv.UnsupportedError, match=match):
        tvmconv.compile(model)


def test_symbolic_dimension_needs_a_shape():
    """A symbolic non-batch dimension is an error until ``input_shapes`` fixes it."""
    model = single("Relu", (1, 3, 4, 4))
    dim = model.graph.input[0].type.tensor_type.shape.dim[2]
    dim.dim_param = "height"
    with pytest.raises(tvmconv.ModelError, match="height"):
        tvmconv.compile(model)
    out = tvmconv.compile(model, input_shapes={"x": (1, 3, 5, 4)})
    assert out.inputs[0].shape == (1, 3, 5, 4)


def test_tensor_too_large_for_32_bit_indices():
    """A shape whose tensors outgrow 32-bit indexing is refused by name before any kernel is
    built (TVM stopped with an internal error on the index literal)."""
    with pytest.raises(tvmconv.UnsupportedError, match=r"'x' would hold 4,800,000,000 elements"):
        tvmconv.compile(single("Relu", (1, 3, "H", "W")),
                        input_shapes={"x": (1, 3, 40000, 40000)})


def test_input_shapes_for_an_unknown_input():
    """A misspelt name is the error, even where another input's symbolic dimension is unset."""
    with pytest.raises(tvmconv.ModelError, match="nonexistent"):
        tvmconv.compile(single("Relu", (1, 3)), input_shapes={"nonexistent": (1, 3)})
    with pytest.raises(tvmconv.ModelError, match=r"unknown input\(s\) \['y'\].* are \['x'\]"):
        tvmconv.compile(single("Relu", ("N", 3, "H", "W")), input_shapes={"y": (1, 3, 8, 8)})


@pytest.mark.parametrize("shape", [(1, 3, 8), (1, 3, 8, 8, 2), (1, 4, 8, 8)],
                         ids=["rank_3", "rank_5", "static_channels"])
def test_input_shapes_that_do_not_fit_the_model(shape):
    """Only symbolic dimensions can be chosen: another rank or another static size compiled a
    model for inputs it was not made for."""
    model = single("Relu", ("N", 3, "H", "W"))
    with pytest.raises(tvmconv.ModelError, match=r"the model declares \[N, 3, H, W\]"):
        tvmconv.compile(model, input_shapes={"x": shape})
    assert tvmconv.compile(model, input_shapes={"x": (2, 3, 5, 4)}).inputs[0].shape == (2, 3, 5, 4)


# -- targets --------------------------------------------------------------------------------------

@pytest.mark.parametrize("target, match", [
    ("riscv", r"unknown target 'riscv'.*x86"),
    ("llvm -mcpu=skylake", "JSON"),
    ('{"kind": "llvm", ', "JSON"),
    ('{"kind": "vulkan"}', "vulkan"),
    ('{"kind": "llvm", "mcpu": "znver3", "bogus": 1}', "Unknown config option 'bogus'"),
    ('{"kind": "llvm", "num-cores": "x"}', "Option 'num-cores'"),
    ('{"kind": "llvm", "mcpu": "notacpu"}', "LLVM knows no CPU 'notacpu'"),
    ('{"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "znver3"}',
     "no CPU 'znver3' for aarch64-linux-gnu"),
    ('{"kind": "cuda", "bogus": 1}', "Unknown config option 'bogus'"),
], ids=["unknown", "old_string", "bad_json", "unknown_kind", "unknown_option", "option_type",
        "unknown_cpu", "cpu_of_another_isa", "cuda_option"])
def test_bad_target(target, match):
    with pytest.raises(tvmconv.TargetError, match=match):
        tvmconv.compile(single("Relu", (1, 3)), target=target)


def test_json_target_dict():
    """A TVM JSON target for an older x86 CPU compiles, and the code runs here."""
    model = single("Conv", (1, 3, 5, 5), {"w": weights((4, 3, 3, 3))}, ["w"])
    compiled = tvmconv.compile(model, target='{"kind": "llvm", "mcpu": "haswell"}')
    assert compiled.target.key == "x86-avx2"
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 5)).astype(np.float32)
    assert_close(compiled(x), run_ort(model, {"x": x})[0])


# -- tuning logs ----------------------------------------------------------------------------------

def _conv_model():
    return single("Conv", (1, 8, 6, 6), {"w": weights((16, 8, 3, 3), 2, 0.2)}, ["w"],
                  pads=[1, 1, 1, 1])


def _conv_record(model, config: dict) -> dict:
    (wl,) = [w for w in workloads(model) if w.kind == "conv2d"]
    return records.make(resolve("x86").key, wl.key, "conv2d_direct", config, latencies=[1e-3])


RECORD = '{"target": "x86-avx2", "workload": "w", "template": "t", "config": {}, '
GARBAGE = ["not json at all", "{}", "[1, 2, 3]", '{"target": "x86-avx2", "workload": 3}',
           '{"target": "x86-avx512", "workload": "w", "template": "t", "config": "x"}',
           '{"target": "x86-avx512", "workl',
           # fields of the wrong type, which stopped compile and tune with an internal error
           RECORD + '"latencies": "abc"}', RECORD + '"latencies": [null]}',
           RECORD + '"latencies": {"a": 1}}', RECORD + '"error": 5}',
           RECORD.replace('"x86-avx2"', '["x"]') + '"latencies": [1e-3]}']


def test_log_with_garbage_lines(tmp_path):
    """Bad lines are skipped with one warning each; the good record still comes through, and a
    compile with that log works."""
    model = _conv_model()
    good = _conv_record(model, {"tile_w": 2, "tile_h": 1, "tile_oc": 16, "unroll_kw": 0,
                                "reduce_outer": 1})
    log = tmp_path / "tune.jsonl"
    log.write_text("\n".join([GARBAGE[0], json.dumps(good), *GARBAGE[1:]]) + "\n")
    with pytest.warns(UserWarning, match="skipping a bad log line") as caught:
        recs = list(records.read(log))
    assert recs == [good]
    assert sum("skipping a bad log line" in str(w.message) for w in caught) == len(GARBAGE)
    feeds = rng_inputs(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = tvmconv.compile(model, target="x86", log=log).model().run(feeds)[0]
    assert not [w for w in caught if "does not fit" in str(w.message)], "the good record fits"
    assert_close(y, run_ort(model, feeds)[0])


def test_log_record_that_does_not_fit(tmp_path):
    """A record whose config is outside the workload's space is ignored with a warning, and the
    default schedule still computes the right answer."""
    model = _conv_model()
    bad = _conv_record(model, {"tile_w": 5, "tile_h": 1, "tile_oc": 16, "unroll_kw": 0,
                               "reduce_outer": 1})  # 5 does not divide the output width 6
    log = tmp_path / "tune.jsonl"
    records.append(log, [bad])
    feeds = rng_inputs(model)
    with pytest.warns(UserWarning, match="does not fit"):
        y = tvmconv.compile(model, target="x86", log=log).model().run(feeds)[0]
    assert_close(y, run_ort(model, feeds)[0])


def test_missing_log_file(tmp_path):
    with pytest.raises(tvmconv.TvmconvError, match="tuning log not found"):
        tvmconv.compile(_conv_model(), log=tmp_path / "missing.jsonl")


def test_a_file_that_is_not_a_tuning_log(tmp_path):
    """A model given as the log is one error, not a warning per line of it; so is a log none of
    whose lines is a record, and a directory. An empty log is one yet to be written."""
    model = tmp_path / "conv.onnx"
    onnx.save(_conv_model(), str(model))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(GARBAGE[6] + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for log, match in [(model, r"conv.onnx is not a tuning log.*\(line 1: not JSON\)"),
                           (bad, "line 1: latencies must be a list of seconds"),
                           (tmp_path, "is a directory")]:
            with pytest.raises(tvmconv.TvmconvError, match=match):
                tvmconv.compile(model, log=log)
        (tmp_path / "empty.jsonl").write_text("\n")
        tvmconv.compile(model, log=tmp_path / "empty.jsonl")


# -- command lines --------------------------------------------------------------------------------

def _cli(module: str, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"tvmconv.{module}", *map(str, args)],
                          check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def _assert_one_error_line(proc: subprocess.CompletedProcess, match: str) -> None:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, f"exit {proc.returncode}; stderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert match in lines[0], lines[0]


@pytest.mark.parametrize("module", ["compile", "run", "demo", "tune", "bench"])
def test_cli_help(module):
    proc = _cli(module, "--help")
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr


def _compile_cases(tmp_path):
    text = tmp_path / "text.onnx"
    text.write_text("not a model\n")
    topk = tmp_path / "topk.onnx"
    onnx.save(_topk_model(), str(topk))
    relu = tmp_path / "relu.onnx"
    onnx.save(single("Relu", (1, 3)), str(relu))
    misfit = tmp_path / "misfit.onnx"
    nodes, inputs, consts, _ = MISFITS["concat_heights"]
    onnx.save(_unchecked(nodes, inputs, consts), str(misfit))
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    dyn = tmp_path / "dyn.onnx"
    onnx.save(single("Relu", ("N", 3, "H", "W")), str(dyn))
    return {
        "missing": ([tmp_path / "missing.onnx"], "not found"),
        "not_onnx": ([text], "text.onnx"),
        "unsupported": ([topk, "-o", tmp_path / "t.so"], "TopK"),
        "old_target": ([relu, "--target", "llvm -mcpu=skylake"], "JSON"),
        "unknown_target": ([relu, "--target", "riscv"], "riscv"),
        "bad_input_shape": ([relu, "--input-shape", "x:1,a"], "--input-shape"),
        "missing_log": ([relu, "--log", tmp_path / "no.jsonl"], "tuning log not found"),
        "misfit": ([misfit, "-o", tmp_path / "m.so"], "Concat node 'my_concat'"),
        "model_is_a_directory": ([folder], f"model file {folder} is a directory"),
        "log_is_a_directory": ([relu, "--log", folder], f"tuning log {folder} is a directory"),
        "log_is_a_model": ([relu, "--log", topk, "-o", tmp_path / "r.so"],
                           "topk.onnx is not a tuning log"),
        "output_is_a_directory": ([relu, "-o", folder], f"-o {folder} is a directory"),
        "output_unwritable": ([relu, "-o", "/proc/r.so"], "-o /proc/r.so: cannot write in /proc"),
        "shape_of_another_rank": ([dyn, "--input-shape", "x:1,3,8"],
                                  "the shape [1, 3, 8], but the model declares [N, 3, H, W]"),
        "shape_of_an_unknown_input": ([dyn, "--input-shape", "y:1,3,8,8"],
                                      "--input-shape names unknown input(s) ['y']"),
        "target_option": ([relu, "--target", '{"kind": "llvm", "bogus": 1}'],
                          "Unknown config option 'bogus'"),
        "target_cpu": ([relu, "--target", '{"kind": "llvm", "mcpu": "notacpu"}'],
                       "LLVM knows no CPU 'notacpu'"),
    }


@pytest.mark.parametrize("case", ["missing", "not_onnx", "unsupported", "old_target",
                                  "unknown_target", "bad_input_shape", "missing_log",
                                  "misfit", "model_is_a_directory", "log_is_a_directory",
                                  "log_is_a_model", "output_is_a_directory",
                                  "output_unwritable", "shape_of_another_rank",
                                  "shape_of_an_unknown_input", "target_option", "target_cpu"])
def test_cli_compile_bad_input(tmp_path, case):
    args, match = _compile_cases(tmp_path)[case]
    _assert_one_error_line(_cli("compile", *args), match)


def _run_cases(tmp_path, artefact):
    text = tmp_path / "text.so"
    text.write_text("not an artefact\n" * 4)
    wrong_shape = tmp_path / "wrong_shape.npy"
    np.save(wrong_shape, np.zeros((1, 3, 5, 5), np.float32))
    wrong_dtype = tmp_path / "wrong_dtype.npy"
    np.save(wrong_dtype, np.zeros((1, 3, 4, 4), np.float64))
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((1, 3, 4, 4), np.float32))
    npz = tmp_path / "x.npz"
    np.savez(npz, a=np.zeros((1, 3, 4, 4), np.float32))
    return {
        "missing": ([tmp_path / "missing.so"], "not found"),
        "not_artefact": ([text], "not a tvmconv artefact"),
        "wrong_shape": ([artefact, "--input", f"a={wrong_shape}", "--input", f"b={good}",
                         "--repeat", 0], "(1, 3, 4, 4)"),
        "wrong_dtype": ([artefact, "--input", f"a={wrong_dtype}", "--input", f"b={good}",
                         "--repeat", 0], "float32"),
        "missing_input": ([artefact, "--input", f"a={good}", "--repeat", 0], "'b'"),
        "unreadable_npy": ([artefact, "--input", f"a={text}", "--input", f"b={good}"],
                           "text.so is not a .npy file"),
        "negative_repeat": ([artefact, "--repeat", -1], "--repeat"),
        "negative_seed": ([artefact, "--seed", -1], "--seed must be at least 0"),
        "unknown_input_name": ([artefact, "--input", f"c={good}", "--input", f"b={good}"],
                               "the model has no input 'c'; its inputs are ['a', 'b']"),
        "input_given_twice": ([artefact, "--input", f"a={good}", "--input", f"a={good}"],
                              "'a' is given twice"),
        "npz_input": ([artefact, "--input", f"a={npz}", "--input", f"b={good}"],
                      "x.npz is a .npz archive"),
        "artefact_is_a_directory": ([tmp_path], f"artefact {tmp_path} is a directory"),
        "output_is_a_directory": ([artefact, "--output", tmp_path, "--repeat", 0],
                                  f"--output {tmp_path} is a directory"),
        "two_outputs_in_a_npy": ([artefact, "--output", tmp_path / "y.npy", "--repeat", 0],
                                 "the model has 2 outputs; save them with --output FILE.npz"),
    }


@pytest.mark.parametrize("case", ["missing", "not_artefact", "wrong_shape", "wrong_dtype",
                                  "missing_input", "unreadable_npy", "negative_repeat",
                                  "negative_seed", "unknown_input_name", "input_given_twice",
                                  "npz_input", "artefact_is_a_directory",
                                  "output_is_a_directory", "two_outputs_in_a_npy"])
def test_cli_run_bad_input(tmp_path, two_io_artefact, case):
    args, match = _run_cases(tmp_path, two_io_artefact)[case]
    _assert_one_error_line(_cli("run", *args), match)


def test_cli_compile_then_run(tmp_path):
    """The good path of both commands, end to end: the saved outputs are onnxruntime's."""
    model = two_io_model()
    onnx.save(model, str(tmp_path / "m.onnx"))
    proc = _cli("compile", tmp_path / "m.onnx", "-o", tmp_path / "m.so", "-q")
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.so").stat().st_mode & 0o777 == 0o666 & ~umask, "as open() makes files"
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal((1, 3, 4, 4)).astype(np.float32) for n in "ab"}
    for n, x in feeds.items():
        np.save(tmp_path / f"{n}.npy", x)
    proc = _cli("run", tmp_path / "m.so", "--input", f"b={tmp_path / 'b.npy'}",
                "--input", f"a={tmp_path / 'a.npy'}", "--output", tmp_path / "out.npz",
                "--repeat", 3)
    assert proc.returncode == 0, proc.stderr
    saved = np.load(tmp_path / "out.npz")
    for name, ref in zip(["y", "z"], run_ort(model, feeds)):
        assert_close(saved[name], ref, what=name)


def test_cli_bench_avx2_code_and_layer_tables(tmp_path):
    """AVX2 code meets OpenVINO held to AVX2 where the host has AVX-512 (an AVX2 machine's peer);
    onnxruntime runs beside it either way. Then two per-layer tables: each kernel inside the
    network, and each kernel alone; both list the conv (residual add and ReLU fused in) and the
    sigmoid."""
    onnx.save(two_io_model(), str(tmp_path / "m.onnx"))
    proc = _cli("bench", tmp_path / "m.onnx", "--target", "x86-avx2", "--rounds", 1,
                "--per-round", 1)
    assert proc.returncode == 0, proc.stderr
    head, *runtimes = proc.stdout.split("\nper layer (")[0].splitlines()
    assert head.endswith("; OpenVINO held to AVX2") == (host_key() == "x86-avx512"), head
    names = [ln.split()[0] for ln in runtimes if ln.strip().endswith(("ms", "x"))]
    assert names[:2] == ["tvmconv", "onnxruntime"], proc.stdout
    tables = proc.stdout.split("\nper layer (")[1:]
    assert [t.split(";")[0] for t in tables] == ["inside the network", "each kernel alone"]
    for table in tables:
        layers = [" ".join(ln.split()[5:]) for ln in table.splitlines()[2:] if ln.strip()]
        assert "conv2d 3x4x4 -> 3x4x4 k3x3 s1" in layers and "elementwise -> 1x3x4x4" in layers


def test_bench_layer_table_measures_gpu_kernels_by_no_cpu_yardstick():
    """A GPU's layers were once printed as a fraction of this CPU's sgemm rate (1250% for a stem
    conv on an H200): on a GPU the table has no such column."""
    from tvmconv.bench import Row, layer_table

    rows = [Row("conv a", 2, 1e-3, 2e9), Row("conv b", 1, 3e-3, 3e9)]
    cpu, gpu = layer_table(rows, 100.0).splitlines(), layer_table(rows, None).splitlines()
    assert "sgemm 100 GFLOP/s" in cpu[1] and "of sgemm" in cpu[2]
    assert [ln.split() for ln in cpu[3:]] == [["3.000", "60.0%", "1000.0", "1000.0%", "1", "conv",
                                               "b"], ["2.000", "40.0%", "2000.0", "2000.0%", "2",
                                                      "conv", "a"]]
    assert "sgemm" not in "\n".join(gpu)
    assert [ln.split()[:3] for ln in gpu[3:]] == [["3.000", "60.0%", "1000.0"],
                                                  ["2.000", "40.0%", "2000.0"]]


def test_bench_turns_warm_up_for_a_tenth_of_a_second(monkeypatch):
    """After the pause between turns the cores take 10-25 ms to get back to speed: each turn's
    untimed calls fill at least 0.1 s, so a short network's timed calls come after that ramp
    (three calls of SqueezeNet did not), and at least three calls for a long one."""
    import itertools
    import time

    from tvmconv import bench

    monkeypatch.setattr(bench, "PAUSE_SECONDS", 0.0)
    calls = []  # (runner, start), in call order

    def runner(name, secs):
        def run(feeds):
            calls.append((name, time.perf_counter()))
            time.sleep(secs)
        return run

    times = bench.interleaved({"short": runner("short", 0.005), "long": runner("long", 0.06)},
                              {}, rounds=2, per_round=2)
    assert [len(t) for t in times.values()] == [2 * 2, 2 * 2]
    turns = [(name, [t for _, t in group])
             for name, group in itertools.groupby(calls, key=lambda c: c[0])]
    assert [name for name, _ in turns] == ["short", "long"] * 2
    for name, starts in turns:  # each turn's last two calls are the timed ones
        assert len(starts) - 2 >= 3 and starts[-2] - starts[0] >= bench.WARMUP_SECONDS, name
        assert name == "long" or len(starts) - 2 >= 5  # 0.1 s of 5 ms calls: more than 3


def test_cli_run_profile(two_io_artefact):
    """``run --profile``: the artefact's kernels timed inside the network, named by layer."""
    proc = _cli("run", two_io_artefact, "--repeat", 0, "--profile")
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("\nper layer (inside the network):\n")[1].splitlines()[1:]
    layers = [" ".join(ln.split()[4:]) for ln in table]
    assert "conv2d 3x4x4 -> 3x4x4 k3x3 s1" in layers and "elementwise -> 1x3x4x4" in layers


def test_cli_ends_quietly_when_its_reader_goes_away():
    """``python -m tvmconv.run m.so --profile | head -3`` printed "error: BrokenPipeError" once
    head had read enough: a closed stdout now ends the command with the shell's SIGPIPE code,
    without a word, whether the pipe breaks while it prints or at the last flush."""
    for body in ["for _ in range(100000): print('x' * 50)", "print('x' * 10); return 0"]:
        code = f"from tvmconv import cli\ndef main(argv):\n    {body}\ncli.run(main)\n"
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        proc.stdout.close()  # long before the child has imported tvmconv
        _, err = proc.communicate(timeout=120)
        assert (proc.returncode, err) == (141, ""), body


def test_cli_run_saves_exactly_where_told(tmp_path):
    """np.save and np.savez add their suffix to a name without it: "saved outputs to yout" was
    a lie. A .npz holds the outputs by name; a missing folder is made."""
    from tvmconv.run import main as run_main

    artefact = tvmconv.compile(single("Relu", (1, 3))).export(tmp_path / "relu.so")
    for name in ["yout", "y.npz", "new/folder/y.npy"]:
        assert run_main([str(artefact), "--output", str(tmp_path / name), "--repeat", "0"]) == 0
    assert np.load(tmp_path / "yout").shape == (1, 3)
    assert list(np.load(tmp_path / "y.npz")) == ["y0"]
    assert np.load(tmp_path / "new" / "folder" / "y.npy").shape == (1, 3)
    assert not list(tmp_path.glob("yout.*")) and not list(tmp_path.glob("y.npz.*"))


@pytest.mark.parametrize("case", ["compile_output", "compile_default_output", "compile_output_log",
                                  "tune_log_is_the_model", "tune_log_is_not_a_log",
                                  "run_output_is_an_input", "run_output_is_the_artefact"])
def test_cli_never_writes_over_what_it_reads(tmp_path, two_io_artefact, case):
    """An output or log that is one of the command's own inputs is refused, and the file is left
    as it was (tune appended JSON to the model; compile and run overwrote their inputs)."""
    model = tmp_path / "relu.onnx"
    onnx.save(single("Relu", (1, 3)), str(model))
    model_so = tmp_path / "model.so"  # an ONNX model named *.so: its default output is itself
    model_so.write_bytes(model.read_bytes())
    notes = tmp_path / "notes.txt"
    notes.write_text("not a tuning log\n")
    artefact = tmp_path / "copy.so"
    artefact.write_bytes(two_io_artefact.read_bytes())
    xa, xb = tmp_path / "a.npy", tmp_path / "b.npy"
    for x in (xa, xb):
        np.save(x, np.zeros((1, 3, 4, 4), np.float32))
    log = tmp_path / "t.jsonl"
    records.append(log, [_conv_record(_conv_model(), {"tile_w": 2})])
    module, args, match, victim = {
        "compile_output": ("compile", [model, "-o", model], f"-o {model} is the model itself",
                           model),
        "compile_default_output": ("compile", [model_so],
                                   f"the default -o {model_so} is the model itself", model_so),
        "compile_output_log": ("compile", [model, "--log", log, "-o", log],
                               "is a tuning log itself", log),
        "tune_log_is_the_model": ("tune", [model, "--log", model, "--trials", 1, "-q"],
                                  f"--log {model} is the model itself", model),
        "tune_log_is_not_a_log": ("tune", [model, "--log", notes, "--trials", 1, "-q"],
                                  "notes.txt is not a tuning log", notes),
        "run_output_is_an_input": ("run", [artefact, "--input", f"a={xa}", "--input", f"b={xb}",
                                           "--output", xb, "--repeat", 0],
                                   f"--output {xb} is input 'b' itself", xb),
        "run_output_is_the_artefact": ("run", [artefact, "--output", artefact, "--repeat", 0],
                                       f"--output {artefact} is the artefact itself", artefact),
    }[case]
    before = victim.read_bytes()
    _assert_one_error_line(_cli(module, *args), match)
    assert victim.read_bytes() == before


def _tune_cases(tmp_path):
    model = tmp_path / "relu.onnx"
    onnx.save(single("Relu", (1, 3)), str(model))
    log = ["--log", tmp_path / "t.jsonl"]  # never the default under the current directory
    return {
        "log_is_a_directory": ([model, "--log", tmp_path], f"--log {tmp_path} is a directory"),
        "log_unwritable": ([model, "--log", "/proc/t.jsonl"], "cannot write in /proc"),
        "empty_budget": ([model, *log, "--budget", ""], "--budget ''"),
        "zero_budget": ([model, *log, "--budget", "0m"], "--budget '0m': must be positive"),
        "zero_batch": ([model, *log, "--batch", 0], "--batch must be at least 1, got 0"),
        "negative_batch": ([model, *log, "--batch", -1], "--batch must be at least 1, got -1"),
        "zero_patience": ([model, *log, "--patience", 0], "--patience must be at least 1"),
        "port_out_of_range": ([model, *log, "--rpc", "127.0.0.1:99999"], "port from 1 to 65535"),
        "no_host": ([model, *log, "--rpc", ":9190"], "--rpc ':9190': expected HOST:PORT"),
        "nobody_listening": ([model, *log, "--rpc", "127.0.0.1:1", "--rpc-key", "k"],
                             "--rpc 127.0.0.1:1: cannot connect"),
        "unknown_host": ([model, *log, "--rpc", "nosuchhost.invalid:9190"],
                         "--rpc nosuchhost.invalid:9190: cannot connect"),
    }


@pytest.mark.parametrize("case", ["log_is_a_directory", "log_unwritable", "empty_budget",
                                  "zero_budget", "zero_batch", "negative_batch", "zero_patience",
                                  "port_out_of_range", "no_host", "nobody_listening",
                                  "unknown_host"])
def test_cli_tune_bad_input(tmp_path, case):
    """Refused before any work, naming the option; a bad --rpc address by name, at once (it was
    a child's traceback and a ConnectionResetError, or 34 s of retries)."""
    args, match = _tune_cases(tmp_path)[case]
    _assert_one_error_line(_cli("tune", *args), match)
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.parametrize("args, match", [
    (["--rounds", 0], "--rounds must be at least 1, got 0"),
    (["--rounds", -1], "--rounds must be at least 1, got -1"),
    (["--per-round", 0], "--per-round must be at least 1, got 0"),
], ids=["zero_rounds", "negative_rounds", "zero_per_round"])
def test_cli_bench_bad_input(tmp_path, args, match):
    """No runs to time printed nan ms and exited 0."""
    onnx.save(single("Relu", (1, 3)), str(tmp_path / "m.onnx"))
    _assert_one_error_line(_cli("bench", tmp_path / "m.onnx", "--no-layers", *args), match)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is not None,
                    reason="matplotlib is installed")
@pytest.mark.parametrize("module", ["tune", "bench"])
def test_cli_plot_needs_matplotlib_before_the_work(tmp_path, module):
    onnx.save(single("Relu", (1, 3)), str(tmp_path / "m.onnx"))
    more = ["--log", tmp_path / "t.jsonl", "--trials", 1] if module == "tune" else []
    proc = _cli(module, tmp_path / "m.onnx", "--plot", tmp_path / "p.png", *more)
    _assert_one_error_line(proc, "--plot needs matplotlib: pip install matplotlib")
    assert not proc.stdout and not (tmp_path / "t.jsonl").exists()


def test_cli_bench_symbolic_input_and_a_bad_thread_count(tmp_path):
    """bench takes --input-shape as compile does (its message asked for it), and a
    TVM_NUM_THREADS that is not a count means every core, as elsewhere (it was an internal
    error)."""
    onnx.save(single("Relu", ("N", 3, "H", "W")), str(tmp_path / "dyn.onnx"))
    proc = _cli("bench", tmp_path / "dyn.onnx", "--input-shape", "x:1,3,8,8", "--no-layers",
                "--rounds", 1, "--per-round", 1, env={"TVM_NUM_THREADS": "abc"})
    assert proc.returncode == 0, proc.stderr
    assert f"batch 1, {usable_cores()} threads" in proc.stdout.splitlines()[0], proc.stdout


@pytest.mark.parametrize("args, match", [
    (["--repeat", 0], "--repeat must be at least 1, got 0"),
    (["--repeat", -5], "--repeat must be at least 1, got -5"),
    (["--target", "aarch64" if host_key().startswith("x86") else "x86-avx2"],
     "code cannot run on this machine"),
], ids=["zero_repeat", "negative_repeat", "foreign_target"])
def test_cli_demo_bad_input(args, match):
    """Said before compiling; a target that cannot run here blamed a temporary file."""
    _assert_one_error_line(_cli("demo", *args), match)


@pytest.mark.parametrize("entry", ["cli.run(main)", "runner._start_builder(); main()"],
                         ids=["command", "tuning_worker"])
def test_commands_and_tuning_workers_keep_torch_out(entry):
    """tvm_ffi imports PyTorch whenever it is installed (3 s of each command's start-up here);
    neither a command nor a tuning worker uses it, so TVM starts there without it."""
    pytest.importorskip("torch", reason="PyTorch is not installed: there is nothing to keep out")
    code = ("import sys\nfrom tvmconv import cli, runner\n"
            "def main(argv=None):\n    import tvm\n    print(sys.modules.get('torch'))\n"
            f"{entry}\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "None", proc.stdout


def test_console_scripts_print_one_line():
    """pyproject's console scripts (tvmconv, tvmconv-compile, tvmconv-run) go through cli.run
    as python -m does: tvmconv-compile called compile.main directly, so bad input ended in a
    traceback. Each runs in a process of its own, as a console script does."""
    import re

    section = (Path(__file__).parents[1] / "pyproject.toml").read_text().split(
        "[project.scripts]")[1].split("\n[")[0]  # no tomllib on Python 3.10
    scripts = dict(re.findall(r'^(\S+) = "(\S+)"$', section, re.M))
    for name, argv in (("tvmconv-compile", ["no-such.onnx"]), ("tvmconv-run", ["no-such.so"]),
                       ("tvmconv", ["run", "no-such.so"])):
        module, func = scripts[name].split(":")
        code = f"import sys; sys.argv = {[name, *argv]!r}; from {module} import {func}; {func}()"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300, check=False)
        err = proc.stderr
        assert proc.returncode == 2 and err.startswith("error:") and "no-such" in err, (name, err)
        assert len(err.splitlines()) == 1, err


def test_importing_the_compile_command_keeps_tvmconv_compile_callable(monkeypatch):
    """``import tvmconv.compile`` (the command's module) rebinds the package's ``compile``
    function to that module, as Python does for every submodule: the module compiles when
    called, so API code that also imports the command keeps working."""
    import importlib
    import types

    monkeypatch.setattr(tvmconv, "compile", tvmconv.compile)  # both restored after the test
    monkeypatch.delitem(sys.modules, "tvmconv.compile", raising=False)
    importlib.import_module("tvmconv.compile")
    assert isinstance(tvmconv.compile, types.ModuleType)
    model = single("Relu", (1, 3, 4, 5))
    feeds = rng_inputs(model)
    assert_close(tvmconv.compile(model, target="x86").model().run(feeds)[0],
                 run_ort(model, feeds)[0])


def test_cli_commands_listed():
    """python -m tvmconv lists the commands (exit 2 without one) and runs the one named."""
    def tvmconv_main(*args):
        return subprocess.run([sys.executable, "-m", "tvmconv", *args], check=False,
                              capture_output=True, text=True, timeout=300)

    proc = tvmconv_main()
    assert proc.returncode == 2 and proc.stderr.splitlines()[-1] == "error: no command given"
    assert all(f"  {name} " in proc.stderr for name in ["compile", "run", "tune", "bench", "demo"])
    proc = tvmconv_main("frobnicate")
    assert proc.returncode == 2 and "error: unknown command 'frobnicate'" in proc.stderr
    proc = tvmconv_main("run", "--help")
    assert proc.returncode == 0 and "usage: python -m tvmconv.run" in proc.stdout, proc.stderr
    proc = tvmconv_main("run", "no-such.so")
    assert proc.returncode == 2 and proc.stderr == "error: artefact not found: no-such.so\n"
