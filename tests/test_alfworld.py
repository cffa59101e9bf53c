"""ALFWorld: generated games, the planner expert, the harness with scripted actors, the pair protocol,
official-layout loading, and the missing-extra message."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from memskill_cli.components import Components
from memskill_cli.config import AlfworldSettings, EmbeddingSettings, PrepareSettings, Settings, SpanSettings
from memskill_cli.data.schema import Session, Trace, Turn, load_prepared
from memskill_cli.data.spans import make_spans
from memskill_cli.llm import RoleClient, UsageLedger
from tests.conftest import cli_in, small_models
from tests.scripted import ScriptedClient

pytest.importorskip("alfworld", reason="the `alfworld` extra is not installed (pip install -e '.[alfworld]')")

from memskill_cli.data.cache import build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.embodied import games
from memskill_cli.embodied.actor import expert_policy
from memskill_cli.embodied.textenv import GamePool, GameTask
from memskill_cli.evaluation import evaluate, load_context

SMALL = AlfworldSettings(games_per_task={"memory": 1, "train": 1, "seen": 1, "unseen": 1})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A small prepared ALFWorld dataset: 6 task types x (1 memory + 1 train + 1 seen + 1 unseen) games."""
    [result] = prepare("alfworld", PrepareSettings(), tmp_path_factory.mktemp("prep"), SMALL, seed=3)
    return result


def test_generated_games_are_solvable_for_every_task_type(tmp_path):
    specs = [s for split in games.SPLITS for s in games.generate_split(split, 1, seed=11)]
    assert {s.task_type for s in specs} == set(games.TASK_TYPES)
    tasks = [GameTask(s.game_id, str(games.write_game(s, tmp_path))) for s in specs]
    with GamePool(2, expert=True) as pool:
        episodes = pool.play(tasks, expert_policy)
    assert all(e.won for e in episodes), [e.game_id for e in episodes if not e.won]
    assert all(e.objective.rstrip(".") in s.objective for e, s in zip(episodes, specs, strict=True))
    assert all("UNKNOWN GOAL" not in e.objective for e in episodes)


def test_a_game_under_a_folder_named_like_a_z_machine_file_still_plays(prepared, tmp_path):
    """textworld guesses a game's backend from anywhere in its path: `.z7` in a folder name (a temporary folder
    `.alfworld.z7snjobd` failed a run) made it a Z-machine game. open_game names the PDDL backend itself."""
    source = sorted((prepared.path / "games").glob("*/*/game.tw-pddl"))[0]
    target = tmp_path / ".alfworld.z7snjobd" / "game.tw-pddl"
    target.parent.mkdir()
    shutil.copy(source, target)
    with GamePool(1, expert=True) as pool:
        [episode] = pool.play([GameTask("renamed", str(target))], expert_policy)
    assert episode.won


def test_splits_are_disjoint_and_reproducible():
    splits = {split: games.generate_split(split, 3, seed=5) for split in games.SPLITS}
    ids = {split: {g.game_id for g in specs} for split, specs in splits.items()}
    problems = {split: {g.problem for g in specs} for split, specs in splits.items()}
    for a, b in (("train", "seen"), ("train", "unseen"), ("seen", "unseen")):
        assert not ids[a] & ids[b] and not problems[a] & problems[b]
    held_out = set(games.scenes("unseen"))
    assert not held_out & set(games.scenes("train"))
    assert {g.scene for g in splits["unseen"]} <= held_out
    assert not {g.scene for g in splits["train"] + splits["seen"]} & held_out
    assert [g.game_id for g in games.generate_split("seen", 3, seed=5)] == [g.game_id for g in splits["seen"]]
    assert [g.game_id for g in games.generate_split("seen", 3, seed=6)] != [g.game_id for g in splits["seen"]]


def test_prepare_writes_trajectories_and_playable_queries(prepared):
    traces, queries = load_prepared(prepared.path)
    assert {t.trace_id for t in traces} == {f"alfworld-{t}" for t in games.TASK_TYPES}
    session = traces[0].sessions[0]
    assert [t.speaker for t in session.turns[:4]] == ["task", "observation", "action", "observation"]
    assert {q.split for q in queries} == {"train", "validation", "test"}
    assert all((prepared.path / q.game).exists() and q.answers[0] for q in queries)
    assert prepared.manifest["alfworld"]["unsolved_by_expert"] == []


