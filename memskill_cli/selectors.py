"""Skill selectors: which skills the executor applies to a span. The learned controller is one of these."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from memskill_cli.controller import SkillController, make_state
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


class ControllerSelector:
    """The trained controller as a skill selector: greedy top-K over the bank it is given."""

    def __init__(self, controller: SkillController, encode: Callable[[list[str]], np.ndarray], top_k: int,
                 identity: str) -> None:
        self.controller, self.encode, self.top_k = controller, encode, top_k
        self.identity = f"controller-{identity}-top{top_k}"
        self._skills: dict[str, torch.Tensor] = {}

    def select(self, span: Span, span_vector: np.ndarray, memory_vectors: np.ndarray,
               bank: SkillBank) -> list[Skill]:
        if bank.hash not in self._skills:
            self._skills[bank.hash] = torch.tensor(self.encode([s.description for s in bank.skills]))
        state = torch.tensor(make_state(span_vector, memory_vectors, self.controller.config.fusion))[None]
        with torch.no_grad():
            actions, *_ = self.controller.get_action_and_value(state, self._skills[bank.hash], self.top_k,
                                                               greedy=True)
        return [bank.skills[i] for i in actions[0].tolist()]
