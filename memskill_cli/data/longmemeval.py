"""LongMemEval (`longmemeval_s_cleaned.json`): one trace per question, its haystack sessions keep their dates."""

from __future__ import annotations

from pathlib import Path

from memskill_cli.data.schema import Query, Session, Trace, Turn
from memskill_cli.data.source import Reader, answer_text, load_json


def load_splits(path: Path | None) -> dict[int, str]:
    """MemSkill's split file: {"train": [idx...], "val": [...], "test": [...]} over the 500 items."""
    if path is None:
        return {}
    data = Reader(path, "top level", load_json(path))
    names = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}
    return {int(i): names[key] for key in data.data if key in names for i in data.get(key, list)}


def load(path: Path, splits_file: Path | None = None) -> tuple[list[Trace], list[Query]]:
    data = load_json(path)
    if not isinstance(data, list):
        raise Reader(path, "top level", {}).fail("", f"expected a list of items, got {type(data).__name__}")
    splits = load_splits(splits_file)
    traces, queries = [], []
    for index, raw in enumerate(data):
        item = Reader(path, f"item #{index}", raw)
        qid = item.get("question_id", str)
        item.record = f"item {qid}"
        split = splits.get(index, "test")
        session_ids = item.get("haystack_session_ids", list)
        dates = item.get("haystack_dates", list)
        raw_sessions = item.get("haystack_sessions", list)
        if not (len(session_ids) == len(dates) == len(raw_sessions)):
            item.fail("haystack_sessions", "haystack_session_ids, haystack_dates and haystack_sessions differ in length")
        if not raw_sessions:
            item.fail("haystack_sessions", "empty haystack: no sessions")
        sessions, evidence = [], []
        for s, (session_id, date, raw_turns) in enumerate(zip(session_ids, dates, raw_sessions)):
            if not isinstance(raw_turns, list):
                item.fail(f"haystack_sessions[{s}]", f"expected list, got {type(raw_turns).__name__}")
            turns = []
            for t, raw_turn in enumerate(raw_turns):
                turn = Reader(path, f"item {qid} session {session_id} turn #{t}", raw_turn)
                role = turn.get("role", str)
                if role not in ("user", "assistant"):
                    turn.fail("role", f"unknown speaker {role!r} (expected user or assistant)")
                turn_id = f"{session_id}:{t}"
                if turn.get("has_answer", bool, False):
                    evidence.append(turn_id)
                turns.append(Turn(turn_id=turn_id, speaker=role, text=turn.get("content", str)))
            sessions.append(Session(session_id=str(session_id), date_time=str(date), turns=turns))
        trace_id = f"lme-{qid}"
        traces.append(Trace(trace_id=trace_id, split=split, speakers=["user", "assistant"], sessions=sessions))
        queries.append(Query(
            query_id=qid, trace_id=trace_id, question=item.get("question", str),
            answers=[answer_text(item.get("answer", (str, int, float)))],
            category=item.get("question_type", str), evidence=evidence, split=split,
            question_date=str(item.get("question_date", (str,), "")) or None, abstention=qid.endswith("_abs"),
        ))
    return traces, queries
