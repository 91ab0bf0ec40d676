"""One converter per ONNX operator: ONNX semantics (per opset) -> tvmconv's op vocabulary.

The converters live by family in ``nn``, ``tensor`` and ``elementwise``; this table is the list of
supported operators.
"""

from __future__ import annotations

from .context import ConstantRequired, Context  # noqa: F401  (re-exported for the frontend)
from .elementwise import binary, clip, prelu, unary, variadic
from .nn import (batch_norm, conv, gemm, global_pool, instance_norm, lrn, matmul, pool,
                 softmax)
from .tensor import (cast, concat, depth_to_space, dropout, flatten, identity, pad, reshape,
                     slice_, space_to_depth, split, squeeze, transpose, unsqueeze)

CONVERTERS = {
    "Conv": conv,
    "MaxPool": pool("max"),
    "AveragePool": pool("avg"),
    "LpPool": pool("lp"),
    "GlobalAveragePool": global_pool("avg"),
    "GlobalMaxPool": global_pool("max"),
    "GlobalLpPool": global_pool("lp"),
    "Gemm": gemm,
    "MatMul": matmul,
    "BatchNormalization": batch_norm,
    "InstanceNormalization": instance_norm,
    "LRN": lrn,
    "Softmax": softmax(False),
    "LogSoftmax": softmax(True),
    "Reshape": reshape,
    "Flatten": flatten,
    "Squeeze": squeeze,
    "Unsqueeze": unsqueeze,
    "Transpose": transpose,
    "Concat": concat,
    "Slice": slice_,
    "Split": split,
    "Pad": pad,
    "DepthToSpace": depth_to_space,
    "SpaceToDepth": space_to_depth,
    "Identity": identity,
    "Dropout": dropout,
    "Cast": cast,
    "Relu": unary("relu"),
    "LeakyRelu": unary("leaky_relu", alpha=0.01),
    "Sigmoid": unary("sigmoid"),
    "Tanh": unary("tanh"),
    "HardSigmoid": unary("hard_sigmoid", alpha=0.2, beta=0.5),
    "HardSwish": unary("hard_swish"),
    "Elu": unary("elu", alpha=1.0),
    "Selu": unary("selu", alpha=1.67326319217681884765625, gamma=1.05070102214813232421875),
    "Celu": unary("celu", alpha=1.0),
    "Softplus": unary("softplus"),
    "Softsign": unary("softsign"),
    "Mish": unary("mish"),
    "ThresholdedRelu": unary("thresholded_relu", alpha=1.0),
    "Abs": unary("abs"),
    "Neg": unary("neg"),
    "Exp": unary("exp"),
    "Log": unary("log"),
    "Sqrt": unary("sqrt"),
    "Reciprocal": unary("reciprocal"),
    "Floor": unary("floor"),
    "Ceil": unary("ceil"),
    "Erf": unary("erf"),
    "Clip": clip,
    "PRelu": prelu,
    "Add": binary("add", True),
    "Sub": binary("sub", False),
    "Mul": binary("mul", True),
    "Div": binary("div", False),
    "Pow": binary("pow", False),
    "Sum": variadic("add"),
    "Mean": variadic("add"),
    "Max": variadic("max"),
    "Min": variadic("min"),
}
