"""Tuning records: one JSON object per line, appended crash-safely, read tolerantly.

{"target": "x86-avx512", "workload": "<key>", "template": "conv2d_direct", "config": {...},
 "latencies": [s, ...] | null, "error": null | "...", "version": "0.1.0", "time": "..."}
A tuning run that re-times its finalists beside the default ends each task with a verdict record
(``"verdict": true``, the winner's latencies from those rounds): the choice made from side-by-side
timings, which outranks medians of timings taken at other moments of a drifting machine.
A kernel timed with its weights flushed from the caches (``measure.flushed``) has
``"flushed": true``; a workload's records timed so outrank those timed warm (``_same_timing``).
A line that is not such an object (garbage, a half-written line after a crash, a field of the
wrong type) is skipped with a warning; it never stops a compile or a tuning run. A file with lines
but not one record is no tuning log at all, and is refused (``check``).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Iterable, Iterator

from . import __version__
from .errors import TvmconvError

REQUIRED = ("target", "workload", "template", "config")


def cost(record: dict) -> float:
    """Median latency in seconds; infinity for a failed trial."""
    lat = record.get("latencies") or []
    if record.get("error") or not lat:
        return math.inf
    lat = sorted(float(x) for x in lat)
    return lat[len(lat) // 2]


def is_verdict(record: dict) -> bool:
    """A tuner's verdict (see the module docstring): a choice, not one more measurement."""
    return record.get("verdict") is True


def lower_median(items: list, key=None):
    """The middle item (the lower of the two middles for an even count): how a config measured
    several times is ranked, here and in the tuner."""
    return sorted(items, key=key)[(len(items) - 1) // 2]


def _record(line: str) -> dict:
    """One log line as a record; ValueError saying what is wrong with it otherwise."""
    try:
        rec = json.loads(line)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(rec, dict) or any(k not in rec for k in REQUIRED):
        raise ValueError("not a tuning record")
    if not all(isinstance(rec[k], str) for k in REQUIRED[:3]) or not isinstance(rec["config"],
                                                                                dict):
        raise ValueError("target, workload and template must be strings, config an object")
    lat = rec.get("latencies")
    if lat is not None and not (isinstance(lat, list) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            for x in lat)):
        raise ValueError("latencies must be a list of seconds")
    if not isinstance(rec.get("error"), (str, type(None))):
        raise ValueError("error must be a string or null")
    return rec


def read(path: str | os.PathLike, warn: bool = True) -> Iterator[dict]:
    """Every well-formed record of a log file, in order; bad lines are skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = _record(line)
            except ValueError as e:
                if warn:
                    warnings.warn(f"{path}:{lineno}: skipping a bad log line ({e})", stacklevel=2)
                continue
            yield rec


def check(path: str | os.PathLike) -> None:
    """Refuse a file that has lines but not one record: a model or another file given as a log,
    which tune would append to and compile would warn about line by line. A missing or empty
    file is a log yet to be written."""
    path = Path(path)
    if path.is_dir():
        raise TvmconvError(f"tuning log {path} is a directory, not a file")
    if not path.exists():
        return
    first = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                _record(line)
                return
            except ValueError as e:
                first = first or f"line {lineno}: {e}"
    if first:
        raise TvmconvError(f"{path} is not a tuning log: none of its lines is a tuning record "
                           f"({first})")


def best(paths: Iterable[str | os.PathLike], target_key: str) -> dict[str, dict]:
    """The fastest config per workload key for a target key, over several logs (see
    ``ranked_by_target``)."""
    return {workload: recs[0] for workload, recs in ranked(paths, target_key).items()}


def best_by_target(paths: Iterable[str | os.PathLike]) -> dict[str, dict[str, dict]]:
    """target key -> workload key -> the fastest config's record, reading the logs once."""
    return {target: {workload: recs[0] for workload, recs in by_workload.items()}
            for target, by_workload in ranked_by_target(paths).items()}


def ranked(paths: Iterable[str | os.PathLike], target_key: str) -> dict[str, list[dict]]:
    """Per workload key of a target key, one record per config, fastest first."""
    return ranked_by_target(paths).get(target_key, {})


def ranked_by_target(paths: Iterable[str | os.PathLike]) -> dict[str, dict[str, list[dict]]]:
    """target key -> workload key -> one record per measured config, fastest first, reading the
    logs once. A config measured more than once is ranked by its median: on a noisy machine one
    lucky timing must not decide. The record given is that config's median one. The latest verdict
    of a workload (by its time; of equal times, the last read) comes first, whatever the medians
    say. A target key whose records all failed maps to no workloads."""
    runs: dict[str, dict[str, dict[tuple, list[dict]]]] = {}
    verdicts: dict[tuple[str, str], dict] = {}
    for path in paths:
        for rec in read(path):
            by_workload = runs.setdefault(rec["target"], {})
            if not math.isfinite(cost(rec)):
                continue
            if is_verdict(rec):
                key = rec["target"], rec["workload"]
                if str(rec.get("time", "")) >= str(verdicts.get(key, {}).get("time", "")):
                    verdicts[key] = rec
                continue
            config = (rec["template"], json.dumps(rec["config"], sort_keys=True))
            by_workload.setdefault(rec["workload"], {}).setdefault(config, []).append(rec)
    ranked = {target: {workload: sorted((lower_median(recs, key=cost)
                                         for recs in _same_timing(by_config).values()), key=cost)
                       for workload, by_config in by_workload.items()}
              for target, by_workload in runs.items()}
    for (target, workload), rec in verdicts.items():
        rest = ranked[target].get(workload, [])
        if rest and is_flushed(rest[0]) and not is_flushed(rec):
            continue  # a verdict between configs timed warm
        ranked[target][workload] = [rec] + [r for r in rest if (r["template"], r["config"]) !=
                                            (rec["template"], rec["config"])]
    return ranked


def _same_timing(by_config: dict[tuple, list[dict]]) -> dict[tuple, list[dict]]:
    """A workload's configs timed with its weights flushed, if any were: those timed warm are
    ranked by another measure (a log written before ``measure.flushed`` held for it)."""
    flushed = {c: [r for r in recs if is_flushed(r)] for c, recs in by_config.items()}
    flushed = {c: recs for c, recs in flushed.items() if recs}
    return flushed or by_config


def make(target_key: str, wl_key: str, template: str, config: dict, latencies=None,
         error: str | None = None, verdict: bool = False, flushed: bool = False) -> dict:
    rec = {"target": target_key, "workload": wl_key, "template": template, "config": config,
           "latencies": latencies, "error": error, "version": __version__,
           "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return {**rec, **({"verdict": True} if verdict else {}),
            **({"flushed": True} if flushed else {})}


def is_flushed(record: dict) -> bool:
    """Timed with the kernel's weights flushed from the caches (``measure.flushed``)."""
    return record.get("flushed") is True


def append(path: str | os.PathLike, records: list[dict]) -> None:
    """Append whole lines and fsync, so an interrupted run leaves every finished record readable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    with open(path, "a", encoding="utf-8") as f:
        if f.tell() > 0 and not _ends_with_newline(path):
            f.write("\n")  # a crash may have left a half line: start ours on a fresh one
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
