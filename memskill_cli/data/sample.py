"""memskill's own sample dataset (`data/sample/sample.yaml`): the quickstart default, runs anywhere."""

from __future__ import annotations

from pathlib import Path

import yaml

from memskill_cli.data.schema import Query, Session, Trace, Turn
from memskill_cli.data.source import Reader, answer_text
from memskill_cli.errors import DataError
from memskill_cli.fileio import reading

DEFAULT_SOURCE = Path("data/sample/sample.yaml")
SPLITS = ("train", "validation", "test")


def load(path: Path) -> tuple[list[Trace], list[Query]]:
    with reading(path, "sample file"):
        text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(f"not valid YAML: {exc}", file=str(path)) from None
    root = Reader(path, "top level", data)
    traces, queries = [], []
    for c, raw in enumerate(root.get("conversations", list)):
        conv = Reader(path, f"conversation #{c}", raw)
        trace_id = conv.get("id", str)
        conv.record = f"conversation {trace_id}"
        speakers = conv.get("speakers", list)
        split = conv.get("split", str)
        if split not in SPLITS:
            conv.fail("split", f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        sessions = []
        for s, raw_session in enumerate(conv.get("sessions", list), start=1):
            session = Reader(path, f"conversation {trace_id} session {s}", raw_session)
            turns = []
            for t, pair in enumerate(session.get("turns", list), start=1):
                if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                    session.fail(f"turns[{t}]", "expected [speaker, text]")
                if pair[0] not in speakers:
                    session.fail(f"turns[{t}]", f"unknown speaker {pair[0]!r} (expected one of {speakers})")
                turns.append(Turn(turn_id=f"S{s}:{t}", speaker=pair[0], text=pair[1]))
            if not turns:
                session.fail("turns", "empty session (a session needs at least one turn)")
            sessions.append(Session(session_id=f"S{s}", date_time=session.get("date", str), turns=turns))
        if not sessions:
            conv.fail("sessions", "empty conversation")
        traces.append(Trace(trace_id=trace_id, split=split, speakers=speakers, sessions=sessions))
        for q, raw_q in enumerate(conv.get("questions", list)):
            item = Reader(path, f"conversation {trace_id} question #{q}", raw_q)
            queries.append(Query(
                query_id=f"{trace_id}/q{q:03d}", trace_id=trace_id, question=item.get("q", str),
                answers=[answer_text(item.get("a", (str, int)))], category=item.get("category", str),
                evidence=[str(e) for e in item.get("evidence", list, [])], split=split,
            ))
    return traces, queries
