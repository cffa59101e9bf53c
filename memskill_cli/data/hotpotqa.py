"""HotpotQA long-context transfer (MemSkill/MemAgent `eval_N`): N documents per question.

Build `eval_N` from the dev distractor file: each question's own 10 paragraphs plus distractor paragraphs
drawn from the pool of every paragraph in the file, shuffled with a fixed seed. Each document becomes one
session of the trace.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from memskill_cli.data.schema import Query, Session, Trace, Turn
from memskill_cli.data.source import Reader, answer_text, load_json

_DOCUMENT = re.compile(r"Document (\d+):\n")


def _paragraphs(item: Reader) -> list[tuple[str, str]]:
    context = item.get("context", (dict, list))
    if isinstance(context, dict):  # Hugging Face layout: {title: [...], sentences: [[...]]}
        ctx = Reader(item.path, item.record + " context", context)
        titles, sentences = ctx.get("title", list), ctx.get("sentences", list)
        if len(titles) != len(sentences):
            ctx.fail("sentences", "title and sentences differ in length")
        pairs = zip(titles, sentences)
    else:  # original layout: [[title, [sentences]], ...]
        pairs = ((p[0], p[1]) for p in context)
    return [(str(title), "".join(sents)) for title, sents in pairs]


def build_eval_records(path: Path, num_docs: int, seed: int) -> list[dict[str, Any]]:
    """Records `{context, input, answers, num_docs, index, supporting_titles, type}` in the eval_N layout."""
    data = load_json(path)
    if not isinstance(data, list):
        raise Reader(path, "top level", {}).fail("", "expected a list of questions")
    items = [Reader(path, f"question #{i}", raw) for i, raw in enumerate(data)]
    own = [_paragraphs(item) for item in items]
    pool = sorted({p for paragraphs in own for p in paragraphs})
    rng = random.Random(seed)
    records = []
    for index, (item, paragraphs) in enumerate(zip(items, own)):
        if num_docs < len(paragraphs):
            item.fail("context", f"num_docs {num_docs} is below the question's own {len(paragraphs)} paragraphs")
        titles = {title for title, _ in paragraphs}
        candidates = [p for p in pool if p[0] not in titles]
        docs = paragraphs + rng.sample(candidates, min(num_docs - len(paragraphs), len(candidates)))
        rng.shuffle(docs)
        supporting = item.get("supporting_facts", (dict, list), {})
        support_titles = supporting.get("title", []) if isinstance(supporting, dict) else [s[0] for s in supporting]
        records.append({
            "context": "\n\n".join(f"Document {i + 1}:\n{title}\n{text}" for i, (title, text) in enumerate(docs)),
            "input": item.get("question", str),
            "answers": [answer_text(item.get("answer", (str, int)))],
            "num_docs": len(docs),
            "index": index,
            "type": item.get("type", str, "unknown"),
            "supporting_titles": sorted(set(support_titles)),
        })
    return records


def records_to_traces(records: list[dict[str, Any]], path: Path, split: str = "test"
                      ) -> tuple[list[Trace], list[Query]]:
    """eval_N records (built or MemSkill's own files) -> one trace per question, one session per document."""
    traces, queries = [], []
    for i, raw in enumerate(records):
        rec = Reader(path, f"record #{i}", raw)
        context = rec.get("context", str)
        pieces = _DOCUMENT.split(context)[1:]
        if not pieces:
            rec.fail("context", "no 'Document i:' sections")
        trace_id = f"hotpot-{rec.get('index', int, i)}"
        sessions, evidence = [], []
        support = set(rec.get("supporting_titles", list, []))
        for number, body in zip(pieces[0::2], pieces[1::2]):
            title, _, text = body.strip().partition("\n")
            turn_id = f"doc{int(number)}"
            if title in support:
                evidence.append(turn_id)
            sessions.append(Session(session_id=turn_id, date_time=None,
                                    turns=[Turn(turn_id=turn_id, speaker="document", text=f"{title}\n{text}")]))
        traces.append(Trace(trace_id=trace_id, split=split, speakers=["document"], sessions=sessions))
        answers = rec.get("answers", (list, str))
        queries.append(Query(
            query_id=trace_id, trace_id=trace_id, question=rec.get("input", str),
            answers=[answer_text(a) for a in (answers if isinstance(answers, list) else [answers])],
            category=rec.get("type", str, "unknown"), evidence=evidence, split=split,
        ))
    return traces, queries
