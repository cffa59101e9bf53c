"""Memory quality on real LoCoMo validation data: answer budgets counted with the answerer's real tokenizer, the
quality figures, and the embedded executor on a real span."""

from __future__ import annotations

import pytest

from memskill_cli.components import Components
from memskill_cli.config import EmbeddingSettings, LLMSettings, PrepareSettings, Settings, SpanSettings
from memskill_cli.data.cache import SpanCache, build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.errors import ConfigError
from memskill_cli.evaluation import evaluate, load_context
from memskill_cli.executor import Executor, numbered_turns, turn_text
from memskill_cli.llm import RoleClient, UsageLedger, models
from memskill_cli.memory import MemoryBank
from memskill_cli.quality import build_quality, evidence_recall, is_verbatim_copy
from memskill_cli.skills import SkillBank
from tests.conftest import shared_file
from tests.scripted import ScriptedClient
from tests.test_eval import executor_script

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def locomo(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("locomo")
    source = shared_file("locomo/locomo10_trainval.json")
    [prepared] = prepare("locomo", PrepareSettings(source=str(source)), root / "prepared")
    info = build_cache(prepared.path, SpanSettings(max_tokens=512), EmbeddingSettings(), root / "cache", encoder)
    return prepared, info


class TokenizedScript(ScriptedClient):
    """A scripted answerer that counts tokens with the embedded model's own tokenizer."""

    def __init__(self, script, name="answerer"):
        super().__init__(script, name)
        self.tokenizer = models.gguf_tokenizer(models.resolve("qwen2.5-coder-0.5b"))

    def count_tokens(self, text):
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_every_method_fills_the_same_budget_and_never_more(locomo, encoder, tmp_path):
    prepared, info = locomo
    answerer = TokenizedScript(lambda r: "not mentioned")
    ledger = UsageLedger()
    clients = {"executor": RoleClient("executor", ScriptedClient(executor_script, "copier"), ledger=ledger),
               "answerer": RoleClient("answerer", answerer, ledger=ledger)}
    budget = 900
    settings = Settings(eval={"split": "validation", "judge": False, "max_queries": 25,
                              "answer_context_tokens": budget, "memories_per_question": 20})
    ctx = load_context(settings, prepared.path, info.path, Components(encoder, clients, ledger),
                       memory_root=tmp_path / "mem")
    summary = evaluate(ctx, ["raw-rag", "full-context", "static-primitives"], tmp_path / "out")
    contexts = [r.messages[1]["content"].split(":\n", 1)[1].rsplit("\n\nQuestion:", 1)[0] for r in answerer.requests]
    assert len(contexts) == 75
    sizes = [answerer.count_tokens(c) for c in contexts]
    assert max(sizes) <= budget
    assert max(sizes) > budget / 2  # the budget binds (512-token spans), it is not left unused
    for method in ("raw-rag", "full-context", "static-primitives"):
        assert summary["methods"][method]["overall"]["evidence_questions"] == 25
    # The same budget past the answerer's window is refused before any LLM call, naming the numbers.
    calls = len(answerer.requests)
    too_big = Settings(eval={"split": "validation", "answer_context_tokens": 9000, "judge": False})
    ctx = load_context(too_big, prepared.path, info.path, Components(encoder, clients, ledger),
                       memory_root=tmp_path / "mem")
    with pytest.raises(ConfigError, match=r"answer_context_tokens 9000 .* llm.answerer.n_ctx 8192"):
        evaluate(ctx, ["raw-rag"], tmp_path / "out2")
    assert len(answerer.requests) == calls


def test_quality_figures_and_evidence_recall():
    assert is_verbatim_copy("I went to a support group yesterday", ["Caroline: I went to a support group yesterday!"])
    assert not is_verbatim_copy("Caroline attended a support group on 7 May 2023",
                                ["Caroline: I went to a support group yesterday!"])
    recall = evidence_recall([(["D1:1", "D1:2"], ["D1:1"]), (["D2:1"], ["D2:1", "D9:9"]), ([], ["D1:1"])])
    assert recall == {"evidence_questions": 2, "evidence_recall": 0.5, "evidence_recall_any": 1.0}


@pytest.mark.llm
def test_the_embedded_executor_on_a_real_span_writes_complete_cited_facts(locomo, encoder):
    _, info = locomo
    span = SpanCache.load(info.path).for_trace("conv-47")[3][0]
    role = LLMSettings().executor.model_copy(update={"n_ctx": 4096})  # the default executor model and limits
    from memskill_cli.llm import create_backend

    executor = Executor(RoleClient("executor", create_backend(role), default_max_tokens=role.max_tokens))
    bank = MemoryBank(384, encoder.encode)
    record = executor.process(span, [], bank, SkillBank.seed().skills, step=0)
    assert record.parse_error is None and not record.truncated
    written = [op for op in record.applied if op["action"] == "INSERT"]
    assert written and len(bank) == len(written)
    whole_turns = {turn_text(group).lower() for group in numbered_turns(span)}
    speaker = {turn.turn_id: turn.speaker for turn in span.turns}
    assert set(speaker.values()) == {"John", "James"}
    for item in bank.items.values():
        assert item.source_turn_ids and set(item.source_turn_ids) <= set(span.turn_ids)
        assert item.content.lower() not in whole_turns
        # the grammar binds a fact to the one who said its turns: it starts with their name
        assert {speaker[t] for t in item.source_turn_ids} == {item.content.split()[0].split("'")[0]}
    assert build_quality([record], len(bank))["truncation_rate"] == 0.0
