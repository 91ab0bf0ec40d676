"""Tuning verdicts confirmed inside the network (``tune --in-network``).

The tuner times each kernel alone, its weights warm in the caches; inside the network each
layer's weights stream in from memory, and the ranking of configs can change (ResNet-50 on a
Zen 3: its kernels summed to 57 ms inside the network and 46 alone, and a config faster alone
was up to 1.25x slower inside). So the network is built once per rank of finalist (variant k
takes every layer's k-th: its best tuning records as ``compile`` ranks them, then the template's
default), the variants are profiled in alternating rounds (``runtime.Model.profile``), and a
finalist faster inside the network than the current pick, paired round by round, becomes that
layer's verdict (``tuner.verdict``). Choosing so made ResNet-50, SqueezeNet and MobileNetV2
1-3% faster than their tuned picks (BENCHMARKS.md, fourteenth session).
"""

from __future__ import annotations

import math
import os
import tempfile
import time

from . import records, templates
from .build import compile_model, tuned_records
from .frontend import load_model
from .measure import flushed, workloads
from .tuner import verdict

FINALISTS = 3  # tuning records per layer, besides the template default
ROUNDS = 5
RUNS = 5  # profiled inferences per variant and round, at least
# ... or as many as take this long, up to MAX_RUNS: a short network's kernels last microseconds,
# and a re-tune of RegNet (2.5 ms) on 5 runs a round flipped 20 of its 26 picks, to a build
# 0.5-4% slower than before
ROUND_SECONDS, MAX_RUNS = 0.05, 100
BUDGET_SHARE = 0.15  # of a tuning budget, kept for this


def candidates(wl, target, recs: list[dict]) -> list[tuple]:
    """A layer's distinct (template, config) finalists: its records in ``compile``'s order (the
    current pick first), then the first template's default."""
    found: list[tuple] = []
    for rec in recs:
        pick = templates.from_record(rec, wl, target)
        if pick is not None and _key(pick) not in map(_key, found):
            found.append(pick)
        if len(found) == FINALISTS:
            break
    first = templates.templates_for(wl.kind, target.family, wl, target)[0]
    default = (first, first.default(wl, target))
    return found + ([default] if _key(default) not in map(_key, found) else [])


def _key(pick: tuple) -> tuple:
    return pick[0].NAME, pick[1]


def variant_log(path, target, picks: dict) -> None:
    """A log holding exactly one record per layer: the config ``compile`` will then use."""
    records.append(path, [records.make(target.key, key, tmpl.NAME, cfg.to_json(), [1.0])
                          for key, (tmpl, cfg) in picks.items()])


def runs_per_round(model, feeds: dict) -> int:
    model(feeds)
    start = time.perf_counter()
    model(feeds)
    return min(MAX_RUNS, max(RUNS, math.ceil(ROUND_SECONDS / (time.perf_counter() - start))))


def profile_rounds(models: list, feeds: dict, rounds: int = ROUNDS) -> list[list[dict]]:
    """Per round, per variant: workload key -> seconds per call inside the network."""
    runs = runs_per_round(models[0], feeds)
    out = []
    for _ in range(rounds):
        row = []
        for model in models:
            table = model.meta["kernels"]
            totals: dict[str, list[float]] = {}
            for k in model.profile(feeds, runs=runs):
                t = totals.setdefault(table[k.name]["workload"], [0.0, 0])
                t[0] += k.seconds
                t[1] += k.calls
            row.append({key: s / n for key, (s, n) in totals.items()})
        out.append(row)
    return out


def confirm(model, target, log, input_shapes=None, deadline: float | None = None,
            say=print) -> int:
    """Re-time every layer's finalists inside the network and append a verdict for each layer
    whose pick changes, or whose fastest record no longer fits the templates (so that the book
    built from the log carries a pick that does); the number of those. Where the deadline passes
    while the variants build, the finalists of the ranks built so far are compared (nothing is
    recorded when fewer than two were)."""
    model = load_model(model)  # read once: every variant builds from it
    tuned = tuned_records(target.key, [log], book=False)
    wl_of = {wl.key: wl for wl, _ in workloads(model, target, input_shapes)}
    finalists = {key: candidates(wl, target, tuned.get(key, [])) for key, wl in wl_of.items()}
    ranks = max((len(c) for c in finalists.values()), default=0)
    if ranks < 2:
        say("in-network confirmation: no layer has two finalists")
        return 0
    models = []
    with tempfile.TemporaryDirectory(prefix="tvmconv-confirm-") as tmp:
        for rank in range(ranks):
            if deadline is not None and time.time() >= deadline:
                break
            path = os.path.join(tmp, f"rank{rank}.jsonl")
            variant_log(path, target, {key: c[min(rank, len(c) - 1)]
                                       for key, c in finalists.items()})
            models.append(compile_model(model, target, log=path, input_shapes=input_shapes,
                                        book=False).model())
    if len(models) < 2:
        say("in-network confirmation: the budget ran out while building its variants")
        return 0
    if len(models) < ranks:
        say(f"in-network confirmation: the budget allowed {len(models)} of {ranks} builds")
        finalists = {key: c[:len(models)] for key, c in finalists.items()}
    rounds = profile_rounds(models, models[0].random_inputs())
    changed = []
    for key, cands in finalists.items():
        timed = [{_key(c): row[rank][key] for rank, c in enumerate(cands) if key in row[rank]}
                 for row in rounds]
        winner = verdict(timed, _key(cands[0]))
        recs = tuned.get(key, [])
        stale = bool(recs) and templates.from_record(recs[0], wl_of[key], target) is None
        if winner is not None and (winner != _key(cands[0]) or stale):
            lat = [r[winner] for r in timed]
            changed.append(records.make(target.key, key, winner[0], winner[1].to_json(), lat,
                                        verdict=True, flushed=flushed(wl_of[key], target)))
    if changed:
        records.append(log, changed)
    say(f"in-network confirmation: {len(models)} builds, {len(changed)} of {len(finalists)} layers "
        f"changed their pick -> {log}")
    return len(changed)
