"""The error types tvmconv raises for bad input; CLIs print them as one line and exit non-zero."""

from pathlib import Path


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


def require_file(path, what: str, error: type = TvmconvError) -> Path:
    """``path`` as a Path if it is a file, else ``error`` saying whether it is missing or a
    directory."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{what} {path} is a directory, not a file")
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    return path
