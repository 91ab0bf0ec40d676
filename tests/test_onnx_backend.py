"""ONNX's conformance suite (``onnx.backend.test``): node cases of tvmconv's operators, on the CPU.

Selected: the node cases of the operators in README's list (``OPERATORS``), CPU only, minus the
cases outside tvmconv's scope (``OUT_OF_SCOPE``, each skipped with its reason). Expected failures
live in ``onnx_backend_xfail.txt`` beside this file, one pattern and its reason per line; they run
(strict xfail) and count as failures in the pass ratio, which ``test_pass_ratio`` holds at >= 95%.
"""

from __future__ import annotations

import re
from pathlib import Path

import onnx.backend.test
import pytest

import tvmconv.onnx_backend
from tvmconv.frontend import SUPPORTED_OPS

# The cases carry the opset they were written for (up to 28); tvmconv converts newer ones as its
# newest (21) and says so, once per case.
pytestmark = pytest.mark.filterwarnings("ignore:ONNX opset .* is newer than:UserWarning")

# Operator -> the test-name prefix of its node cases (some are named after the kind of operator).
OPERATORS = {
    "Abs": "abs", "Add": "add", "AveragePool": "averagepool", "BatchNormalization": "batchnorm",
    "Ceil": "ceil", "Celu": "celu", "Clip": "clip", "Concat": "concat",
    "Constant": "constant", "ConstantOfShape": "constantofshape",
    "Conv": "(basic_)?conv", "ConvTranspose": "convtranspose", "DepthToSpace": "depthtospace",
    "Div": "div",
    "Dropout": "(dropout|training_dropout)", "Elu": "elu", "Erf": "erf", "Exp": "exp",
    "Expand": "expand", "Gelu": "gelu", "LayerNormalization": "layer_normalization",
    "Flatten": "flatten", "Floor": "floor", "Gemm": "gemm",
    "GlobalAveragePool": "globalaveragepool", "GlobalMaxPool": "globalmaxpool",
    "GlobalLpPool": "globallppool", "GroupNormalization": "group_normalization",
    "HardSigmoid": "hardsigmoid", "HardSwish": "hardswish",
    "Identity": "identity", "If": "if", "InstanceNormalization": "instancenorm",
    "LeakyRelu": "leakyrelu",
    "Log": "log", "LogSoftmax": "logsoftmax", "LpPool": "lppool", "LRN": "lrn",
    "MatMul": "matmul", "Max": "max", "MaxPool": "maxpool", "Mean": "mean", "Min": "min",
    "Mish": "mish", "Mul": "mul", "Neg": "neg", "Pad": "(constant|edge|reflect|wrap)_pad",
    "Pow": "pow", "PRelu": "prelu", "Reciprocal": "reciprocal", "Relu": "relu",
    "ReduceL1": "reduce_l1", "ReduceL2": "reduce_l2", "ReduceMax": "reduce_max",
    "ReduceMean": "reduce_mean", "ReduceMin": "reduce_min", "ReduceSum": "reduce_sum",
    "ReduceSumSquare": "reduce_sum_square", "Reshape": "reshape", "Resize": "resize",
    "Selu": "selu",
    "Sigmoid": "sigmoid", "Slice": "slice",
    "Softmax": "softmax", "Softplus": "softplus", "Softsign": "softsign",
    "SpaceToDepth": "spacetodepth", "Split": "split", "Sqrt": "sqrt", "Squeeze": "squeeze",
    "Sub": "sub", "Sum": "sum", "Tanh": "tanh", "ThresholdedRelu": "thresholdedrelu",
    "Transpose": "transpose", "Unsqueeze": "unsqueeze", "Upsample": "upsample",
}
# A prefix is a whole word: test_max_* but not test_maxpool_*, test_log_* but not test_logsoftmax_*.
INCLUDE = [rf"^test_{prefix}(_.*)?_cpu$" for prefix in OPERATORS.values()]

