"""Skill selectors: which skills the executor applies to a span. The learned controller is one of these."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Collection
from typing import Generic, Protocol, TypeVar

import numpy as np
import torch

from memskill_cli.controller import SkillController, exploration_shift, make_state
from memskill_cli.data.spans import Span
from memskill_cli.errors import ConfigError
from memskill_cli.skills import Skill, SkillBank, changed_skills


class SkillSelector(Protocol):
    #: Identifies the selector's behaviour in memory-cache keys.
    identity: str

    def select(self, span: Span, span_vector: np.ndarray, memory_vectors: np.ndarray,
               bank: SkillBank) -> list[Skill]: ...


def check_top_k(top_k: int, bank: SkillBank, setting: str, selector: SkillSelector | None = None) -> None:
    """A selector must pick fewer skills than the bank holds, or it selects nothing: every span would get every
    skill (say `memory.selector: all` to mean that; `AllSkills` is exempt)."""
    if isinstance(selector, AllSkills):
        return
    if top_k >= len(bank.skills):
        raise ConfigError(f"{setting} is {top_k} but the skill bank holds {len(bank.skills)} skills: a selector "
                          f"must pick fewer, or it has no choice to make (set {setting} below "
                          f"{len(bank.skills)}, or memory.selector: all to give every span every skill)")


class AllSkills:
    """Every skill of the bank, every time (with the seed bank: the static-primitives baseline)."""

    identity = "all"

    def select(self, span: Span, span_vector: np.ndarray, memory_vectors: np.ndarray,
               bank: SkillBank) -> list[Skill]:
        return list(bank.skills)


T = TypeVar("T")


class PerBank(Generic[T]):
    """What a selector derives from a bank (its skills' description vectors), computed once per bank: parallel
    traces start at the same moment, and each would otherwise find nothing cached and compute it again."""

    def __init__(self, derive: Callable[[SkillBank], T]) -> None:
        self._derive = derive
        self._values: dict[str, T] = {}
        self._lock = threading.Lock()

    def __call__(self, bank: SkillBank) -> T:
        with self._lock:
            if bank.hash not in self._values:
                self._values[bank.hash] = self._derive(bank)
            return self._values[bank.hash]


class SimilarityTopK:
    """The K skills whose description embeds closest to the span."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray], top_k: int) -> None:
        self.encode = encode
        self.top_k = top_k
        self.identity = f"similarity-top{top_k}"
        self._descriptions = PerBank(lambda bank: self.encode([s.description for s in bank.skills]))

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
    """The trained controller as a skill selector: greedy top-K over the bank it is given.

    With `trained_on` and `floor`, skills the controller never trained with (new or refined since that bank)
    get the exploration floor they would get in training: how the policy would start on an evolved bank. With
    `fresh` instead, the skills of those names get it (training's own shift, while it still decays)."""

    def __init__(self, controller: SkillController, encode: Callable[[list[str]], np.ndarray], top_k: int,
                 identity: str, trained_on: SkillBank | None = None, floor: float = 0.0,
                 fresh: Collection[str] | None = None) -> None:
        self.controller, self.encode, self.top_k = controller, encode, top_k
        self.trained_on, self.floor, self.fresh = trained_on, floor, None if fresh is None else frozenset(fresh)
        explore = ""
        if floor and self.fresh:
            explore = f"-floor{floor}-{'+'.join(sorted(self.fresh))}"
        elif floor and trained_on is not None and self.fresh is None:
            explore = f"-floor{floor}-{trained_on.hash}"
        self.identity = f"controller-{identity}-top{top_k}{explore}"
        self._bank = PerBank(self._skill_tensors)

    def _skill_tensors(self, bank: SkillBank) -> tuple[torch.Tensor, torch.Tensor]:
        """The bank's skill vectors and which of its skills are untried."""
        if not self.floor:
            fresh: Collection[str] = ()
        elif self.fresh is not None:
            fresh = self.fresh
        else:
            fresh = changed_skills(self.trained_on, bank) if self.trained_on is not None else set()
        return (torch.tensor(self.encode([s.description for s in bank.skills])),
                torch.tensor([s.name in fresh for s in bank.skills]))

    def select(self, span: Span, span_vector: np.ndarray, memory_vectors: np.ndarray,
               bank: SkillBank) -> list[Skill]:
        skills, fresh = self._bank(bank)
        state = torch.tensor(make_state(span_vector, memory_vectors, self.controller.config.fusion))[None]
        with torch.no_grad():
            shift = exploration_shift(self.controller.logits(state, skills), fresh, self.floor) if fresh.any() else None
            actions, *_ = self.controller.get_action_and_value(state, skills, self.top_k, shift=shift, greedy=True)
        return [bank.skills[i] for i in actions[0].tolist()]
