"""The auto-tuner: propose, build in a pool, time one by one, record, learn, repeat.

Tasks are a model's distinct kernel workloads, weighted by FLOPs x occurrences so the budget goes
where the time is. Each round picks the task furthest behind its weighted share, proposes a batch
(the template default first, then the cost model's favourites from the whole space or from mutations
of the best configs, plus a random fraction for exploration), measures it and appends every result
to the log. A task stops when it has not improved for ``patience`` trials or its space is exhausted.
The last part of a time budget re-times each task's finalists beside its default in rounds
(``confirm``) and records the verdict of those side-by-side timings: measured once, the winner on a
machine whose speed drifts is often just the luckiest timing, and medians of timings taken at
different moments (or in different sessions) compare the moments as much as the configs.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from dataclasses import dataclass, field

from . import records, templates
from .config import Config
from .costmodel import CostModel, features
from .errors import TvmconvError
from .measure import flushed
from .runner import Builder, Runner, kernel_inputs, scratch_dir
from .target import host_target
from .workload import Workload

ENUMERATE_LIMIT = 4000  # spaces up to this size are scored whole; larger ones by evolution
FINALISTS = 3  # configs per task re-timed at the end, besides the template default
CONFIRM_ROUNDS = 3
CONFIRM_GROUP = 8  # tasks confirmed together, round after round, before the next ones
# a finalist replaces the default only when its time is at most this share of the default's
# (median over the rounds, each ratio of two side-by-side timings): the noise of one round
MARGIN = 0.97
CONFIRM_SHARE = 0.15  # of a time budget, kept for re-timing finalists


@dataclass
class Task:
    wl: Workload
    count: int
    templates: list
    trials: int = 0
    since_best: int = 0
    best_seconds: float = math.inf  # fastest single timing: what the search's patience follows
    costs: dict = field(default_factory=dict)  # (template name, config) -> measured seconds
    built: dict = field(default_factory=dict)  # (template name, config) -> (path, build error)
    done: bool = False
    reference: object = None  # the unscheduled kernel's output on the tuning inputs
    kept: tuple | None = None  # (template name, config) of the verdict, once confirmed
    flushed: bool = False  # timed with its weights flushed from the caches (measure.flushed)

    @property
    def weight(self) -> float:
        return self.wl.flops() * self.count

    def median(self, key: tuple) -> float:
        """A config's median time over its measurements (inf when never timed successfully)."""
        return records.lower_median(self.costs.get(key, [math.inf]))

    def ranked(self) -> list[tuple[float, tuple]]:
        """(median seconds, (template name, config)), fastest first: the order of records.best."""
        timed = [(self.median(k), k) for k in self.costs]
        return sorted((mk for mk in timed if math.isfinite(mk[0])), key=lambda mk: mk[0])

    def gflops(self, seconds: float) -> float:
        return self.wl.flops() / seconds / 1e9 if math.isfinite(seconds) else 0.0


def verdict(rounds: list[dict], default: tuple) -> tuple | None:
    """The config to keep from rounds of side-by-side timings (each round: config -> seconds): the
    finalist timed in every round whose median time relative to the default's in the same round
    is lowest, where that is at most ``MARGIN``; else the default. Pairing cancels the machine's
    drift between rounds. None when the default has no successful timing to compare with."""
    paired = [r for r in rounds if math.isfinite(r.get(default, math.inf))]
    if not paired:
        return None
    ratios = {key: [r[key] / r[default] for r in paired if key in r]
              for key in paired[0] if key != default}
    score = {key: records.lower_median(rs) for key, rs in ratios.items() if len(rs) == len(paired)}
    best = min(score, key=score.get, default=None)
    return best if best is not None and score[best] <= MARGIN else default


def make_tasks(wls: list[tuple[Workload, int]], target) -> list[Task]:
    """Tasks for every workload whose templates offer more than one choice."""
    tasks = []
    for wl, count in wls:
        tmpls = templates.templates_for(wl.kind, target.family, wl, target)
        if sum(len(t.space(wl, target)) for t in tmpls) > 1:
            tasks.append(Task(wl, count, tmpls, flushed=flushed(wl, target)))
    return sorted(tasks, key=lambda t: -t.weight)


