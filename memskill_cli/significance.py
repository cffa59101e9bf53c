"""Is a difference real? The paired bootstrap over questions: the mean per-question gain of one method (or bank
version) over another, with its interval. Evolution keeps a bank version only when the lower bound is above
zero; the benchmarks print the same interval when they compare methods on a few hundred questions.

Questions answered from one memory build (a session window's) are not independent: a build that happens to go
well lifts all of them together. Given each question's group, the bootstrap resamples groups instead (a cluster
bootstrap); resampling questions would give an interval too narrow (on LoCoMo's validation windows, about 20%
narrower than the one by window)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
from pydantic import BaseModel


class Gain(BaseModel):
    """Mean of `new - base` over paired questions, and its bootstrap interval at `confidence`."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float
    groups: int | None = None  # the units resampled, when questions came in groups (None: each question its own)

    @property
    def significant(self) -> bool:
        return self.low > 0

    def units_to_clear(self) -> int | None:
        """How many units (groups, else questions) would put the interval clear of zero if the mean and the spread
        per unit stayed as measured (the interval narrows with the square root of the units): can more validation
        data resolve this gain, or only a larger gain pass? None for a zero mean."""
        units = self.groups or self.n
        if not self.mean or not units:
            return None
        reach = self.mean - self.low if self.mean > 0 else self.high - self.mean
        return math.ceil(units * (reach / abs(self.mean)) ** 2)

    def __str__(self) -> str:
        units = f" in {self.groups} groups" if self.groups is not None else ""
        return (f"{self.mean:+.3f} ({self.confidence:.0%} interval {self.low:+.3f} to {self.high:+.3f}, "
                f"n={self.n}{units})")

    def outlook(self) -> str:
        """For a positive gain within noise, how much data would resolve it ("" otherwise): benchmarks and the report
        print it beside the gain."""
        if self.mean <= 0 or self.significant:
            return ""
        return f"clear of zero at ~{self.units_to_clear()} {'windows' if self.groups else 'questions'}"


def paired_gain(base: Sequence[float], new: Sequence[float], confidence: float = 0.95, rounds: int = 2000,
                seed: int = 0, groups: Sequence[Hashable] | None = None) -> Gain:
    """The paired bootstrap of `new - base` (the same questions, in the same order, in both); with `groups` (each
    question's memory build, in the same order), whole groups are resampled and each draw's mean is over the
    questions it holds."""
    if len(base) != len(new) or (groups is not None and len(groups) != len(base)):
        raise ValueError(f"paired scores differ in length: {len(base)} and {len(new)}"
                         + (f", {len(groups)} groups" if groups is not None else ""))
    diff = np.asarray(new, dtype=float) - np.asarray(base, dtype=float)
    if not len(diff):
        return Gain(mean=0.0, low=0.0, high=0.0, n=0, confidence=confidence)
    index: dict[Hashable, int] = {}
    labels = np.arange(len(diff)) if groups is None else np.array([index.setdefault(g, len(index)) for g in groups])
    sums, counts = np.bincount(labels, weights=diff), np.bincount(labels)
    draws = np.random.default_rng(seed).integers(0, len(sums), (rounds, len(sums)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Gain(mean=round(float(diff.mean()), 6), low=round(float(low), 6), high=round(float(high), 6),
                n=len(diff), confidence=confidence, groups=None if groups is None else len(sums))
