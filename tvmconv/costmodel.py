"""The tuner's learned cost model: gradient-boosted trees (xgboost) over workload + config features.

One model serves every task of a template: the features hold the workload's shape next to the knobs,
so what was learnt on one conv layer transfers to the next. It ranks candidates, so it is trained on
log throughput and only its order matters.
"""

from __future__ import annotations

import math

import numpy as np

from .config import Config
from .workload import Workload


def features(wl: Workload, cfg: Config) -> list[float]:
    """Log2 of every numeric workload dimension and knob, in a fixed order."""
    vals: list[float] = []

    def add(v):
        if isinstance(v, bool):
            vals.append(float(v))
        elif isinstance(v, (int, float)):
            vals.append(math.log2(abs(v) + 1.0))
        elif isinstance(v, (tuple, list)):
            for x in v:
                add(x)

    for part in wl.parts():
        for key in ("data", "out", "kernel", "strides", "kernel_hw"):
            add(part.params.get(key, ()))
    for _, v in cfg.items:
        add(v)
    return vals


def _matrix(data: np.ndarray, label=None):
    """One thread, like training: xgboost's OpenMP workers keep spinning after a parallel step and
    took a core from the next candidate timed (its measured time doubled)."""
    import xgboost as xgb

    return xgb.DMatrix(data, label=label, nthread=1)


class CostModel:
    def __init__(self, seed: int = 0):
        self.seed = seed
        self.booster = None
        self.width = None

    def fit(self, xs: list[list[float]], gflops: list[float]) -> None:
        import xgboost as xgb

        width = max(len(x) for x in xs)
        self.width = width
        data = np.array([x + [0.0] * (width - len(x)) for x in xs], dtype=np.float32)
        target = np.log1p(np.maximum(np.array(gflops, dtype=np.float32), 0.0))
        params = {"max_depth": 6, "eta": 0.2, "subsample": 0.9, "min_child_weight": 1,
                  "objective": "reg:squarederror", "seed": self.seed, "nthread": 1,
                  "verbosity": 0}
        self.booster = xgb.train(params, _matrix(data, target), num_boost_round=60)

    def predict(self, xs: list[list[float]]) -> np.ndarray:
        if self.booster is None:
            return np.zeros(len(xs))
        data = np.array([(x + [0.0] * self.width)[:self.width] for x in xs], dtype=np.float32)
        return self.booster.predict(_matrix(data))
