"""`memskill eval`: the harness with a scripted LLM, and end to end with the embedded model."""

import itertools
import json
import re
import subprocess

import pytest

from memskill_cli.components import Components
from memskill_cli.config import EmbeddingSettings, PrepareSettings, Settings, SpanSettings
from memskill_cli.data.cache import build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.evaluation import EvalContext, evaluate, load_context, make_selector, memory_key
from memskill_cli.llm import RoleClient, UsageLedger
from memskill_cli.skills import Skill, SkillBank
from tests.conftest import REPO, cli_in
from tests.scripted import ScriptedClient


def executor_script(request):
    """Insert every turn of the span as a memory citing it (what a perfect copier would do)."""
    span = request.messages[-1]["content"].split("New excerpt:\n", 1)[1].split("\n\nWrite at most", 1)[0]
    turns = [re.match(r"T(\d+) (.*)", line) for line in span.splitlines()]
    return json.dumps({"operations": [{"action": "INSERT", "turns": [int(t.group(1))], "content": t.group(2)[:200]}
                                      for t in turns if t]})


def answer_script(request):
    """Answer with the memory line that shares most words with the question."""
    text = request.messages[1]["content"]
    question = set(re.findall(r"\w+", text.split("Question:")[1].lower()))
    lines = [line[2:] for line in text.split("\n") if line.startswith("- ")]
    if not lines:
        return "not mentioned"
    return max(lines, key=lambda line: len(question & set(re.findall(r"\w+", line.lower()))))


@pytest.fixture
def context(tmp_path, encoder):
    [prepared] = prepare("sample", PrepareSettings(source=str(REPO / "data/sample/sample.yaml")), tmp_path / "prep")
    info = build_cache(prepared.path, SpanSettings(max_tokens=128), EmbeddingSettings(), tmp_path / "cache", encoder)
    ledger = UsageLedger()
    clients = {
        "executor": RoleClient("executor", ScriptedClient(executor_script, "exec"), ledger=ledger),
        "answerer": RoleClient("answerer", ScriptedClient(answer_script, "ans"), ledger=ledger),
        "judge": RoleClient("judge", ScriptedClient(lambda r: '{"explanation": "ok", "score": 0.5}'), ledger=ledger),
    }
    settings = Settings(eval={"methods": ["memskill", "no-memory"], "split": "validation"})
    return load_context(settings, prepared.path, info.path, Components(encoder, clients, ledger),
                        memory_root=tmp_path / "memories")


