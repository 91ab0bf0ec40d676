"""The whole configuration vocabulary: a Space of named knobs and a Config choosing one value each.

A Config is a frozen, hashable, JSON-able value;
templates read knobs by name with ``cfg["tile_w"]``.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class Config:
    items: tuple[tuple[str, object], ...]

    @staticmethod
    def of(d: dict) -> "Config":
        return Config(tuple(sorted(d.items())))

    def __getitem__(self, knob: str):
        for k, v in self.items:
            if k == knob:
                return v
        raise KeyError(knob)

    def get(self, knob: str, default=None):
        try:
            return self[knob]
        except KeyError:
            return default

    def to_json(self) -> dict:
        return dict(self.items)

    def __str__(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.items)


class Space:
    """Named knobs, each a list of candidate values,
    plus a validity filter (e.g. register budget)."""

    def __init__(self, knobs: dict[str, list], valid=lambda cfg: True):
        self.knobs = {k: list(v) for k, v in knobs.items()}
        self.valid = valid

    def __len__(self) -> int:
        n = 1
        for v in self.knobs.values():
            n *= len(v)
        return n

    def __iter__(self) -> Iterator[Config]:
        names = list(self.knobs)
        for values in itertools.product(*(self.knobs[k] for k in names)):
            cfg = Config.of(dict(zip(names, values)))
            if self.valid(cfg):
                yield cfg

    def sample(self, rng: random.Random) -> Config:
        """A random valid config (rejection sampling; spaces here are dense in valid points)."""
        for _ in range(1000):
            cfg = Config.of({k: rng.choice(v) for k, v in self.knobs.items()})
            if self.valid(cfg):
                return cfg
        return next(iter(self))

    def neighbour(self, cfg: Config, rng: random.Random) -> Config:
        """The same config with one knob moved to an adjacent candidate value."""
        for _ in range(100):
            knob = rng.choice(list(self.knobs))
            values = self.knobs[knob]
            if len(values) < 2:
                continue
            i = values.index(cfg[knob]) if cfg[knob] in values else 0
            j = min(max(i + rng.choice((-1, 1)), 0), len(values) - 1)
            new = Config.of({**cfg.to_json(), knob: values[j]})
            if new != cfg and self.valid(new):
                return new
        return self.sample(rng)

    def completed(self, given: dict, preferred: dict) -> Config | None:
        """``given`` (a config missing some knobs) in this space, each missing knob at its
        ``preferred`` value, or where that does not fit the given ones, the next that does: a
        record written before a knob existed may rule out the knob's default (depthwise row
        padding, ``pad_rows``, stores the padding that ``inline_pad`` tests for). None when no
        value fits, or a given knob is not one of this space's."""
        if not set(given) <= set(self.knobs):
            return None
        missing = [k for k in self.knobs if k not in given]
        orders = [sorted(self.knobs[k], key=lambda v: v != preferred.get(k)) for k in missing]
        for values in itertools.product(*orders):
            cfg = Config.of({**given, **dict(zip(missing, values))})
            if self.contains(cfg):
                return cfg
        return None

    def contains(self, cfg: Config) -> bool:
        d = cfg.to_json()
        return set(d) == set(self.knobs) and all(d[k] in self.knobs[k] for k in d) \
            and self.valid(cfg)


def divisors(n: int, limit: int | None = None) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0 and (limit is None or d <= limit)]
