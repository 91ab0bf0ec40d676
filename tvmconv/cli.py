"""What every tvmconv command line shares: one-line errors, exit codes, no tracebacks."""

from __future__ import annotations

import os
import sys
import warnings


def fail(message: str, code: int = 2) -> "NoReturn":  # noqa: F821
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def run(main, argv=None) -> None:
    """Run a CLI body; user errors print one line and exit 2, Ctrl-C exits 130."""
    from .errors import TvmconvError

    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        code = main(argv)
    except TvmconvError as e:
        fail(str(e))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
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