# Cases outside what tvmconv compiles at all; skipped, and not counted in the pass ratio.
OUT_OF_SCOPE = {
    r"^test_(averagepool|maxpool|lppool)_3d_": "3-D pooling with windows moving along all three "
                                               "axes: tvmconv pools along at most two",
    r"^test_convtranspose_3d_": "3-D transposed convolutions: tvmconv's are 1-D and 2-D",
    r"(?<!float32)_u?int(8|16|32|64)_": "integer tensors: tvmconv computes in float32",
    r"^test_(edge|reflect|wrap)_pad_": "int32 tensors: tvmconv computes in float32",
    r"_(float16|bfloat16|float64)_": "float16/bfloat16/float64 tensors: tvmconv computes float32",
    r"training": "training mode (batch statistics, random dropout): tvmconv compiles inference",
    r"^test_dropout_.*_mask_": "Dropout's mask output is bool; tvmconv's outputs are float32",
    r"^test_maxpool_with_argmax_": "MaxPool's Indices output is int64; tvmconv outputs float32",
    r"^test_constantofshape_int_": "an int64 output; tvmconv's outputs are float32",
    r"^test_(identity|if)_(opt|seq|sequence)_": "optional and sequence values: tvmconv takes "
                                                "tensors",
    r"^test_split_to_sequence_": "SplitToSequence (another operator): sequence outputs",
    # An expanded case runs the function body an operator is defined by, so it tests the operators
    # of that body; these bodies use operators outside tvmconv's list.
    r"^test_(celu|elu|gelu|hardsigmoid|leakyrelu|prelu|relu|selu|softplus|softsign|thresholdedrelu"
    r"|reduce_l2)_.*expanded": "the expanded form uses CastLike, which tvmconv does not support",
    r"^test_reduce_(max|min)_(bool_inputs|empty_set_bool)_": "bool tensors: tvmconv computes "
                                                             "in float32",
    r"^test_resize_.*cubic": "cubic resizing: tvmconv resizes nearest and linear",
    r"^test_resize_.*linear_antialias": "antialiased downsampling: tvmconv resizes without",
    r"^test_resize_tf_crop_and_resize": "tf_crop_and_resize (a region of interest): tvmconv "
                                        "resizes whole images",
    r"^test_clip_(?!default_inbounds).*expanded":
        "the expanded form uses Less and Where on activations; tvmconv folds them on constants",
}


def _read_xfail(path: Path) -> dict[str, str]:
    """``pattern # reason`` per line; blank lines and lines starting with # are comments."""
    table = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pattern, sep, reason = line.partition(" # ")
        if not sep or not reason.strip():
            raise ValueError(f"{path.name}:{number}: expected 'pattern # reason', got {line!r}")
        table[pattern.strip()] = reason.strip()
    return table


XFAIL = _read_xfail(Path(__file__).with_name("onnx_backend_xfail.txt"))


def _reason(table: dict[str, str], name: str) -> str | None:
    return next((r for p, r in table.items() if re.search(p, name)), None)


def _included(name: str) -> bool:
    return any(re.search(p, name) for p in INCLUDE)


backend_test = onnx.backend.test.BackendTest(tvmconv.onnx_backend, __name__)
for _pattern in INCLUDE:
    backend_test.include(_pattern)
# The node cases only: the model cases download networks and use operators outside the list.
OnnxBackendNodeModelTest = backend_test.test_cases["OnnxBackendNodeModelTest"]
# Cases of other operators are removed rather than reported as thousands of skips.
for _name in [n for n in vars(OnnxBackendNodeModelTest) if n.startswith("test_")]:
    if not _included(_name):
        delattr(OnnxBackendNodeModelTest, _name)
SELECTED = sorted(n for n in vars(OnnxBackendNodeModelTest)
                  if _included(n) and not _reason(OUT_OF_SCOPE, n))
for _name in [n for n in vars(OnnxBackendNodeModelTest) if _included(n)]:
    _skip, _xfail = _reason(OUT_OF_SCOPE, _name), _reason(XFAIL, _name)
    if _skip or _xfail:
        _mark = pytest.mark.skip(reason=_skip) if _skip else \
            pytest.mark.xfail(reason=_xfail, strict=True)
        setattr(OnnxBackendNodeModelTest, _name, _mark(getattr(OnnxBackendNodeModelTest, _name)))


def test_operators_are_supported():
    """The operator list names only what tvmconv's frontend supports."""
    assert set(OPERATORS) <= set(SUPPORTED_OPS)


def test_patterns_match():
    """Every out-of-scope and expected-failure pattern still matches a case (none is stale)."""
    names = list(vars(OnnxBackendNodeModelTest))
    for pattern in OUT_OF_SCOPE:
        assert any(re.search(pattern, n) for n in names), f"out-of-scope {pattern!r} matches none"
    for pattern in XFAIL:
        assert any(re.search(pattern, n) for n in SELECTED), f"xfail {pattern!r} matches none"


def test_pass_ratio():
    """At least 95% of the selected cases pass; expected failures count as failures.

    Every selected case not listed as an expected failure is a test above that must pass, and
    every expected failure is strict (a case that starts passing fails until it leaves the list),
    so the ratio is exact whenever this module passes.
    """
    failing = [n for n in SELECTED if _reason(XFAIL, n)]
    ratio = 1 - len(failing) / len(SELECTED)
    summary = (f"ONNX backend node cases: {len(SELECTED)} selected, {len(SELECTED) - len(failing)} "
               f"pass, {len(failing)} expected failures: {ratio:.1%} pass")
    print(summary)
    assert ratio >= 0.95, summary
