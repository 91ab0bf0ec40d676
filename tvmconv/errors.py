"""The error types tvmconv raises for bad input; CLIs print them as one line and exit non-zero."""


class TvmconvError(ValueError):
    """A problem with what the user gave tvmconv (model, target, input, artefact, log)."""


class ModelError(TvmconvError):
    """The ONNX model cannot be read or is not valid."""


class UnsupportedError(TvmconvError):
    """The model uses an operator or attribute that tvmconv does not support."""


class TargetError(TvmconvError):
    """An unknown target name, or an artefact built for another target."""


class InputError(TvmconvError):
    """An input array of the wrong shape, or with NaN/infinity, or a wrong input name."""


class InputTypeError(TvmconvError, TypeError):
    """An input that is not a numpy array of the expected dtype."""


class ArtefactError(TvmconvError):
    """A compiled artefact that is missing, truncated or corrupt."""
