"""Is a difference real? The paired bootstrap over questions: the mean per-question gain of one method (or bank
version) over another, with its interval. Evolution keeps a bank version only when the lower bound is above
zero; the benchmarks print the same interval when they compare methods on a few hundred questions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel


class Gain(BaseModel):
    """Mean of `new - base` over paired questions, and its bootstrap interval at `confidence`."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float

    @property
    def significant(self) -> bool:
        return self.low > 0

    def __str__(self) -> str:
        return f"{self.mean:+.3f} ({self.confidence:.0%} interval {self.low:+.3f} to {self.high:+.3f}, n={self.n})"


def paired_gain(base: Sequence[float], new: Sequence[float], confidence: float = 0.95, rounds: int = 2000,
                seed: int = 0) -> Gain:
    """The paired bootstrap of `new - base` (the same questions, in the same order, in both)."""
    if len(base) != len(new):
        raise ValueError(f"paired scores differ in length: {len(base)} and {len(new)}")
    diff = np.asarray(new, dtype=float) - np.asarray(base, dtype=float)
    if not len(diff):
        return Gain(mean=0.0, low=0.0, high=0.0, n=0, confidence=confidence)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (rounds, len(diff)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Gain(mean=round(float(diff.mean()), 6), low=round(float(low), 6), high=round(float(high), 6),
                n=len(diff), confidence=confidence)
