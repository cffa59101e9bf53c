"""Skill selectors: which skills the executor applies to a span. The learned controller is one of these."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

import numpy as np

from memskill_cli.data.spans import Span
from memskill_cli.fileio import stable_hash
from memskill_cli.skills import Skill, SkillBank


class SkillSelector(Protocol):
    #: Identifies the selector's behaviour in memory-cache keys.
    identity: str

    def select(self, span: Span, span_vector: np.ndarray, memory_vectors: np.ndarray,
               bank: SkillBank) -> list[Skill]: ...


class AllSkills:
    """Every skill of the bank, every time (with the seed bank: the static-primitives baseline)."""

    identity = "all"

    def select(self, span: Span, span_vector: np.ndarray, memory_vectors: np.ndarray,
               bank: SkillBank) -> list[Skill]:
        return list(bank.skills)


class SimilarityTopK:
    """The K skills whose description embeds closest to the span."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray], top_k: int) -> None:
        self.encode = encode
        self.top_k = top_k
        self.identity = f"similarity-top{top_k}"
        self._cache: dict[str, np.ndarray] = {}

    def _descriptions(self, bank: SkillBank) -> np.ndarray:
        key = stable_hash([s.description for s in bank.skills])
        if key not in self._cache:
            self._cache[key] = self.encode([s.description for s in bank.skills])
        return self._cache[key]

    def select(self, span: Span, span_vector: np.ndarray, memory_vectors: np.ndarray,
               bank: SkillBank) -> list[Skill]:
        scores = self._descriptions(bank) @ span_vector
        order = np.argsort(-scores, kind="stable")[: self.top_k]
        return [bank.skills[i] for i in order]


class RandomK:
    """K skills drawn uniformly per span, seeded by the span id so runs are reproducible."""

    def __init__(self, top_k: int, seed: int = 0) -> None:
        self.top_k = top_k
        self.seed = seed
        self.identity = f"random-top{top_k}-seed{seed}"

    def select(self, span: Span, span_vector: np.ndarray, memory_vectors: np.ndarray,
               bank: SkillBank) -> list[Skill]:
        rng = random.Random(f"{self.seed}:{span.span_id}")
        return rng.sample(list(bank.skills), min(self.top_k, len(bank.skills)))
