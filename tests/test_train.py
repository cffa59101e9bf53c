"""`memskill train` on the real environment: scripted LLM for the mechanics, embedded LLM for real."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from memskill_cli.checkpoint import load_controller
from memskill_cli.components import Components
from memskill_cli.config import EmbeddingSettings, PrepareSettings, Settings, SpanSettings
from memskill_cli.controller import make_state
from memskill_cli.data.cache import build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.errors import ConfigError
from memskill_cli.evaluation import evaluate, load_context
from memskill_cli.learning import make_trainer, train
from memskill_cli.llm import RoleClient, UsageLedger
from tests.conftest import REPO, cli_in, small_models
from tests.scripted import ScriptedClient
from tests.test_eval import answer_script, executor_script


def test_train_then_eval_with_the_controller(tmp_path, encoder):
    [prepared] = prepare("sample", PrepareSettings(source=str(REPO / "data/sample/sample.yaml")), tmp_path / "prep")
    info = build_cache(prepared.path, SpanSettings(max_tokens=128), EmbeddingSettings(), tmp_path / "cache", encoder)
    ledger = UsageLedger()
    clients = {"executor": RoleClient("executor", ScriptedClient(executor_script, "exec"), ledger=ledger),
               "answerer": RoleClient("answerer", ScriptedClient(answer_script, "ans"), ledger=ledger),
               "judge": RoleClient("judge", ScriptedClient(lambda r: '{"explanation": "", "score": 1}'), ledger=ledger)}
    settings = Settings(train={"updates": 2, "episodes_per_update": 2, "queries_per_trace": 3, "skills_per_span": 2})
    trainer = make_trainer(settings, prepared.path, info.path, Components(encoder, clients, ledger))
    summary = train(settings, trainer, tmp_path / "train", ledger, resume=False)
    assert summary["updates"] == 2 and 0 < summary["reward_best"] <= 1
    with pytest.raises(ConfigError, match=r"train.skills_per_span is 4 but the skill bank holds 4 skills"):
        make_trainer(Settings(train={"skills_per_span": 4}), prepared.path, info.path,
                     Components(encoder, clients, ledger))
    history = [json.loads(line) for line in (tmp_path / "train/history.jsonl").read_text().splitlines()]
    # An episode is one session of a training conversation with every question whose evidence lies in it.
    windows = trainer.env.episodes
    assert set(windows) == {"sample-01@sessions1-1", "sample-01@sessions2-2", "sample-02@sessions1-1",
                            "sample-02@sessions2-2", "sample-02@sessions3-3"}
    for window in windows.values():
        turns = {t for span, _ in window.spans for t in span.turn_ids}
        assert window.queries and all(set(q.evidence) <= turns for q in window.queries)
        assert {s.session_ids[0] for s, _ in window.spans} == {window.spans[0][0].session_ids[0]}
    episode = history[0]["episodes"][0]
    assert episode["executor_calls"] == len(windows[episode["id"]].spans)
    assert [c["query_id"] for c in episode["cases"]] == [q.query_id for q in windows[episode["id"]].queries]
    # The reward comes from the window's memory: none built (no INSERT skill picked), nothing retrieved, 0.
    for record in history:
        for ep in record["episodes"]:
            retrieved = [len(case["retrieved"]) > 0 for case in ep["cases"]]
            assert all(retrieved) if ep["memories"] else (not any(retrieved) and ep["reward"] == 0)
    assert sum(history[0]["skill_usage"].values()) == 2 * history[0]["transitions"]
    state = json.loads((tmp_path / "train/checkpoint/state.json").read_text())
    assert state["update"] == 2 and state["history"][1]["llm_usage"]["executor"]["calls"] > 0
    assert state["hard_cases"]["cases"]  # the hard-case buffer is persisted in the checkpoint
    assert state["history"][0]["ppo_seconds"] >= 0 and state["history"][0]["episodes_seconds"] > 0
    # A resumed run with a larger budget continues from update 2 instead of starting over ...
    more = Settings(train={"updates": 3, "episodes_per_update": 2, "queries_per_trace": 3, "skills_per_span": 2})
    components = Components(encoder, clients, ledger)
    resumed = train(more, make_trainer(more, prepared.path, info.path, components), tmp_path / "train", ledger,
                    resume=True)
    assert resumed["updates"] == 3 and resumed["resumed_from"] == 2 and resumed["fresh_because"] is None
    # ... but not a checkpoint made with other settings (what `dvc repro` after a params change must not do).
    other = Settings(train={"updates": 1, "episodes_per_update": 2, "queries_per_trace": 3, "skills_per_span": 2,
                            "ppo": {"learning_rate": 0.01}})
    fresh = train(other, make_trainer(other, prepared.path, info.path, components), tmp_path / "other", ledger,
                  resume=True)
    assert fresh["resumed_from"] is None and fresh["fresh_because"] == "there is no checkpoint"
    shutil.copytree(tmp_path / "train/checkpoint", tmp_path / "other/checkpoint", dirs_exist_ok=True)
    fresh = train(other, make_trainer(other, prepared.path, info.path, components), tmp_path / "other", ledger,
                  resume=True)
    assert fresh["resumed_from"] is None and "other code or settings" in fresh["fresh_because"]
    assert fresh["updates"] == 1
    # Evaluation with the trained controller as the selector.
    eval_settings = Settings(eval={"split": "validation", "judge": False, "skills_per_span": 2},
                             memory={"controller": str(tmp_path / "train/checkpoint")})
    context = load_context(eval_settings, prepared.path, info.path, components, memory_root=tmp_path / "mem")
    result = evaluate(context, ["memskill"], tmp_path / "eval")
    assert result["methods"]["memskill"]["overall"]["f1"] > 0
    memories = json.loads((tmp_path / "eval/runs/memskill/memories.json").read_text())
    assert all(len(r["skills"]) == 2 for m in memories.values() for r in m["records"])
    # The executor received exactly the trained controller's greedy top-2, as a set in the bank's order (checked
    # where memory is still empty).
    controller, _, trained_on = load_controller(tmp_path / "train/checkpoint")
    assert trained_on == trainer.bank  # the checkpoint knows its bank: no skill is untried here
    names = trainer.bank.names
    skills = torch.tensor(encoder.encode([s.description for s in trainer.bank.skills]))
    for trace_id, memory in memories.items():
        span, vector = context.cache.for_trace(trace_id)[0]
        state = torch.tensor(make_state(vector, np.zeros((0, vector.size), np.float32)))[None]
        picks = torch.topk(controller.logits(state, skills), 2).indices[0].tolist()
        assert memory["records"][0]["span_id"] == span.span_id
        assert memory["records"][0]["skills"] == [names[i] for i in sorted(picks)]  # in the bank's order
    assert any("controller-" in p.name or p.is_dir() for p in (tmp_path / "mem").iterdir())


@pytest.mark.llm
def test_short_real_train_writes_a_checkpoint(tmp_path):
    cli = cli_in(tmp_path, train={"updates": 1, "episodes_per_update": 1, "queries_per_trace": 3},
                 llm=small_models())
    for args in (["prepare", "sample"], ["build-cache"], ["train"]):
        result = subprocess.run(cli + args, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    checkpoint = tmp_path / "artifacts/train/sample/checkpoint"
    assert (checkpoint / "controller.safetensors").stat().st_size > 1000
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["update"] == 1 and state["skill_bank_hash"]
    assert state["history"][0]["episodes"][0]["executor_calls"] >= 1
    episode = state["history"][0]["episodes"][0]  # a session window: every question whose evidence lies in it
    assert "@sessions" in episode["id"]
    assert state["history"][0]["llm_usage"]["answerer"]["calls"] == len(episode["cases"])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("memskill-sample")
    [run] = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "train"]
    history = client.get_metric_history(run.info.run_id, "reward_mean")
    assert [m.step for m in history] == [1]
    assert "checkpoint" in {a.path for a in client.list_artifacts(run.info.run_id)}


def picky_executor(request):
    """Stores anything only when the designer's new skill is selected: a bank that needs evolving."""
    if "### store-all" in request.messages[-1]["content"]:
        return executor_script(request)
    return '{"operations": [{"action": "NOOP"}]}'


