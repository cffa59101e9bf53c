"""PPO for the controller, in the algorithm's order (after CleanRL): GAE, clipped loss, update.

GAE and the losses are pure functions, unit-tested on their own; `ppo_update` runs the epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from memskill_cli.config import PPOSettings
from memskill_cli.controller import SkillController


@dataclass
class Transition:
    """One span's decision: the state, the ordered skills picked, and what the policy thought of them."""

    state: np.ndarray
    actions: list[int]
    log_prob: float
    value: float
    shift: np.ndarray  # exploration shift applied to the logits at rollout
    reward: float = 0.0
    done: bool = False


def gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, gamma: float, lam: float,
        last_value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation as a backward loop; `dones[t]` ends the episode after step t."""
    advantages = np.zeros(len(rewards), dtype=np.float32)
    running = 0.0
    for t in reversed(range(len(rewards))):
        next_value = last_value if t == len(rewards) - 1 else values[t + 1]
        nonterminal = 1.0 - float(dones[t])
        delta = rewards[t] + gamma * next_value * nonterminal - values[t]
        running = delta + gamma * lam * nonterminal * running
        advantages[t] = running
    return advantages, advantages + values.astype(np.float32)


def clipped_policy_loss(new_log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                        clip_coef: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, approximate KL, clip fraction)."""
    log_ratio = new_log_prob - old_log_prob
    ratio = log_ratio.exp()
    loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clip_fraction = ((ratio - 1.0).abs() > clip_coef).float().mean()
    return loss, approx_kl, clip_fraction


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    variance = np.var(target)
    return float("nan") if variance == 0 else float(1 - np.var(target - predicted) / variance)


def ppo_update(controller: SkillController, optimizer: torch.optim.Optimizer, transitions: list[Transition],
               skills: torch.Tensor, k: int, config: PPOSettings, generator: torch.Generator) -> dict[str, float]:
    """A few epochs of minibatch PPO over one batch of episodes; early stop on approximate KL."""
    rewards = np.array([t.reward for t in transitions], dtype=np.float32)
    values = np.array([t.value for t in transitions], dtype=np.float32)
    dones = np.array([t.done for t in transitions])
    advantages, returns = gae(rewards, values, dones, config.gamma, config.gae_lambda)
    states = torch.tensor(np.stack([t.state for t in transitions]))
    actions = torch.tensor([t.actions for t in transitions], dtype=torch.long)
    old_log_probs = torch.tensor([t.log_prob for t in transitions], dtype=torch.float32)
    shifts = torch.tensor(np.stack([t.shift for t in transitions]), dtype=torch.float32)
    adv_t, ret_t = torch.tensor(advantages), torch.tensor(returns)
    n = len(transitions)
    stats: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "entropy": [], "approx_kl": [],
                                     "clip_fraction": []}
    epochs_run = 0
    for _ in range(config.update_epochs):
        epochs_run += 1
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.minibatch_size):
            idx = order[start:start + config.minibatch_size]
            _, new_log_prob, entropy, new_value = controller.get_action_and_value(
                states[idx], skills, k, actions=actions[idx], shift=shifts[idx])
            mb_adv = adv_t[idx]
            if len(idx) > 1:
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
            policy_loss, approx_kl, clip_fraction = clipped_policy_loss(new_log_prob, old_log_probs[idx], mb_adv,
                                                                        config.clip_coef)
            value_loss = 0.5 * ((new_value - ret_t[idx]) ** 2).mean()
            loss = policy_loss - config.ent_coef * entropy.mean() + config.vf_coef * value_loss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(controller.parameters(), config.max_grad_norm)
            optimizer.step()
            for name, value in (("policy_loss", policy_loss), ("value_loss", value_loss),
                                ("entropy", entropy.mean()), ("approx_kl", approx_kl),
                                ("clip_fraction", clip_fraction)):
                stats[name].append(float(value.detach()))
        if config.target_kl is not None and stats["approx_kl"][-1] > config.target_kl:
            break
    summary = {name: float(np.mean(v)) for name, v in stats.items()}
    summary["explained_variance"] = explained_variance(values, returns)
    summary["epochs"] = float(epochs_run)
    return summary
