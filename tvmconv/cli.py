"""What every tvmconv command line shares: one-line errors, exit codes, no tracebacks."""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path


def fail(message: str, code: int = 2) -> "NoReturn":  # noqa: F821
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def run(main, argv=None) -> None:
    """Run a CLI body; user errors print one line and exit 2, Ctrl-C exits 130, a closed pipe on
    stdout 141 without a word; PyTorch kept out (``hostinfo.keep_torch_out``)."""
    from .errors import TvmconvError
    from .hostinfo import keep_torch_out

    keep_torch_out()

    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        code = main(argv)
        sys.stdout.flush()  # here, where a closed pipe is still caught below
    except TvmconvError as e:
        fail(str(e))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (``| head``): no message, nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)  # the shell's code for a command ended by SIGPIPE
    except (OSError, MemoryError) as e:
        fail(f"{type(e).__name__}: {e}", 1)
    except Exception as e:  # an internal error: keep it to one line unless asked for the traceback
        if os.environ.get("TVMCONV_DEBUG"):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        fail(f"internal error ({type(e).__name__}: {first}); rerun with TVMCONV_DEBUG=1 for "
             "the traceback", 1)
    sys.exit(code or 0)


def parse_shapes(items: list[str] | None) -> dict[str, tuple[int, ...]]:
    """--input-shape name:1,3,224,224 (repeatable) -> {name: shape}."""
    from .errors import TvmconvError

    shapes = {}
    for item in items or []:
        name, sep, dims = item.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.split(","))
            if not sep or not name or any(d <= 0 for d in shape):
                raise ValueError
        except ValueError:
            raise TvmconvError(f"--input-shape {item!r}: expected NAME:D1,D2,... "
                               "with positive integers") from None
        shapes[name] = shape
    return shapes


def at_least(low: int, value: int | None, flag: str) -> None:
    """Refuse a count below ``low`` (``--rounds 0`` timed nothing and printed nan)."""
    from .errors import TvmconvError

    if value is not None and value < low:
        raise TvmconvError(f"{flag} must be at least {low}, got {value}")


def output_path(path, flag: str, sources: dict | None = None) -> Path:
    """Where a command will write, checked before its work (which it used to finish first): not a
    directory, not a file it reads (``sources``: path -> what it is), and in a place it may write;
    a missing parent folder is made when writing."""
    from .errors import TvmconvError

    path = Path(path)
    if path.is_dir():
        raise TvmconvError(f"{flag} {path} is a directory")
    for src, what in (sources or {}).items():
        if path.exists() and Path(src).exists() and os.path.samefile(path, src):
            raise TvmconvError(f"{flag} {path} is {what} itself; refusing to write over it")
    if path.exists() and not os.access(path, os.W_OK):
        raise TvmconvError(f"{flag} {path} is not writable")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise TvmconvError(f"{flag} {path}: {folder} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise TvmconvError(f"{flag} {path}: cannot write in {folder} "
                           f"({e.strerror or type(e).__name__})") from None
    return path


def check_plot(path, flag: str = "--plot") -> Path:
    """A --plot path, and matplotlib to draw it, checked before the work it would show."""
    from .errors import TvmconvError

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise TvmconvError(f"{flag} needs matplotlib: pip install matplotlib") from None
    return output_path(path, flag)
