"""tvmconv: compile ONNX CNNs with Apache TVM into one fast, self-describing native module.

    mod = tvmconv.compile("model.onnx", target="x86")   # -> CompiledModel
    mod.export("model.so")
    m = tvmconv.load("model.so"); y = m(x)
"""

__version__ = "0.1.0"

from .hostinfo import use_all_cores  # noqa: E402

use_all_cores()

from .errors import ArtefactError, ModelError, TargetError, TvmconvError, UnsupportedError  # noqa: E402,F401
from .runtime import Model, load, relative_error  # noqa: E402,F401


def compile(model, target="x86", log=None, input_shapes=None, progress=False,  # noqa: A001
            book=True):
    """Compile an ONNX model (path or ModelProto) for a target; see tvmconv.build.compile_model."""
    from .build import compile_model

    return compile_model(model, target=target, log=log, input_shapes=input_shapes,
                         progress=progress, book=book)