class Tuner:
    def __init__(self, tasks: list[Task], target, log, rpc=None, seed=0, batch=None,
                 patience=48, workers=None, eps=0.2):
        import os

        self.tasks, self.target, self.log = tasks, target, log
        self.rng = random.Random(seed)
        self.seed = seed
        self.batch = batch or 8
        self.patience, self.eps = patience, eps
        self.builder = Builder(workers or max(1, (os.cpu_count() or 2)))
        gpu = target.family == "cuda"
        self.runner = Runner(rpc, gpu=gpu)
        # an unscheduled kernel cannot run on a GPU: the reference is computed on this CPU
        self.reference_target = host_target() if gpu else target
        self.reference_runner = Runner() if gpu else self.runner
        self.models: dict[str, CostModel] = {}
        self.data: dict[str, tuple[list, list]] = {}
        self.history: list[tuple[int, float]] = []  # (trials so far, estimated model seconds)
        self.trials = 0
        self.confirmed = 0  # re-timings of finalists, besides the trials
        self.tmp = scratch_dir()
        self._resume()
        self.resumed = sum(t.trials for t in tasks)  # measurements found in the log

    # -- records ---------------------------------------------------------------------------------
    def _resume(self) -> None:
        """Everything the log already holds counts: measured configs are never measured again."""
        by_key = {t.wl.key: t for t in self.tasks}
        for rec in records.read(self.log):
            task = by_key.get(rec["workload"])
            if rec["target"] != self.target.key or task is None or records.is_verdict(rec):
                continue  # a verdict repeats measurements the log already holds
            if records.is_flushed(rec) != task.flushed:
                continue  # timed another way: measured again
            found = templates.from_record(rec, task.wl, self.target)
            if found is not None:
                self._learn(task, found[0].NAME, found[1], records.cost(rec))
        # a task whose default the log never timed has a template that changed since: its old
        # patience is spent on a different space, and its records were never compared with the
        # default a compile without them would use
        for task in self.tasks:
            if task.trials and self.default_key(task) not in task.costs:
                task.since_best = 0

    def _learn(self, task: Task, tname: str, cfg: Config, seconds: float) -> None:
        task.costs.setdefault((tname, cfg), []).append(seconds)
        task.trials += 1
        xs, ys = self.data.setdefault(tname, ([], []))
        xs.append(features(task.wl, cfg))
        ys.append(task.gflops(seconds))
        if seconds < task.best_seconds:
            task.best_seconds, task.since_best = seconds, 0
        else:
            task.since_best += 1

    # -- proposing -------------------------------------------------------------------------------
    def _pool(self, task: Task) -> list[tuple]:
        pool = []
        for tmpl in task.templates:
            space = tmpl.space(task.wl, self.target)
            if len(space) <= ENUMERATE_LIMIT:
                configs = list(space)
            else:  # evolution: random configs plus mutations of the best measured ones
                parents = ([c for n, c in task.costs if n == tmpl.NAME][:64]
                           or [space.sample(self.rng)])
                configs = [space.sample(self.rng) for _ in range(512)]
                configs += [space.neighbour(self.rng.choice(parents), self.rng) for _ in range(512)]
            pool += [(tmpl, c) for c in configs if (tmpl.NAME, c) not in task.costs]
        return list(dict.fromkeys(pool))

    def propose(self, task: Task) -> list[tuple]:
        pool = self._pool(task)
        if not pool:
            task.done = True
            return []
        batch = []
        first = task.templates[0]
        name, cfg = self.default_key(task)
        if (name, cfg) not in task.costs:
            batch.append((first, cfg))
        model = self.models.get(first.NAME)
        n_model = int(round(self.batch * (1 - self.eps))) if model else 0
        if n_model:
            scores = model.predict([features(task.wl, c) for _, c in pool])
            ranked = [pool[i] for i in sorted(range(len(pool)), key=lambda i: -scores[i])]
            batch += [c for c in ranked if c not in batch][:n_model]
        rest = [c for c in pool if c not in batch]
        batch += self.rng.sample(rest, min(len(rest), self.batch - len(batch)))
        return batch[:self.batch]

    # -- measuring -------------------------------------------------------------------------------
    def _reference(self, task: Task) -> None:
        (path, err), = self.builder.build_all([(task.wl, self.reference_target, None, None,
                                                 str(self.tmp))])
        if path:
            task.reference, err = self.reference_runner.reference(path, *kernel_inputs(task.wl))
        if task.reference is None:
            raise TvmconvError(f"cannot build or run the reference of {task.wl.kind} ({err})")

    def measure(self, task: Task, batch: list[tuple]) -> list[dict]:
        if task.reference is None:
            self._reference(task)
        todo = [(t, c) for t, c in batch if (t.NAME, c) not in task.built]
        jobs = [(task.wl, self.target, t.NAME, c, str(self.tmp)) for t, c in todo]
        for (tmpl, cfg), built in zip(todo, self.builder.build_all(jobs)):
            task.built[(tmpl.NAME, cfg)] = built
        out = []
        for tmpl, cfg in batch:
            path, err = task.built[(tmpl.NAME, cfg)]
            lat = None
            if path:
                res = self.runner.run(path, *kernel_inputs(task.wl, tmpl, cfg), task.reference,
                                      flush=task.flushed)
                lat, err = res.latencies, res.error
            rec = records.make(self.target.key, task.wl.key, tmpl.NAME, cfg.to_json(), lat, err,
                               flushed=task.flushed)
            records.append(self.log, [rec])
            self._learn(task, tmpl.NAME, cfg, records.cost(rec))
            out.append(rec)
        return out

    def default_key(self, task: Task) -> tuple:
        first = task.templates[0]
        return first.NAME, first.default(task.wl, self.target)

    def finalists(self, task: Task) -> list[tuple]:
        """The task's best few configs by median time, and the default: what ``confirm``
        re-times."""
        keys = [key for _, key in task.ranked()[:FINALISTS]]
        default = self.default_key(task)
        if default in task.costs and default not in keys:
            keys.append(default)
        by_name = {t.NAME: t for t in task.templates}
        return [(by_name[name], cfg) for name, cfg in keys if name in by_name]

    def confirm(self, deadline: float | None, on_batch=None) -> None:
        """Re-time each task's finalists beside its default in rounds and append each task's
        verdict (after at least two rounds). Tasks go in groups of ``CONFIRM_GROUP``, heaviest
        first, every round of a group before the next group: a deadline or Ctrl-C then still
        leaves verdicts for the tasks that weigh most, and within a group each round of a task
        comes from another moment of the machine's drift."""
        heaviest = sorted(self.tasks, key=lambda t: -t.weight)
        for start in range(0, len(heaviest), CONFIRM_GROUP):
            group = heaviest[start:start + CONFIRM_GROUP]
            rounds = self._confirm_rounds(group, deadline, on_batch)
            for task in group:
                self._keep_verdict(task, rounds[task.wl.key])
            if deadline is not None and time.time() >= deadline:
                return

    def _confirm_rounds(self, group: list[Task], deadline, on_batch) -> dict[str, list[dict]]:
        """Up to ``CONFIRM_ROUNDS`` side-by-side timings of each task's finalists (each round:
        (template name, config) -> seconds), until the deadline."""
        finalists = {task.wl.key: self.finalists(task) for task in group}
        rounds: dict[str, list[dict]] = {task.wl.key: [] for task in group}
        for _ in range(CONFIRM_ROUNDS):
            for task in group:
                batch = finalists[task.wl.key]
                if len(batch) < 2:
                    continue
                if deadline is not None and time.time() >= deadline:
                    return rounds
                recs = self.measure(task, batch)
                self.confirmed += len(recs)
                rounds[task.wl.key].append({(t.NAME, c): records.cost(r)
                                            for (t, c), r in zip(batch, recs)})
                if on_batch:
                    on_batch(task, recs)
        return rounds

    def _keep_verdict(self, task: Task, done: list[dict]) -> None:
        winner = verdict(done, self.default_key(task)) if len(done) >= 2 else None
        if winner is not None:
            task.kept = winner
            lat = [r[winner] for r in done if math.isfinite(r[winner])]
            records.append(self.log, [records.make(
                self.target.key, task.wl.key, winner[0], winner[1].to_json(), lat,
                verdict=True, flushed=task.flushed)])

    def _retrain(self, tname: str) -> None:
        xs, ys = self.data.get(tname, ([], []))
        if len(xs) >= 16 and any(y > 0 for y in ys):
            model = self.models.setdefault(tname, CostModel(self.seed))
            model.fit(xs, ys)

    # -- the loop --------------------------------------------------------------------------------
    def next_task(self) -> Task | None:
        live = [t for t in self.tasks if not t.done and t.since_best < self.patience]
        if not live:
            return None
        total = sum(t.weight for t in live)
        # furthest behind its share of trials, measured against its FLOP weight (at least 1 share)
        return min(live, key=lambda t: t.trials / max(t.weight / total, 1e-3))

    def estimated_seconds(self) -> float:
        return sum(t.count * (t.best_seconds if math.isfinite(t.best_seconds) else 0.0)
                   for t in self.tasks)

    def run(self, trials: int | None, deadline: float | None, on_batch=None) -> None:
        if self.tasks and all(t.trials for t in self.tasks):
            self.history.append((self.trials, self.estimated_seconds()))
        first_batch = True
        search_until = None if deadline is None else \
            deadline - CONFIRM_SHARE * max(deadline - time.time(), 0.0)
        try:
            while (trials is None or self.trials < trials) and (
                    search_until is None or time.time() < search_until):
                task = self.next_task()
                if task is None:
                    break
                batch = self.propose(task)
                if trials is not None:
                    batch = batch[:trials - self.trials]
                if not batch:
                    continue
                recs = self.measure(task, batch)
                self.trials += len(recs)
                if first_batch and all(r["error"] for r in recs):
                    raise TvmconvError(f"every candidate of the first batch failed; first error: "
                                       f"{recs[0]['error']}")
                first_batch = False
                self._retrain(batch[0][0].NAME)
                self.history.append((self.trials, self.estimated_seconds()))
                if on_batch:
                    on_batch(task, recs)
            if deadline is not None:  # a trial count means exactly that many measurements
                self.confirm(deadline, on_batch)
        finally:
            self.close()

    def close(self) -> None:
        self.builder.close()
        self.runner.stop()
        self.reference_runner.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
