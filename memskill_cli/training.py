"""Training the controller: episodes (one trace's memory built with the controller's choices), PPO updates,
and a checkpoint after every update, so a killed run loses at most the batch in flight.

Randomness is derived from (seed, update, episode), never from a shared stream, so parallel episodes and
a resumed run draw exactly what an uninterrupted run draws.
"""

from __future__ import annotations

import copy
import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from memskill_cli.checkpoint import load_checkpoint, save_checkpoint
from memskill_cli.config import PPOSettings
from memskill_cli.controller import (
    ControllerConfig,
    SkillController,
    decayed_floor,
    exploration_shift,
)
from memskill_cli.ppo import Transition, ppo_update
from memskill_cli.selectors import ControllerSelector, check_top_k
from memskill_cli.skills import SkillBank

Act = Callable[[np.ndarray], list[int]]


@dataclass
class EpisodeResult:
    reward: float
    info: dict[str, Any] = field(default_factory=dict)


class Environment(Protocol):
    """Runs one episode, asking `act(state)` for the skill indices of every step."""

    def episode(self, episode_id: str, act: Act, bank: SkillBank) -> EpisodeResult: ...

    def episode_ids(self) -> list[str]: ...


@dataclass(frozen=True)
class TrainConfig:
    updates: int = 10
    episodes_per_update: int = 4
    top_k: int = 3
    workers: int = 1
    seed: int = 0
    new_skill_floor: float = 0.3
    floor_decay_updates: int = 5


def _seed_for(*parts: object) -> int:
    return random.Random(":".join(map(str, parts))).getrandbits(63)


class Trainer:
    def __init__(self, env: Environment, bank: SkillBank, encode_skills: Callable[[list[str]], np.ndarray],
                 config: TrainConfig, ppo: PPOSettings, controller_config: ControllerConfig) -> None:
        self.env, self.config, self.ppo = env, config, ppo
        self.encode_skills = encode_skills
        torch.manual_seed(config.seed)
        self.controller = SkillController(controller_config)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=ppo.learning_rate, eps=1e-5)
        self.update = 0
        self.history: list[dict[str, Any]] = []
        self.fresh: set[str] = set()
        self.changed_at = 0
        self._lock = threading.Lock()
        self.set_bank(bank)

    def set_bank(self, bank: SkillBank, fresh: set[str] | None = None) -> None:
        """Use a (possibly grown or edited) bank; `fresh` skills get the exploration floor for a while."""
        check_top_k(self.config.top_k, bank, "train.skills_per_span")
        self.bank = bank
        self.skill_vectors = torch.tensor(self.encode_skills([s.description for s in bank.skills]))
        if fresh:
            self.fresh, self.changed_at = set(fresh), self.update

    def _shift(self, logits: torch.Tensor) -> torch.Tensor:
        mask = torch.tensor([s.name in self.fresh for s in self.bank.skills])
        return exploration_shift(logits, mask, self.floor())

    def floor(self) -> float:
        """The exploration floor of the fresh skills now: it decays over `floor_decay_updates` updates."""
        return decayed_floor(self.config.new_skill_floor, self.update - self.changed_at,
                             self.config.floor_decay_updates)

    def selector(self, top_k: int) -> ControllerSelector:
        """The policy as it stands, greedy as at evaluation, for scoring bank versions with the controller that
        is being trained: a frozen copy (its identity is the weights', so built memories are never reused across
        updates), its fresh skills at the floor training gives them now."""
        frozen = copy.deepcopy(self.controller).eval()
        digest = hashlib.sha256()
        for tensor in frozen.state_dict().values():
            digest.update(tensor.detach().numpy().tobytes())
        weights = digest.hexdigest()[:16]
        return ControllerSelector(frozen, self.encode_skills, top_k, f"training-{weights}", floor=self.floor(),
                                  fresh=self.fresh)

    def probabilities(self, state: np.ndarray) -> np.ndarray:
        """First-pick probabilities of every skill (with the current exploration shift)."""
        with torch.no_grad():
            logits = self.controller.logits(torch.tensor(state)[None], self.skill_vectors)
            return torch.softmax(logits + self._shift(logits), -1)[0].numpy()

    def _run_episode(self, index: int, episode_id: str) -> tuple[list[Transition], EpisodeResult]:
        generator = torch.Generator().manual_seed(_seed_for(self.config.seed, self.update, index))
        transitions: list[Transition] = []

        def act(state: np.ndarray) -> list[int]:
            with self._lock, torch.no_grad():
                states = torch.tensor(state)[None]
                shift = self._shift(self.controller.logits(states, self.skill_vectors))
                actions, log_prob, _, value = self.controller.get_action_and_value(
                    states, self.skill_vectors, self.config.top_k, shift=shift, generator=generator)
            chosen = actions[0].tolist()
            transitions.append(Transition(state, chosen, float(log_prob[0]), float(value[0]), shift[0].numpy()))
            return chosen

        result = self.env.episode(episode_id, act, self.bank)
        if transitions:
            transitions[-1].reward, transitions[-1].done = result.reward, True
        return transitions, result

    def step(self) -> dict[str, Any]:
        """One batch of episodes and one PPO update; returns the update's diagnostics."""
        ids = self.env.episode_ids()
        rng = random.Random(_seed_for(self.config.seed, "batch", self.update))
        batch = [ids[rng.randrange(len(ids))] for _ in range(self.config.episodes_per_update)]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=self.config.workers) as pool:
            outcomes = list(pool.map(self._run_episode, range(len(batch)), batch))
        episodes_s = time.perf_counter() - start
        transitions = [t for episode, _ in outcomes for t in episode]
        rewards = [result.reward for _, result in outcomes]
        generator = torch.Generator().manual_seed(_seed_for(self.config.seed, "ppo", self.update))
        stats: dict[str, Any] = {}
        start = time.perf_counter()
        if transitions:
            stats = ppo_update(self.controller, self.optimizer, transitions, self.skill_vectors, self.config.top_k,
                               self.ppo, generator)
        ppo_s = time.perf_counter() - start
        usage = Counter(self.bank.skills[a].name for t in transitions for a in t.actions)
        self.update += 1
        record = {
            "update": self.update, "reward_mean": float(np.mean(rewards)), "reward_min": float(np.min(rewards)),
            "reward_max": float(np.max(rewards)), "transitions": len(transitions), **stats,
            "episodes_seconds": round(episodes_s, 3), "ppo_seconds": round(ppo_s, 4),
            "skill_usage": dict(sorted(usage.items())),
            "episodes": [{"id": i, **r.info} for i, (_, r) in zip(batch, outcomes, strict=True)],
        }
        self.history.append(record)
        return record

    def save(self, directory: Path, extra: dict[str, Any] | None = None) -> None:
        save_checkpoint(directory, self.controller, self.optimizer, {
            "update": self.update, "config": asdict(self.config), "ppo": self.ppo.model_dump(),
            "controller": asdict(self.controller.config), "skill_bank": self.bank.model_dump(),
            "skill_bank_hash": self.bank.hash, "fresh": sorted(self.fresh), "changed_at": self.changed_at,
            "history": self.history, **(extra or {}),
        })

    def resume(self, directory: Path) -> dict[str, Any]:
        meta = load_checkpoint(directory, self.controller, self.optimizer)
        self.update, self.history = meta["update"], meta["history"]
        self.set_bank(SkillBank.model_validate(meta["skill_bank"]))
        self.fresh, self.changed_at = set(meta["fresh"]), meta["changed_at"]
        return meta
