"""The controller's selection maths, PPO on a synthetic task, a growing bank, and exact resume."""

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from memskill_cli.config import PPOSettings
from memskill_cli.controller import ControllerConfig, exploration_shift, gumbel_top_k, ordered_log_prob
from memskill_cli.ppo import gae
from memskill_cli.skills import Skill, SkillBank
from memskill_cli.training import EpisodeResult, TrainConfig, Trainer

EMBED = 8


def brute_force(probs: np.ndarray, order: tuple[int, ...]) -> float:
    value, taken = 1.0, 0.0
    for index in order:
        value *= probs[index] / (1 - taken)
        taken += probs[index]
    return value


def test_joint_log_prob_equals_brute_force_enumeration():
    logits = torch.tensor([[0.3, -1.2, 2.0, 0.0, 0.7]])
    probs = torch.softmax(logits, -1)[0].numpy()
    orders = list(itertools.permutations(range(5), 3))
    actions = torch.tensor(orders)
    log_probs = ordered_log_prob(torch.log_softmax(logits, -1).expand(len(orders), -1), actions)
    expected = np.array([brute_force(probs, o) for o in orders])
    np.testing.assert_allclose(log_probs.exp().numpy(), expected, rtol=1e-5)
    assert expected.sum() == pytest.approx(1.0, abs=1e-6)


def test_gumbel_top_k_frequencies_match_the_probabilities():
    logits = torch.tensor([1.0, 0.2, -0.5, 0.6])
    probs = torch.softmax(logits, -1).numpy()
    samples = gumbel_top_k(logits.expand(40_000, -1), 2, torch.Generator().manual_seed(7))
    orders = list(itertools.permutations(range(4), 2))
    counts = count_orders(samples, orders)
    expected = np.array([brute_force(probs.astype(np.float64), o) for o in orders])
    expected = expected / expected.sum() * len(samples)
    assert chisquare(counts, expected).pvalue > 0.001
    assert len(set(map(tuple, samples.tolist()))) == 12  # every ordered pair occurs, no repeats within a pick


def count_orders(samples: torch.Tensor, orders: list[tuple[int, int]]) -> np.ndarray:
    index = {o: i for i, o in enumerate(orders)}
    counts = np.zeros(len(orders))
    for row in samples.tolist():
        counts[index[tuple(row)]] += 1
    return counts


def test_gae_backward_loop():
    advantages, returns = gae(np.array([0.0, 0.0, 1.0]), np.array([0.5, 0.5, 0.5]), np.array([0, 0, 1]),
                              gamma=1.0, lam=1.0)
    np.testing.assert_allclose(advantages, [0.5, 0.5, 0.5])
    np.testing.assert_allclose(returns, [1.0, 1.0, 1.0])
    two_episodes, _ = gae(np.array([1.0, 2.0]), np.zeros(2), np.array([1, 1]), gamma=0.9, lam=0.9)
    np.testing.assert_allclose(two_episodes, [1.0, 2.0])  # no bootstrapping across an episode end


def test_exploration_shift_gives_fresh_skills_exactly_the_floor():
    logits = torch.tensor([[2.0, 1.0, -3.0], [0.0, 0.0, 5.0]])
    fresh = torch.tensor([False, False, True])
    shifted = torch.softmax(logits + exploration_shift(logits, fresh, 0.3), -1)
    assert shifted[0, 2] == pytest.approx(0.3, abs=1e-5)  # raised to the floor
    assert shifted[1, 2] == pytest.approx(torch.softmax(logits, -1)[1, 2])  # already above: untouched


class SyntheticEnv:
    """Four steps per episode; the reward is the share of steps whose chosen pair is {1, 3}."""

    def __init__(self, best=(1, 3)):
        self.best = set(best)

    def episode_ids(self):
        return [f"trace-{i}" for i in range(6)]

    def episode(self, episode_id, act, bank):
        rng = np.random.default_rng(int(episode_id.split("-")[1]))
        hits = sum(set(act(rng.normal(size=2 * EMBED).astype(np.float32))) == self.best for _ in range(4))
        return EpisodeResult(hits / 4)


def skill_bank(n: int) -> SkillBank:
    return SkillBank(skills=[Skill(name=f"skill-{i}", description=f"d{i}", instructions="i", actions=["INSERT"])
                             for i in range(n)])


def encode_descriptions(texts):
    """A fixed random vector per description 'd<i>'."""
    return np.stack([np.random.default_rng(int(t[1:]) + 100).normal(size=EMBED) for t in texts]).astype(np.float32)


def make_trainer(updates=1, seed=0, lr=3e-3):
    return Trainer(SyntheticEnv(), skill_bank(6), encode_descriptions,
                   TrainConfig(updates=updates, episodes_per_update=8, top_k=2, seed=seed),
                   PPOSettings(learning_rate=lr, minibatch_size=16, update_epochs=4, target_kl=None, ent_coef=0.0),
                   ControllerConfig(embed_dim=EMBED, hidden=32, proj=16))


def pair_probability(trainer, pair=(1, 3)) -> float:
    rng = np.random.default_rng(123)
    total = 0.0
    for _ in range(50):
        probs = trainer.probabilities(rng.normal(size=2 * EMBED).astype(np.float32))
        total += brute_force(probs, pair) + brute_force(probs, pair[::-1])
    return total / 50


def test_ppo_learns_the_best_skill_pair():
    trainer = make_trainer()
    before = pair_probability(trainer)
    rewards = [trainer.step()["reward_mean"] for _ in range(40)]
    after = pair_probability(trainer)
    assert before < 0.15  # chance is 1/15
    assert after > 0.5
    assert np.mean(rewards[-5:]) > np.mean(rewards[:5]) + 0.3
    record = trainer.history[-1]
    for key in ("policy_loss", "value_loss", "approx_kl", "clip_fraction", "entropy", "explained_variance"):
        assert np.isfinite(record[key])
    assert sum(record["skill_usage"].values()) == record["transitions"] * 2


def test_adding_a_skill_keeps_other_logits_and_gives_the_floor():
    trainer = make_trainer()
    for _ in range(3):
        trainer.step()
    state = torch.tensor(np.random.default_rng(5).normal(size=2 * EMBED).astype(np.float32))[None]
    before = trainer.controller.logits(state, trainer.skill_vectors).detach()
    grown = SkillBank(version=2, skills=[*trainer.bank.skills, Skill(
        name="skill-6", description="d6", instructions="i", actions=["INSERT"])])
    trainer.set_bank(grown, fresh={"skill-6"})
    after = trainer.controller.logits(state, trainer.skill_vectors).detach()
    torch.testing.assert_close(after[:, :6], before)
    raw = torch.softmax(after, -1)[0, 6].item()
    probs = trainer.probabilities(state[0].numpy())
    assert probs[6] >= max(raw, 0.3) - 1e-5
    trainer.step()  # the grown bank trains without re-initialisation


def test_resume_reaches_exactly_the_same_parameters(tmp_path):
    straight = make_trainer()
    for _ in range(4):
        straight.step()
    interrupted = make_trainer()
    for _ in range(2):
        interrupted.step()
    interrupted.save(tmp_path / "ckpt")
    resumed = make_trainer()
    assert resumed.resume(tmp_path / "ckpt")["update"] == 2
    for _ in range(2):
        resumed.step()
    for (name, a), (_, b) in zip(straight.controller.state_dict().items(), resumed.controller.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    def untimed(history):
        return [{k: v for k, v in record.items() if not k.endswith("_seconds")} for record in history]

    assert untimed(resumed.history) == untimed(straight.history)
