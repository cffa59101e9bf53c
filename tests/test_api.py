"""The library API: the README's example, incremental equals batch, errors that change nothing, save/load,
export and MLflow, and the shell commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from memskill_cli import MemSkill
from memskill_cli.answering import context_line, question_request
from memskill_cli.checkpoint import save_checkpoint
from memskill_cli.config import PrepareSettings, Settings
from memskill_cli.controller import ControllerConfig, SkillController
from memskill_cli.data.prepare import prepare
from memskill_cli.data.schema import load_prepared
from memskill_cli.errors import DataError, LLMError, NotFoundError
from memskill_cli.skills import Skill, SkillBank
from tests.conftest import REPO, cli_in
from tests.scripted import ScriptedClient


def fact_executor(request):
    """One memory per turn, and an UPDATE restating the first memory shown when there is one: the output depends on
    what memory the span sees, so the order and content of earlier adds matter. (The UPDATE cites turn 1: where
    another person says it, the executor stores it beside that memory instead.)"""
    prompt = request.messages[-1]["content"]
    span = prompt.split("New excerpt:\n", 1)[1]
    operations = [{"action": "INSERT", "turns": [int(m.group(1))], "fact": f"{m.group(2)} said {m.group(3)}"[:120]}
                  for m in (re.match(r"T(\d+) ([^:]+): (.*)", line) for line in span.splitlines()) if m]
    shown = re.search(r"^M1 (.*)$", prompt, re.MULTILINE)
    if shown and operations:
        operations.append({"action": "UPDATE", "ref": 1, "turns": [1],
                           "fact": f"{shown.group(1)} again"[:120]})
    return json.dumps({"operations": operations})


def best_line_answerer(request):
    text = request.messages[1]["content"]
    question = set(re.findall(r"\w+", text.split("Question:")[1].lower()))
    lines = [line[2:] for line in text.split("\n") if line.startswith("- ")]
    return max(lines, key=lambda line: len(question & set(re.findall(r"\w+", line.lower())))) if lines else "none"


def scripted(executor=fact_executor):
    return {"executor": ScriptedClient(executor, "exec"), "answerer": ScriptedClient(best_line_answerer, "ans")}


def sample_conversation(tmp_path) -> list[dict]:
    """The first conversation of our own sample dataset as dated chat messages."""
    [prepared] = prepare("sample", PrepareSettings(source=str(REPO / "data/sample/sample.yaml")), tmp_path / "prep")
    trace = load_prepared(prepared.path)[0][0]
    return [{"role": "user", "name": turn.speaker, "content": turn.text, "date": session.date_time}
            for session in trace.sessions for turn in session.turns]


def test_readme_example_runs_as_written(tmp_path, monkeypatch, encoder):
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Use it as a library", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("memskill_cli.api.build_role_clients", lambda settings, ledger, roles: {
        role: client for role, client in scripted().items() if role in roles})
    monkeypatch.setattr("memskill_cli.api.build_encoder", lambda settings: encoder)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["result"].applied and namespace["hits"]
    assert "Lisbon" in namespace["hits"][0].content   # the answer-bearing memory ranks first
    assert namespace["hits"][0].source_turns[0].startswith("Ana: I moved to Lisbon")
    again = MemSkill.load(tmp_path / "ana-memory", encoder=encoder)
    assert [h.content for h in again.search("Where does Ana live?", user_id="ana", limit=5)] == \
        [h.content for h in namespace["hits"]]


def snapshot(memory: MemSkill, user: str) -> list[tuple]:
    return [(item.id, item.content, item.source_span_ids, item.source_turn_ids, item.session_date,
             [(e.action, e.old, e.new, e.span_id, e.turn_ids) for e in item.history])
            for item in memory.get_all(user_id=user)]


def test_incremental_adds_equal_one_batch_add(tmp_path, encoder):
    messages = sample_conversation(tmp_path)
    batch = MemSkill.from_config({"spans.max_tokens": 96}, encoder=encoder, clients=scripted())
    whole = batch.add(messages, user_id="maya")
    incremental = MemSkill.from_config({"spans.max_tokens": 96}, encoder=encoder, clients=scripted())
    dates = list(dict.fromkeys(m["date"] for m in messages))
    parts = [incremental.add([{k: v for k, v in m.items() if k != "date"} for m in messages if m["date"] == date],
                             user_id="maya", session_date=date) for date in dates]
    assert len(dates) > 1 and len(whole.spans) > len(dates)            # several spans per session
    assert [s.span_id for p in parts for s in p.spans] == [s.span_id for s in whole.spans]  # ids continue
    assert [s.skills for p in parts for s in p.spans] == [s.skills for s in whole.spans]
    assert snapshot(incremental, "maya") == snapshot(batch, "maya")
    assert any(op["action"] == "UPDATE" or op.get("instead_of_update") for op in whole.applied)  # memory was seen
    assert whole.llm_calls == len(whole.spans) and whole.prompt_tokens > 0 and whole.seconds > 0


def test_bad_input_is_a_typed_error_and_changes_nothing(tmp_path, encoder):
    memory = MemSkill.from_config(encoder=encoder, clients=scripted())
    memory.add(["Ana: I live in Lisbon."], user_id="ana")
    before = snapshot(memory, "ana")
    with pytest.raises(DataError, match="empty"):
        memory.add([], user_id="ana")
    with pytest.raises(DataError, match=r"message 2.*content"):
        memory.add([{"role": "user", "content": "hi"}, {"role": "user"}], user_id="ana")
    with pytest.raises(DataError, match="user_id"):
        memory.add(["hello"], user_id="")
    with pytest.raises(NotFoundError, match=r"'bob'.*ana"):
        memory.search("where", user_id="bob")
    with pytest.raises(NotFoundError, match="m99"):
        memory.history("m99", user_id="ana")

    calls = {"n": 0}

    def fails_on_second_span(request):
        calls["n"] += 1
        if calls["n"] == 2:
            raise LLMError("endpoint down after retries")
        return fact_executor(request)

    failing = MemSkill.from_config({"spans.max_tokens": 64}, encoder=encoder, clients=scripted(fails_on_second_span))
    failing.add(["Ana: I live in Lisbon."], user_id="ana")
    kept = snapshot(failing, "ana")
    long_chat = [f"Ana: fact number {n} is that I own {n} plants and {n} books at home." for n in range(12)]
    with pytest.raises(LLMError):
        failing.add(long_chat, user_id="ana")
    assert snapshot(failing, "ana") == kept == before                # nothing half-applied
    after = failing.add(["Ana: I adopted a cat."], user_id="ana")
    assert after.spans[0].span_id == "ana/00001"                     # numbering continues from what was kept


def test_history_delete_reset_and_saved_memory_round_trip(tmp_path, encoder):
    memory = MemSkill.from_config(encoder=encoder, clients=scripted())
    memory.add_many({"ana": ["Ana: I live in Lisbon.", "Ana: I work at a bakery."],
                     "bob": ["Bob: I play the cello."]}, session_date="1 May 2023")
    memory.add(["Ana: I adopted a cat called Pepper."], user_id="ana", session_date="9 May 2023")
    [first] = memory.search("Where does Ana live?", user_id="ana", limit=1)
    assert "Lisbon" in first.content and first.session_date == "1 May 2023"
    updated = [i for i in memory.get_all(user_id="ana") if len(i.history) > 1]
    assert updated and updated[0].history[-1].action == "UPDATE"
    versions = memory.history(updated[0].id, user_id="ana")
    assert [v.action for v in versions] == ["INSERT", "UPDATE"] and all(v.skills for v in versions)
    memory.delete(first.id, user_id="ana")
    assert first.id not in [h.id for h in memory.search("Lisbon", user_id="ana")]
    assert memory.history(first.id, user_id="ana")[-1].action == "DELETE"   # deletions stay auditable

    saved = memory.save(tmp_path / "store")
    assert not [p for p in saved.rglob("*") if p.is_file() and p.suffix not in (".json", ".jsonl", ".npy", ".yaml")]
    loaded = MemSkill.load(saved, encoder=encoder, clients=scripted())
    assert sorted(loaded.users) == ["ana", "bob"]
    for user in ("ana", "bob"):
        assert snapshot(loaded, user) == snapshot(memory, user)
    assert loaded.history(first.id, user_id="ana")[-1].action == "DELETE"
    assert loaded.add(["Ana: I run on Sundays."], user_id="ana").spans[0].turn_ids == ["t4"]
    loaded.reset("bob")
    with pytest.raises(NotFoundError):
        loaded.search("cello", user_id="bob")


def test_answer_shows_memories_then_the_spans_they_were_written_from(tmp_path, encoder):
    """As the evaluation answers: memories in 30% of the budget, then the user's spans ranked by those memories,
    never over the budget; the spans survive save/load; `eval.source_share: 0` answers from memories alone."""
    messages = sample_conversation(tmp_path)
    params = {"spans.max_tokens": 96, "eval.answer_context_tokens": 400}
    clients = scripted()
    memory = MemSkill.from_config(params, encoder=encoder, clients=clients)
    added = memory.add(messages, user_id="maya")
    question = "Where does Maya live now?"
    answer = memory.answer(question, user_id="maya")
    count = clients["answerer"].count_tokens
    shown = [h.content for h in answer.memories] + [s.content for s in answer.sources]
    assert answer.memories and answer.sources
    assert clients["answerer"].requests[-1].messages == question_request(question, shown).messages  # memories first
    assert sum(count(context_line(text)) for text in shown) <= 400
    assert sum(count(context_line(h.content)) for h in answer.memories) <= 400 - round(0.7 * 400)
    by_span = {s.span_id: s for s in added.spans}
    assert all(s.turn_ids == by_span[s.id].turn_ids for s in answer.sources)   # real spans of this user, cited
    top = memory.search(question, user_id="maya", limit=1)[0]
    top_span = next(s.span_id for s in added.spans if top.turn_ids[0] in s.turn_ids)
    assert top_span in [s.id for s in answer.sources[:2]]    # the best memory's span ranks near the top

    saved = memory.save(tmp_path / "store")
    assert MemSkill.load(saved, encoder=encoder, clients=scripted()).answer(question, user_id="maya") \
        .sources == answer.sources
    for name in ("spans.jsonl", "span_vectors.npy"):   # as saved before spans were kept: memories alone
        (saved / "users" / "u1" / name).unlink()
    assert not MemSkill.load(saved, encoder=encoder, clients=scripted()).answer(question, user_id="maya").sources
    alone = MemSkill.from_config({**params, "eval.source_share": 0}, encoder=encoder, clients=scripted())
    alone.add(messages, user_id="maya")
    only = alone.answer(question, user_id="maya")
    assert not only.sources and len(only.memories) > len(answer.memories)


def train_run(root: Path, bank: SkillBank) -> Path:
    """A training run folder as `memskill train` leaves it: a controller checkpoint and the bank it ended with."""
    torch.manual_seed(0)
    controller = SkillController(ControllerConfig(hidden=32, proj=16))
    optimizer = torch.optim.Adam(controller.parameters())
    save_checkpoint(root / "checkpoint", controller, optimizer,
                    {"controller": asdict(controller.config), "skill_bank": bank.model_dump(mode="json")})
    bank.save(root / "skill_bank.yaml")
    return root


def five_skills() -> SkillBank:
    seed = SkillBank.seed()
    extra = Skill(name="dates", description="Record when events happened.", instructions="Keep dates.",
                  actions=["INSERT"])
    return seed.model_copy(update={"skills": [*seed.skills, extra]})


def test_export_from_run_and_mlflow(tmp_path, monkeypatch, encoder):
    from stages.export import export

    monkeypatch.chdir(tmp_path)
    bank = five_skills()
    train_run(tmp_path / "artifacts/train/demo", bank)
    settings = Settings(paths={"artifacts_dir": str(tmp_path / "artifacts")})
    manifest, run_id = export("demo", settings, tmp_path / "exported")
    assert manifest["skill_bank"] == bank.hash and manifest["controller"] and run_id
    assert set(manifest["files"]) == {"skill_bank.yaml", "settings.json", "controller/controller.safetensors",
                                      "controller/state.json"}

    memory = MemSkill.from_run(tmp_path / "exported", encoder=encoder, clients=scripted())
    assert memory.selector.identity.startswith(f"controller-{manifest['controller']}-top3")
    assert memory.skill_bank.hash == bank.hash
    result = memory.add(["Ana: I moved to Lisbon.", "Bob: I sold my car."], user_id="ana")
    assert len(result.spans[0].skills) == 3 and set(result.spans[0].skills) <= {s.name for s in bank.skills}

    by_id = MemSkill.from_run(run_id, encoder=encoder, clients=scripted())  # the same folder, from MLflow
    assert by_id.skill_bank.hash == bank.hash and by_id.selector.identity == memory.selector.identity

    tampered = tmp_path / "exported/skill_bank.yaml"
    tampered.write_text(tampered.read_text().replace("Record when", "Remember when"))
    with pytest.raises(DataError, match="changed since it was exported"):
        MemSkill.from_run(tmp_path / "exported", encoder=encoder)
    with pytest.raises(NotFoundError, match="neither a folder nor an MLflow run"):
        MemSkill.from_run("0123456789abcdef", encoder=encoder)


def test_pyfunc_model_searches_a_saved_memory(tmp_path, monkeypatch, encoder):
    import mlflow.pyfunc
    import pandas as pd

    from memskill_cli.mlflow_model import log_export

    monkeypatch.chdir(tmp_path)
    memory = MemSkill.from_config(encoder=encoder, clients=scripted())
    memory.add(["Ana: I moved to Lisbon.", "Ana: I bake bread on Sundays."], user_id="ana")
    run_id = log_export(memory.save(tmp_path / "store"), "sqlite:///mlflow.db")
    mlflow.set_tracking_uri("sqlite:///mlflow.db")
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/memskill")
    [hits] = model.predict(pd.DataFrame([{"user_id": "ana", "query": "Where does Ana live?", "limit": 1}]))
    assert len(hits) == 1 and "Lisbon" in hits[0]["content"] and hits[0]["turn_ids"] == ["t1"]


def test_memory_commands_in_the_shell(tmp_path):
    from tests.fake_openai import FakeOpenAIServer, completion
    from tests.test_faults import endpoint_env

    command = cli_in(tmp_path)

    def run_cli_env(root, env, *args, check=True):
        done = subprocess.run([*command, *args], cwd=root, env={**os.environ, **env}, capture_output=True, text=True)
        assert done.returncode == 0 or not check, done.stderr
        return done

    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"role": "user", "name": "Ana", "content": "I moved to Lisbon last month."}]))

    def behaviour(body, auth):
        prompt = body["messages"][-1]["content"]
        if "New excerpt" in prompt:
            return completion(json.dumps({"operations": [
                {"action": "INSERT", "turns": [1], "fact": "Ana moved to Lisbon last month"}]}))
        return completion("Lisbon")

    with FakeOpenAIServer(behaviour) as server:
        env = endpoint_env(server.url)
        added = run_cli_env(tmp_path, env, "memory", "add", "--user", "ana", str(chat), "--date", "8 May 2023")
        found = run_cli_env(tmp_path, env, "memory", "search", "--user", "ana", "where does Ana live")
        answered = run_cli_env(tmp_path, env, "memory", "answer", "--user", "ana", "where does Ana live")
        unknown = run_cli_env(tmp_path, env, "memory", "search", "--user", "bob", "where", check=False)
    assert json.loads(added.stdout)["applied"][0]["content"] == "Ana moved to Lisbon last month"
    hit = json.loads(found.stdout.splitlines()[0])
    assert hit["content"] == "Ana moved to Lisbon last month" and hit["session_date"] == "8 May 2023"
    assert json.loads(answered.stdout)["text"] == "Lisbon"
    assert unknown.returncode == 2 and "no memory for user 'bob'" in unknown.stderr
    assert np.isfinite(hit["score"])


@pytest.mark.llm
@pytest.mark.shared
def test_real_model_memory_holds_an_answer_for_a_locomo_question(tmp_path, encoder):
    """Two sessions of a LoCoMo validation conversation through `add` with the embedded model: for at least one
    of the questions whose evidence lies in them, a searched memory cites an evidence turn and holds the answer."""
    from tests.conftest import shared_file

    [prepared] = prepare("locomo", PrepareSettings(source=str(shared_file("locomo/locomo10_trainval.json"))),
                         tmp_path / "prep")
    traces, queries = load_prepared(prepared.path)
    trace = next(t for t in traces if t.trace_id == "conv-48")
    memory = MemSkill.from_config({"llm.cache_path": str(tmp_path / "llm.sqlite")}, encoder=encoder)
    locomo_turn = {}
    for session in trace.sessions[:2]:
        result = memory.add([{"role": "user", "name": t.speaker, "content": t.text} for t in session.turns],
                            user_id="deborah-jolene", session_date=session.date_time)
        assert not any(span.truncated for span in result.spans) and result.applied
        locomo_turn.update({f"t{len(locomo_turn) + i}": t.turn_id for i, t in enumerate(session.turns, start=1)})
    in_window = [q for q in queries if q.trace_id == "conv-48" and q.evidence
                 and set(q.evidence) <= set(locomo_turn.values()) and q.category != "adversarial"]
    found = []
    for query in in_window:
        words = {w for a in query.answers for w in re.findall(r"[a-z]{4,}", a.lower())}
        for hit in memory.search(query.question, user_id="deborah-jolene", limit=20):
            cited = {locomo_turn[t] for t in hit.turn_ids}
            if cited & set(query.evidence) and words & set(re.findall(r"[a-z]{4,}", hit.content.lower())):
                found.append((query.question, hit.content))
                break
    print(f"{len(found)} of {len(in_window)} questions have an answer-bearing memory: {found}")
    assert len(in_window) >= 10 and found
