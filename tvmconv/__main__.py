"""python -m tvmconv COMMAND [ARGS]: the same as python -m tvmconv.COMMAND [ARGS]."""

from __future__ import annotations

import importlib
import sys

from . import cli

COMMANDS = {
    "compile": "compile an ONNX model into one .so artefact",
    "run": "run an artefact on .npy inputs; print its outputs and latency",
    "tune": "tune a model's kernels on the device into a tuning log",
    "bench": "time a model against onnxruntime (and OpenVINO), per layer too",
    "demo": "compile and run the bundled digits CNN",
}
USAGE = "usage: python -m tvmconv COMMAND [ARGS] (COMMAND --help for its own)\n\ncommands:\n" + \
    "".join(f"  {name:8s} {what}\n" for name, what in COMMANDS.items())


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else None
    if command in ("-h", "--help"):
        print(USAGE, end="")
        return
    if command not in COMMANDS:
        print(USAGE, file=sys.stderr)
        cli.fail(f"unknown command {command!r}" if command else "no command given")
    _run(command, sys.argv[2:])


def _run(command: str, argv: list[str]) -> None:
    cli.run(importlib.import_module(f"{__package__}.{command}").main, argv)


def compile_command() -> None:
    """The tvmconv-compile console script: through cli.run, like python -m tvmconv.compile (it
    called compile.main directly, so bad input ended in a traceback)."""
    _run("compile", sys.argv[1:])


def run_command() -> None:
    """The tvmconv-run console script."""
    _run("run", sys.argv[1:])


if __name__ == "__main__":
    main()