def test_trajectory_spans_keep_whole_trajectories():
    def session(n: int, steps: int) -> Session:
        turns = [Turn(turn_id=f"t{i}", speaker="action", text=f"go to shelf {i} and look around") for i in range(steps)]
        return Session(session_id=f"s{n}", turns=turns)

    trace = Trace(trace_id="x", split="train", sessions=[session(1, 3), session(2, 3), session(3, 40), session(4, 2)])
    spans = make_spans(trace, SpanSettings(mode="trajectory", max_tokens=80))
    owners = [span.session_ids for span in spans]
    assert owners == [["s1", "s2"], ["s3"], ["s4"]]        # s3 is over budget and stays whole, alone
    assert spans[1].n_tokens > 80 and all(s.n_tokens <= 80 for s in (spans[0], spans[2]))
    assert sum(s.text.count("action: ") for s in spans) == 48   # nothing lost, nothing repeated


def _replay_script(plans: dict[str, list[str]]):
    """An actor that replays the expert plan: the task names the game, the recent steps count the progress."""
    def script(request):
        text = request.messages[1]["content"]
        objective = re.search(r"^Task: (.*)$", text, re.M).group(1)
        done = len(re.findall(r"^> ", text.split("Recent steps:", 1)[1], re.M))
        return json.dumps({"command": plans[objective][done]})
    return script


def _context(prepared, tmp_path, encoder, answerer, **alfworld):
    info = build_cache(prepared.path, SpanSettings(), EmbeddingSettings(), tmp_path / "cache", encoder)
    ledger = UsageLedger()
    executor = ScriptedClient(
        lambda r: '{"operations": [{"action": "INSERT", "turns": [1], "content": "fridges hold food"}]}')
    clients = {"executor": RoleClient("executor", executor, ledger=ledger),
               "answerer": RoleClient("answerer", ScriptedClient(answerer, "actor"), ledger=ledger),
               "judge": RoleClient("judge", ScriptedClient(lambda r: "{}"), ledger=ledger)}
    settings = Settings(eval={"split": "test", "judge": False},
                        alfworld={"workers": 2, "history_steps": 50, **alfworld})
    return load_context(settings, prepared.path, info.path, Components(encoder, clients, ledger),
                        memory_root=tmp_path / "memories")


def test_harness_replaying_the_expert_wins_every_game(prepared, tmp_path, encoder):
    _, queries = load_prepared(prepared.path)
    plans = {q.question: q.answers[0].split(" > ") for q in queries}
    ctx = _context(prepared, tmp_path, encoder, _replay_script(plans))
    summary = evaluate(ctx, ["memskill", "no-memory"], tmp_path / "out")
    for method in ("memskill", "no-memory"):
        overall = summary["methods"][method]["overall"]
        assert overall["n"] == 6 and overall["success"] == 1.0 and overall["score"] == 1.0
    rows = [json.loads(line) for line in (tmp_path / "out/runs/memskill/predictions.jsonl").read_text().splitlines()]
    expert_steps = {q.query_id: len(q.answers[0].split(" > ")) for q in queries}
    assert all(r["steps"] == expert_steps[r["query_id"]] and r["inadmissible"] == 0 for r in rows)
    assert all(r["retrieved"] == ["fridges hold food"] for r in rows)   # memories retrieved by the objective
    prompts = [r.messages[1]["content"] for r in ctx.clients["answerer"].backend.requests]
    assert any("- fridges hold food" in p for p in prompts) and any("Memories:\n(none)" in p for p in prompts)


def test_harness_with_inadmissible_commands_fails_after_50_steps(prepared, tmp_path, encoder):
    ctx = _context(prepared, tmp_path, encoder, lambda r: '{"command": "fly to the moon"}')
    summary = evaluate(ctx, ["no-memory"], tmp_path / "out")
    overall = summary["methods"]["no-memory"]["overall"]
    assert overall == {"n": 6, "success": 0.0, "steps": 50.0, "score": 0.0}
    assert all(block["steps"] == 50.0 for block in summary["methods"]["no-memory"]["per_category"].values())


