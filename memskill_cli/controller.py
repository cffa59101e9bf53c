"""The skill-selection controller: a small torch policy that scores every skill of the bank for a span.

State = [span embedding ; fusion of the retrieved memories' embeddings]. A skill is represented by the
embedding of its description. Two MLP towers project state and skill; a skill's logit is the dot
product of the projections, so the bank can grow or change without re-initialisation. K skills are
chosen as an ordered set without replacement: Gumbel-top-K while training, greedy top-K in evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

Fusion = Literal["mean", "similarity"]


def fuse_memories(span: np.ndarray, memories: np.ndarray, fusion: Fusion = "mean") -> np.ndarray:
    """One vector for the retrieved memories (zeros when the bank is empty)."""
    if len(memories) == 0:
        return np.zeros_like(span)
    if fusion == "mean":
        return memories.mean(axis=0)
    weights = np.exp(memories @ span * 10.0)
    return (weights[:, None] * memories).sum(axis=0) / weights.sum()


def make_state(span: np.ndarray, memories: np.ndarray, fusion: Fusion = "mean") -> np.ndarray:
    return np.concatenate([span, fuse_memories(span, memories, fusion)]).astype(np.float32)


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, out))


@dataclass(frozen=True)
class ControllerConfig:
    embed_dim: int = 384
    hidden: int = 256
    proj: int = 128
    fusion: Fusion = "mean"


class SkillController(nn.Module):
    def __init__(self, config: ControllerConfig) -> None:
        super().__init__()
        self.config = config
        self.state_tower = _mlp(2 * config.embed_dim, config.hidden, config.proj)
        self.skill_tower = _mlp(config.embed_dim, config.hidden, config.proj)
        self.value_head = _mlp(2 * config.embed_dim, config.hidden, 1)

    def logits(self, states: torch.Tensor, skills: torch.Tensor) -> torch.Tensor:
        """[B, 2E] states x [N, E] skill embeddings -> [B, N] logits."""
        return self.state_tower(states) @ self.skill_tower(skills).T

    def get_value(self, states: torch.Tensor) -> torch.Tensor:
        return self.value_head(states).squeeze(-1)

    def get_action_and_value(
        self, states: torch.Tensor, skills: torch.Tensor, k: int, actions: torch.Tensor | None = None,
        shift: torch.Tensor | None = None, generator: torch.Generator | None = None, greedy: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or re-score) ordered K-subsets. Returns actions [B, K], log-prob [B], entropy [B], value [B].

        `shift` [B, N] is the exploration bonus added to the logits; the update re-applies the one the
        rollout used, so old and new log-probabilities are of the same distribution.
        """
        logits = self.logits(states, skills)
        if shift is not None:
            logits = logits + shift
        k = min(k, logits.shape[-1])
        if actions is None:
            actions = torch.topk(logits, k, dim=-1).indices if greedy else gumbel_top_k(logits.detach(), k, generator)
        log_probs = torch.log_softmax(logits, dim=-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        return actions, ordered_log_prob(log_probs, actions), entropy, self.get_value(states)


def gumbel_top_k(logits: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """An ordered sample of k indices without replacement (Plackett-Luce), via the Gumbel-top-k trick."""
    uniform = torch.rand(logits.shape, generator=generator, dtype=logits.dtype).clamp_(1e-12, 1 - 1e-12)
    return torch.topk(logits - torch.log(-torch.log(uniform)), k, dim=-1).indices


def ordered_log_prob(log_probs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Exact log-probability of an ordered selection: sum_j [log p(a_j) - log(1 - sum_{l<j} p(a_l))]."""
    chosen = log_probs.gather(-1, actions)  # [B, K]
    probs = chosen.exp()
    before = torch.cumsum(probs, dim=-1) - probs  # mass taken by earlier picks
    return (chosen - torch.log1p(-before.clamp(max=1 - 1e-6))).sum(-1)


def exploration_shift(logits: torch.Tensor, fresh: torch.Tensor, floor: float) -> torch.Tensor:
    """The smallest shift of the fresh skills' logits that gives them `floor` total probability.

    logits [B, N]; fresh [N] boolean. Returns a [B, N] shift (zero where the floor is already met).
    """
    shift = torch.zeros_like(logits)
    if floor <= 0 or not bool(fresh.any()) or bool(fresh.all()):
        return shift
    log_new = torch.logsumexp(logits[:, fresh], dim=-1)
    log_old = torch.logsumexp(logits[:, ~fresh], dim=-1)
    # p_new = e^(d + new) / (e^(d + new) + e^old) = floor  <=>  d = log(floor / (1 - floor)) + old - new
    delta = (np.log(floor / (1 - floor)) + log_old - log_new).clamp(min=0)
    shift[:, fresh] = delta.unsqueeze(-1)
    return shift


def decayed_floor(floor: float, steps_since_change: int, decay_steps: int) -> float:
    if decay_steps <= 0:
        return 0.0
    return floor * max(0.0, 1.0 - steps_since_change / decay_steps)