def store_all_designer(request):
    """Proposes the one general skill `picky_executor` needs."""
    if "Failed cases" in request.messages[0]["content"]:
        return '{"patterns": [], "recommendations": ["store every fact"]}'
    return json.dumps({"edits": [{"op": "add", "skill": "store-all", "description": "Store every fact stated.",
                                  "instructions": "Insert one memory per sentence of the span.",
                                  "actions": ["INSERT"], "reason": "facts are missing"}]})


def test_train_alternates_ppo_and_evolution(tmp_path, encoder):
    """An evolution cycle between PPO phases proposes a version; the controller trains on it (its new skill at the
    exploration floor) and, judged after that phase, the better bank is adopted."""
    from memskill_cli.evaluation import load_context, scoring_windows
    from memskill_cli.learning import evolution_hook

    [prepared] = prepare("sample", PrepareSettings(source=str(REPO / "data/sample/sample.yaml")), tmp_path / "prep")
    info = build_cache(prepared.path, SpanSettings(max_tokens=128), EmbeddingSettings(), tmp_path / "cache", encoder)
    ledger = UsageLedger()
    clients = {"executor": RoleClient("executor", ScriptedClient(picky_executor, "exec"), ledger=ledger),
               "answerer": RoleClient("answerer", ScriptedClient(answer_script, "ans"), ledger=ledger),
               "designer": RoleClient("designer", ScriptedClient(store_all_designer, "des"), ledger=ledger)}
    settings = Settings(train={"updates": 2, "episodes_per_update": 1, "queries_per_trace": 3, "evolve_every": 1,
                               "skills_per_span": 2}, eval={"split": "validation", "judge": False})
    components = Components(encoder, clients, ledger)
    trainer = make_trainer(settings, prepared.path, info.path, components)
    context = load_context(settings, prepared.path, info.path, components, memory_root=tmp_path / "mem")
    hook = evolution_hook(settings, context, clients["designer"], tmp_path / "train/evolution")
    train(settings, trainer, tmp_path / "train", ledger, resume=False, evolve_hook=hook)
    state = json.loads((tmp_path / "train/checkpoint/state.json").read_text())
    # The version proposed after update 1 was on trial during update 2: the policy tried its new skill there.
    assert state["history"][0]["skill_bank_after"] == trainer.bank.hash
    assert state["history"][1]["transitions"] > 0 and state["history"][1]["skill_usage"].get("store-all", 0) > 0
    # Judged after the last update, both versions scored by that one policy (its weights, the floor of now),
    # the grown bank's gain over the seed bank is significant, so it is kept.
    evolution = json.loads((tmp_path / "train/evolution/state.json").read_text())
    seed, grown = evolution["versions"]
    assert grown["status"] == "best" and grown["gain"]["low"] > 0
    # its interval resampled the scored session windows (each one memory build), not the questions in them
    windows = scoring_windows(context)
    assert grown["gain"]["groups"] == len(windows) < grown["gain"]["n"] == sum(len(w.queries) for w in windows.values())
    assert seed["scored_with"] == grown["scored_with"] == trainer.selector(settings.eval.skills_per_span).identity
    assert evolution["cycles"][0]["outcome"] == "best"
    assert "store-all" in trainer.bank.names and trainer.fresh == {"store-all"}
    assert "store-all" in [s["name"] for s in state["skill_bank"]["skills"]]


def test_training_on_hotpotqa_fails_at_once_with_what_to_do_instead(tmp_path):
    from memskill_cli.errors import ConfigError
    from stages.train import train as train_stage

    settings = Settings(paths={"data_dir": str(tmp_path / "data"), "artifacts_dir": str(tmp_path / "artifacts")})
    with pytest.raises(ConfigError, match=r"HotpotQA has no training split.*memskill eval hotpotqa-50"):
        train_stage("hotpotqa-50", settings, tmp_path / "train", resume=False)
    assert not (tmp_path / "train").exists() and not (tmp_path / "artifacts").exists()