def test_training_pair_protocol_rewards_success_and_buffers_failures(prepared, tmp_path, encoder):
    from memskill_cli.learning import make_trainer, train

    _, queries = load_prepared(prepared.path)
    plans = {q.question: q.answers[0].split(" > ") for q in queries}
    half = {q.question for q in queries if q.category in games.TASK_TYPES[:3]}

    def half_right(request):   # replays the expert on three task types, stalls on the others
        objective = re.search(r"^Task: (.*)$", request.messages[1]["content"], re.M).group(1)
        return _replay_script(plans)(request) if objective in half else '{"command": "look"}'

    info = build_cache(prepared.path, SpanSettings(), EmbeddingSettings(), tmp_path / "cache", encoder)
    ledger = UsageLedger()
    insert = ScriptedClient(
        lambda r: '{"operations": [{"action": "INSERT", "turns": [1], "content": "open the fridge first"}]}')
    clients = {"executor": RoleClient("executor", insert, ledger=ledger),
               "answerer": RoleClient("answerer", ScriptedClient(half_right), ledger=ledger)}
    settings = Settings(train={"updates": 1, "episodes_per_update": 6, "queries_per_trace": 1},
                        alfworld={"workers": 2, "history_steps": 50, "max_steps": 12})
    trainer = make_trainer(settings, prepared.path, info.path, Components(encoder, clients, ledger))
    summary = train(settings, trainer, tmp_path / "train", ledger, resume=False)
    episodes = trainer.history[0]["episodes"]   # the batch draws task types with replacement
    played = [e["id"].removeprefix("alfworld-") for e in episodes]
    expected = [float(t in games.TASK_TYPES[:3]) for t in played]
    assert [e["reward"] for e in episodes] == expected and 0.0 < sum(expected) < len(expected)
    assert summary["reward_last"] == pytest.approx(sum(expected) / len(expected))
    state = json.loads((tmp_path / "train/checkpoint/state.json").read_text())
    failed = state["hard_cases"]["cases"]
    assert {c["category"] for c in failed.values()} == {t for t in played if t not in games.TASK_TYPES[:3]}
    assert all(c["score"] == 0.0 and c["prediction"].startswith("look") for c in failed.values())


def test_official_game_layout_loads_through_the_same_code(prepared, tmp_path):
    """Official ALFWorld folders (json_2.1.1/<split>/<task>-<...>/trial_*/game.tw-pddl) are read in place."""
    root = tmp_path / "json_2.1.1"
    for path in sorted((prepared.path / "games").glob("*/*/game.tw-pddl")):
        meta = json.loads(path.with_name("game.json").read_text())
        folder = {"train": "train", "seen": "valid_seen", "unseen": "valid_unseen"}[meta["split"]]
        target = root / folder / f"{meta['task_type']}-X-None-Y-{meta['scene']}" / f"trial_{meta['game_id'][-8:]}"
        target.mkdir(parents=True)
        shutil.copy(path, target / "game.tw-pddl")
    [result] = prepare("alfworld", PrepareSettings(source=str(root)), tmp_path / "prep", SMALL)
    traces, queries = load_prepared(result.path)
    assert len(traces) == 6 and len(queries) == 18
    assert all(q.game.startswith(str(root.resolve())) for q in queries)
    assert not (result.path / "games").exists()    # official files are used where they lie, not copied


def test_without_the_extra_the_command_says_how_to_install(tmp_path):
    blocker = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('alfworld', 'textworld'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from memskill_cli.cli.app import main\n"
        "sys.argv = ['memskill', '-q', 'prepare', 'alfworld']\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "pip install -e '.[alfworld]'" in result.stderr and not (tmp_path / "data").exists()


@pytest.mark.llm
def test_real_games_with_the_embedded_model(tmp_path):
    """A few real games end to end: prepare, build-cache, eval with the embedded actor (short step limit)."""
    cmd = cli_in(tmp_path, alfworld={"games_per_task": {"memory": 1, "train": 0, "seen": 0, "unseen": 1},
                                     "max_steps": 6, "workers": 2},
                 eval={"split": "test", "judge": False, "max_queries": 2}, mlflow={"enabled": False},
                 prepare={"source": None}, llm=small_models())   # generate the games
    for args in (["prepare", "alfworld"], ["build-cache", "alfworld"],
                 ["eval", "alfworld", "-m", "memskill", "-m", "no-memory"]):
        result = subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "artifacts/eval/alfworld/metrics.json").read_text())
    for method in ("memskill", "no-memory"):
        overall = summary["methods"][method]["overall"]
        assert overall["n"] == 2 and 0.0 <= overall["success"] <= 1.0 and 1 <= overall["steps"] <= 6
        rows = [json.loads(line) for line in
                (tmp_path / f"artifacts/eval/alfworld/runs/{method}/predictions.jsonl").read_text().splitlines()]
        # constrained decoding keeps the actor to admissible commands; every step is a real game step
        assert all(r["inadmissible"] == 0 and len(r["transcript"]) == len(r["prediction"].split(" > ")) for r in rows)
        assert all(r["transcript"][0][1] and r["transcript"][0][1] != "Nothing happens." for r in rows)
    assert summary["methods"]["memskill"]["cost"]["executor_calls"] >= 1
    assert summary["llm_usage"]["answerer"]["calls"] >= 2