def test_harness_writes_predictions_metrics_and_reuses_memories(context: EvalContext, tmp_path):
    methods = ["memskill", "no-memory", "raw-rag", "full-context", "static-primitives", "random-skills"]
    summary = evaluate(context, methods, tmp_path / "out")
    executor_calls = context.ledger.role("executor").calls
    assert executor_calls > 0
    rows = [json.loads(line) for line in (tmp_path / "out/runs/memskill/predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and all(r["retrieved_ids"][0].startswith("m") for r in rows)
    fields = {"query_id", "gold", "prediction", "retrieved", "f1", "judge", "judge_explanation", "category"}
    assert fields <= set(rows[0])
    result = summary["methods"]
    assert result["memskill"]["overall"]["f1"] > result["no-memory"]["overall"]["f1"]
    assert result["raw-rag"]["overall"]["f1"] > 0 and result["full-context"]["overall"]["f1"] > 0
    assert result["no-memory"]["overall"]["answer_coverage"] == 0.0    # no context holds no answer word
    assert result["memskill"]["overall"]["answer_coverage"] > 0
    assert result["memskill"]["overall"]["judge"] == 0.5
    assert result["memskill"]["cost"]["executor_calls"] == result["static-primitives"]["cost"]["executor_calls"]
    assert set(result["memskill"]["per_category"]) <= {"single-hop", "multi-hop", "temporal", "open-domain"}
    assert json.loads((tmp_path / "out/metrics.json").read_text())["llm_usage"]["executor"]["calls"] == executor_calls
    # Second run: memories come from the cache, no executor call at all.
    evaluate(context, ["memskill"], tmp_path / "out2")
    assert context.ledger.role("executor").calls == executor_calls


def test_memory_cache_key_changes_with_the_skill_bank(context: EvalContext):
    bank, selector = make_selector("memskill", context)
    key = memory_key(context, bank, selector)
    grown = SkillBank(version=2, skills=[*bank.skills, Skill(name="dates", description="d", instructions="i",
                                                             actions=["INSERT"])])
    context.skill_bank = grown
    bank2, selector2 = make_selector("memskill", context)
    assert memory_key(context, bank2, selector2) != key
    assert memory_key(context, *make_selector("random-skills", context)) != memory_key(context, bank2, selector2)


def test_memory_cache_key_covers_the_executor_limits_and_prompt(context: EvalContext, monkeypatch):
    from memskill_cli import executor

    bank, selector = make_selector("memskill", context)
    key = memory_key(context, bank, selector)
    client = context.clients["executor"]
    monkeypatch.setattr(client, "default_max_tokens", 999)
    assert memory_key(context, bank, selector) != key
    monkeypatch.setattr(client, "default_max_tokens", None)
    assert memory_key(context, bank, selector) == key
    monkeypatch.setattr(client, "default_temperature", 0.7)
    assert memory_key(context, bank, selector) != key
    monkeypatch.setattr(client, "default_temperature", 0.0)
    monkeypatch.setattr(executor, "SYSTEM", executor.SYSTEM + " Be brief.")
    assert memory_key(context, bank, selector) != key


def test_metrics_name_the_selector_and_count_unreadable_judgements(context: EvalContext, tmp_path):
    answers = itertools.cycle(['{"explanation": "ok", "score": 1}', "not json at all"])
    context.clients["judge"] = RoleClient("judge", ScriptedClient(lambda r: next(answers)), ledger=context.ledger)
    summary = evaluate(context, ["memskill", "static-primitives", "no-memory"], tmp_path / "out")
    methods = summary["methods"]
    assert methods["memskill"]["selector"] == "similarity-top3"   # no controller given: it says so
    assert methods["static-primitives"]["selector"] == "all"
    assert methods["static-primitives"]["skill_bank"] == SkillBank.seed().hash
    assert "selector" not in methods["no-memory"]
    overall = methods["no-memory"]["overall"]
    assert overall["judged"] == 10 and overall["judge_unreadable"] == 5 and overall["judge"] == 0.5


def test_a_selector_that_would_pick_the_whole_bank_is_refused(context: EvalContext):
    from dataclasses import replace

    from memskill_cli.errors import ConfigError
    from memskill_cli.evaluation import make_selector

    whole = replace(context, settings=context.settings.model_copy(update={
        "eval": context.settings.eval.model_copy(update={"skills_per_span": 4})}))
    for method in ("memskill", "random-skills"):
        with pytest.raises(ConfigError, match=r"eval.skills_per_span is 4 but the skill bank holds 4 skills"):
            make_selector(method, whole)
    every = replace(whole, settings=whole.settings.model_copy(update={
        "memory": whole.settings.memory.model_copy(update={"selector": "all"})}))
    assert make_selector("memskill", every)[1].identity == "all"  # said explicitly: every span gets every skill
    assert make_selector("memskill", context)[1].identity == "similarity-top3"


@pytest.mark.llm
def test_eval_end_to_end_with_the_embedded_model(tmp_path):
    cli = cli_in(tmp_path)
    for args in (["prepare", "sample"], ["build-cache"],
                 ["eval", "-m", "memskill", "-m", "no-memory", "-m", "raw-rag", "--max-queries", "6"]):
        result = subprocess.run(cli + args, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    out = tmp_path / "artifacts/eval/sample"
    summary = json.loads((out / "metrics.json").read_text())
    for method in ("memskill", "no-memory", "raw-rag"):
        rows = (out / "runs" / method / "predictions.jsonl").read_text().splitlines()
        assert len(rows) == 6
        assert summary["methods"][method]["overall"]["judged"] == 6
    memskill = summary["methods"]["memskill"]
    assert memskill["cost"]["executor_calls"] >= 2 and memskill["cost"]["memories"] > 0
    assert memskill["overall"]["f1"] > summary["methods"]["no-memory"]["overall"]["f1"]
    assert summary["llm_usage"]["executor"]["prompt_tokens"] > 0
    # The eval stage run is in MLflow with per-method metrics, LLM usage and the predictions as artifacts.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("memskill-sample")
    [run] = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "eval"]
    assert run.data.metrics["memskill.f1"] == memskill["overall"]["f1"]
    assert run.data.metrics["llm.executor.calls"] >= 2
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"metrics.json", "runs"}


def test_an_llm_failure_stops_the_run_and_a_rerun_reuses_what_was_computed(context: EvalContext, tmp_path):
    from memskill_cli.errors import LLMError
    from memskill_cli.llm.cache import ResponseCache

    cache = ResponseCache(tmp_path / "llm.sqlite")
    answered, broken = [], [True]

    def flaky(request):
        if broken[0] and len(answered) == 4:
            raise LLMError("answerer endpoint failed after 6 retries")
        answered.append(request)
        return answer_script(request)

    executor = ScriptedClient(executor_script, "exec")
    context.clients["executor"] = RoleClient("executor", executor, cache=cache, ledger=context.ledger)
    context.clients["answerer"] = RoleClient("answerer", ScriptedClient(flaky, "ans"), cache=cache,
                                             ledger=context.ledger)
    context.settings = context.settings.model_copy(update={"eval": context.settings.eval.model_copy(
        update={"judge": False})})
    with pytest.raises(LLMError, match="failed after 6 retries"):
        evaluate(context, ["memskill"], tmp_path / "out")
    assert not (tmp_path / "out/metrics.json").exists()  # nothing half-written
    built = len(executor.requests)
    answered.clear()
    broken[0] = False  # the endpoint works again
    summary = evaluate(context, ["memskill"], tmp_path / "out")
    assert summary["methods"]["memskill"]["overall"]["n"] == 10
    assert len(executor.requests) == built      # every memory reused
    assert len(answered) == 10 - 4              # only the questions not yet answered were asked


def test_memories_are_keys_to_the_spans_they_came_from(context: EvalContext):
    """A memory method answers from its memories, then the spans they were written from: a span that the best
    memory cites ranks first even where its own text is the least like the question."""
    from dataclasses import replace

    from memskill_cli.answering import context_line
    from memskill_cli.evaluation import memory_context, source_spans
    from memskill_cli.memory import MemoryBank

    query = context.queries[0]
    spans = context.cache.for_trace(query.trace_id)
    by_span = sorted(spans, key=lambda s: -float(s[1] @ context.cache.query_vectors[query.query_id]))
    least_like = by_span[-1][0]
    memory = MemoryBank(context.cache.span_vectors.shape[1], context.encoder.encode)
    memory.insert([query.question], least_like.span_id, step=0, sources=[least_like.turn_ids[:1]])
    memory.insert(["An unrelated note about the weather."], least_like.span_id, step=0)
    ranked = source_spans(context, memory, query, spans)
    assert ranked[0].id == least_like.span_id
    assert sorted(p.id for p in ranked) == sorted(s.span_id for s, _ in spans)   # every span, once

    count = context.clients["answerer"].count_tokens
    tokens = lambda passages: sum(count(context_line(p.text)) for p in passages)  # noqa: E731
    budget = tokens([p for p in ranked[:2]]) + 40
    settings = context.settings.model_copy(update={"eval": context.settings.eval.model_copy(
        update={"answer_context_tokens": budget, "source_share": 0.7})})
    shown = memory_context(replace(context, settings=settings), memory, query, spans)
    facts = [p for p in shown if p.id.startswith("m")]
    assert shown[:len(facts)] == facts and facts[0].text == query.question     # memories first, the best first
    assert tokens(facts) <= round(0.3 * budget) and tokens(shown) <= budget
    assert shown[len(facts)].id == least_like.span_id                           # then the spans they came from
    memories_only = context.settings.eval.model_copy(update={"answer_context_tokens": budget, "source_share": 0})
    alone = memory_context(replace(context, settings=context.settings.model_copy(update={"eval": memories_only})),
                           memory, query, spans)
    assert [p.id for p in alone] == [p.id for p, _ in memory.search(context.cache.query_vectors[query.query_id], 2,
                                                                     0.2)]
