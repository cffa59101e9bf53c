"""`prepare` on real benchmark files (from ../shared/data), the sample, fixtures and bad input."""

import collections
import json

import pytest

from memskill_cli.config import PrepareSettings
from memskill_cli.data.locomo import parse_evidence
from memskill_cli.data.prepare import prepare
from memskill_cli.data.schema import load_prepared
from memskill_cli.errors import DataError
from tests.conftest import REPO, shared_file


def test_locomo_trainval_counts_splits_and_quirks(tmp_path):
    source = shared_file("locomo/locomo10_trainval.json")
    [result] = prepare("locomo", PrepareSettings(source=str(source)), tmp_path)
    traces, queries = load_prepared(result.path)
    assert len(traces) == 8
    assert {t.split for t in traces if t.trace_id in ("conv-47", "conv-48")} == {"validation"}
    scored = [q for q in queries if q.category != "adversarial"]
    per_split = collections.Counter(q.split for q in scored)
    assert per_split == {"train": 885, "validation": 341}
    # Per-category counts match the file itself.
    raw = json.loads(source.read_text())
    expected = collections.Counter(qa["category"] for sample in raw for qa in sample["qa"])
    names = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
    assert collections.Counter(q.category for q in queries) == {names[k]: v for k, v in expected.items()}
    assert all(isinstance(a, str) for q in queries for a in q.answers)
    assert any(q.answers == ["2022"] for q in queries)  # integer answers become strings
    # conv-26 has date keys without sessions: only real sessions survive, each with turns.
    conv26 = next(t for t in traces if t.trace_id == "conv-26")
    assert len(conv26.sessions) == 19 and all(s.turns for s in conv26.sessions)
    assert any(t.image_caption for t in conv26.turns())
    assert result.manifest["queries_per_split_and_category"]["validation"]["single-hop"] == 201


def test_evidence_quirks():
    assert parse_evidence(["D8:6; D9:17"]) == ["D8:6", "D9:17"]
    assert parse_evidence(["D"]) == []
    assert parse_evidence(["D:11:26"]) == ["D11:26"]
    assert parse_evidence([]) == []


def test_sample_dataset_is_answerable_and_split(tmp_path):
    [result] = prepare("sample", PrepareSettings(source=str(REPO / "data/sample/sample.yaml")), tmp_path)
    traces, queries = load_prepared(result.path)
    assert 35 <= len(queries) <= 50
    assert {q.category for q in queries} >= {"single-hop", "multi-hop", "temporal", "open-domain"}
    assert {t.split for t in traces} == {"train", "validation", "test"}
    turns = {(t.trace_id, turn.turn_id): turn.text for t in traces for turn in t.turns()}
    for query in queries:  # every evidence id points at a real turn
        assert query.evidence and all((query.trace_id, e) in turns for e in query.evidence)
    # Single-hop answers appear in their evidence text (answerable from the text).
    for query in queries:
        if query.category == "single-hop" and not query.answers[0].lower().startswith(("no", "yes")):
            evidence_text = " ".join(turns[(query.trace_id, e)] for e in query.evidence).lower()
            core = query.answers[0].lower().removeprefix("the ").removeprefix("a ")
            assert core in evidence_text, query.question


LME_FIXTURE = [
    {"question_id": "q1", "question_type": "single-session-user", "question": "What is my dog's name?",
     "answer": "Rex", "question_date": "2023/05/30 (Tue) 10:00",
     "haystack_session_ids": ["s1", "s2"], "haystack_dates": ["2023/05/01 (Mon) 09:00", "2023/05/02 (Tue) 09:00"],
     "haystack_sessions": [[{"role": "user", "content": "My dog Rex loves the park.", "has_answer": True},
                            {"role": "assistant", "content": "Rex sounds fun!"}],
                           [{"role": "user", "content": "Any pasta recipes?"}]],
     "answer_session_ids": ["s1"]},
    {"question_id": "q2_abs", "question_type": "temporal-reasoning", "question": "When did I buy a boat?",
     "answer": 3, "question_date": "2023/05/30 (Tue) 10:00", "haystack_session_ids": ["s9"],
     "haystack_dates": ["2023/05/03 (Wed) 09:00"],
     "haystack_sessions": [[{"role": "user", "content": "I like lakes."}]], "answer_session_ids": []},
]


