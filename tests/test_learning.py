"""Proof of learning through the real environment (spans, executor, memory bank, retrieval, answers, PPO): for
each kind of span exactly one skill makes the executor store what the window's questions need, and the
controller must learn to give that skill most of its probability."""

import json
import re

import numpy as np
import pytest
import yaml

from memskill_cli.components import Components
from memskill_cli.config import EmbeddingSettings, PrepareSettings, Settings, SpanSettings
from memskill_cli.controller import make_state
from memskill_cli.data.cache import build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.learning import make_trainer
from memskill_cli.llm import RoleClient, UsageLedger
from memskill_cli.skills import Skill, SkillBank
from tests.scripted import ScriptedClient
from tests.test_eval import answer_script

PETS = ["dog", "cat", "parrot", "rabbit", "hamster", "tortoise"]
PLACES = ["bakery", "library", "hospital", "garage", "museum", "school"]
NAMES = ["Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana"]


def conversation(i: int) -> dict:
    name, friend = NAMES[i], NAMES[(i + 1) % len(NAMES)]
    pet, place = PETS[i % len(PETS)], PLACES[(i + 2) % len(PLACES)]
    return {"id": f"kinds-{i}", "split": "train", "speakers": [name, friend], "sessions": [
        {"date": "1 May, 2024", "turns": [[name, f"My {pet} Pip{i} chased a ball in the park all day."],
                                          [friend, f"Your {pet} Pip{i} is so playful with the other animals!"]]},
        {"date": "8 May, 2024", "turns": [[name, f"I started working at the {place} on Hill{i} Road this week."],
                                          [friend, f"A job at the {place}, great: good colleagues there?"]]}],
        "questions": [
            {"q": f"What is the name of {name}'s {pet}?", "a": f"Pip{i}", "category": "single-hop",
             "evidence": ["S1:1"]},
            {"q": f"Where does {name} work?", "a": f"the {place} on Hill{i} Road", "category": "single-hop",
             "evidence": ["S2:1"]}]}


BANK = SkillBank(skills=[
    Skill(name="pets", description="Store facts about pets and animals.", instructions="Store pet facts.",
          actions=["INSERT"]),
    Skill(name="jobs", description="Store facts about jobs and workplaces.", instructions="Store job facts.",
          actions=["INSERT"]),
    Skill(name="travel", description="Store facts about trips and holidays.", instructions="Store trips.",
          actions=["INSERT"]),
    Skill(name="skip", description="Leave memory unchanged.", instructions="Write NOOP.", actions=["NOOP"]),
])


def kind_executor(request):
    """Stores the excerpt's turns only when the one skill for its kind was selected; otherwise nothing."""
    prompt = request.messages[-1]["content"]
    span = prompt.split("New excerpt:\n", 1)[1]
    kind = "pets" if any(p in span for p in PETS) else "jobs"
    if f"### {kind}\n" not in prompt:
        return '{"operations": [{"action": "NOOP"}]}'
    turns = [re.match(r"T(\d+) (.*)", line) for line in span.splitlines()]
    return json.dumps({"operations": [{"action": "INSERT", "turns": [int(t.group(1))], "content": t.group(2)}
                                      for t in turns if t]})


def no_answers(request):
    raise AssertionError("the evidence and coverage rewards must not call the answerer")


@pytest.mark.parametrize("reward", ["f1", "evidence", "coverage"])
def test_the_controller_learns_which_skill_each_kind_of_span_needs(tmp_path, encoder, reward):
    source = tmp_path / "kinds.yaml"
    source.write_text(yaml.safe_dump({"conversations": [conversation(i) for i in range(8)]}))
    [prepared] = prepare("sample", PrepareSettings(source=str(source)), tmp_path / "prep")
    info = build_cache(prepared.path, SpanSettings(mode="full-session"), EmbeddingSettings(), tmp_path / "cache",
                       encoder)
    bank_file = tmp_path / "bank.yaml"
    BANK.save(bank_file)
    ledger = UsageLedger()
    clients = {"executor": RoleClient("executor", ScriptedClient(kind_executor, "exec"), ledger=ledger),
               "answerer": RoleClient("answerer", ScriptedClient(answer_script if reward == "f1" else no_answers,
                                                                 "ans"), ledger=ledger)}
    settings = Settings(memory={"skill_bank": str(bank_file)}, train={"reward": reward,
        "updates": 30, "episodes_per_update": 8, "skills_per_span": 1, "window_sessions": 1, "hidden": 64,
        "proj": 32, "ppo": {"learning_rate": 0.003, "minibatch_size": 8, "target_kl": None, "ent_coef": 0.0}})
    trainer = make_trainer(settings, prepared.path, info.path, Components(encoder, clients, ledger))
    assert len(trainer.env.episodes) == 16  # two one-session windows per conversation, each with its question

    def first_pick(kind: str) -> float:
        """Mean probability of `kind`'s skill over the spans of that kind (as the first step of a window sees them)."""
        spans = [(s, v) for e in trainer.env.episodes.values() for s, v in e.spans]
        chosen = [v for s, v in spans if any(p in s.text for p in PETS) == (kind == "pets")]
        index = BANK.names.index(kind)
        return float(np.mean([trainer.probabilities(make_state(v, np.zeros((0, v.size), np.float32)))[index]
                              for v in chosen]))

    assert first_pick("pets") < 0.5 and first_pick("jobs") < 0.5
    rewards = [trainer.step()["reward_mean"] for _ in range(settings.train.updates)]
    assert first_pick("pets") > 0.9 and first_pick("jobs") > 0.9
    assert np.mean(rewards[-5:]) > np.mean(rewards[:5]) + 0.1  # (F1 of a whole stored turn caps the reward)
    if reward != "f1":  # the right skill stores each window's evidence turn, which holds the answer: near 1
        assert np.mean(rewards[-5:]) > 0.9 and ledger.role("answerer").calls == 0