def test_longmemeval_fixture_in_documented_schema(tmp_path):
    source = tmp_path / "lme.json"
    source.write_text(json.dumps(LME_FIXTURE))
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"train": [1], "val": [0], "test": []}))
    [result] = prepare("longmemeval", PrepareSettings(source=str(source), splits_file=str(splits)),
                       tmp_path / "out")
    traces, queries = load_prepared(result.path)
    assert [t.sessions[0].date_time for t in traces] == ["2023/05/01 (Mon) 09:00", "2023/05/03 (Wed) 09:00"]
    assert queries[0].evidence == ["s1:0"] and queries[0].split == "validation"
    assert queries[1].abstention and queries[1].answers == ["3"] and queries[1].split == "train"


def test_hotpotqa_eval_n_contains_own_supporting_paragraphs(tmp_path):
    source = shared_file("hotpotqa/hotpot_dev_distractor_first100.json")
    results = prepare("hotpotqa", PrepareSettings(source=str(source), num_docs=[50, 100], seed=7), tmp_path)
    raw = json.loads(source.read_text())
    for result in results:
        n = int(result.name.split("-")[1])
        traces, queries = load_prepared(result.path)
        assert len(traces) == 100
        for trace, query, item in zip(traces, queries, raw, strict=False):
            titles = [s.turns[0].text.split("\n", 1)[0] for s in trace.sessions]
            assert len(titles) == n
            assert set(item["context"]["title"]) <= set(titles)
            assert set(item["supporting_facts"]["title"]) <= set(titles)
            assert len(query.evidence) == len(set(item["supporting_facts"]["title"]))
    again = prepare("hotpotqa", PrepareSettings(source=str(source), num_docs=[50], seed=7), tmp_path / "again")
    assert (again[0].path / "traces.jsonl").read_bytes() == (results[0].path / "traces.jsonl").read_bytes()
    # `hotpotqa-N` (what a DVC stage names as its output) writes exactly that dataset.
    [one] = prepare("hotpotqa-50", PrepareSettings(source=str(source), seed=7), tmp_path / "one")
    assert one.name == "hotpotqa-50" and sorted(p.name for p in (tmp_path / "one").iterdir()) == ["hotpotqa-50"]
    assert (one.path / "traces.jsonl").read_bytes() == (results[0].path / "traces.jsonl").read_bytes()


@pytest.mark.parametrize("content, message", [
    ('[{"sample_id": "conv-1", "conversation": ', "not valid JSON"),
    ('{"sample_id": "conv-1"}', "expected a list"),
    ('[{"sample_id": "conv-1", "qa": []}]', "sample conv-1, field conversation: missing field"),
    ('[{"sample_id": 7, "qa": [], "conversation": {}}]', "field sample_id: expected str, got int"),
    ('[{"sample_id": "c", "qa": [], "conversation": {"speaker_a": "A", "speaker_b": "B", '
     '"session_1": [{"speaker": "Z", "dia_id": "D1:1", "text": "hi"}]}}]', "field speaker: unknown speaker 'Z'"),
    ('[{"sample_id": "c", "qa": [], "conversation": {"speaker_a": "A", "speaker_b": "B"}}]', "empty conversation"),
    ('[{"sample_id": "c", "conversation": {"speaker_a": "A", "speaker_b": "B", "session_1": '
     '[{"speaker": "A", "dia_id": "D1:1", "text": "hi"}]}, "qa": [{"question": "q", "category": 1}]}]',
     "qa #0, field answer: missing field"),
])
def test_bad_locomo_input_names_file_record_field_and_writes_nothing(tmp_path, content, message):
    source = tmp_path / "bad.json"
    source.write_text(content)
    with pytest.raises(DataError) as info:
        prepare("locomo", PrepareSettings(source=str(source)), tmp_path / "out")
    assert message in str(info.value)
    assert str(source) in str(info.value)
    assert info.value.exit_code == 2
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_failed_prepare_keeps_previous_output(tmp_path):
    good = REPO / "data/sample/sample.yaml"
    [result] = prepare("sample", PrepareSettings(source=str(good)), tmp_path)
    before = (result.path / "queries.jsonl").read_bytes()
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("[Maya, \"Hi Tom!", "[Mia, \"Hi Tom!"))
    with pytest.raises(DataError, match="unknown speaker 'Mia'"):
        prepare("sample", PrepareSettings(source=str(bad)), tmp_path)
    assert (result.path / "queries.jsonl").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "sample"]


def test_cli_exit_code_2_on_bad_input(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = subprocess.run([sys.executable, "-m", "memskill_cli.cli.app", "prepare", "locomo", "--source",
                             str(bad), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "bad.json" in result.stderr and "not valid JSON" in result.stderr
