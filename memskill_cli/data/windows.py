"""Session windows: a trace cut into runs of consecutive sessions, each with the questions whose evidence turns
all lie inside it. A window's memory takes a few executor calls and is scored on many questions: the unit of a
training episode and of scoring a skill-bank version. Data without evidence ids gives whole traces instead."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from memskill_cli.data.cache import SpanCache
from memskill_cli.data.schema import Query
from memskill_cli.data.spans import Span


@dataclass(frozen=True)
class Window:
    """Spans of one trace and the questions they can answer: what a training episode builds memory from
    and is rewarded on, and what a bank version is scored on."""

    trace_id: str
    spans: list[tuple[Span, np.ndarray]]
    queries: list[Query]


def session_windows(trace_id: str, spans: list[tuple[Span, np.ndarray]], queries: list[Query],
                    window_sessions: int) -> dict[str, Window]:
    """Windows of `window_sessions` consecutive sessions (a span belongs to its first session's window), each
    with the questions whose evidence turns all lie in it; windows no question needs are left out."""
    order: dict[str, int] = {}
    windows: dict[int, list[tuple[Span, np.ndarray]]] = {}
    for span, vector in spans:
        position = order.setdefault(span.session_ids[0] if span.session_ids else "", len(order))
        windows.setdefault(position // window_sessions, []).append((span, vector))
    result = {}
    for index, window in windows.items():
        turns = {t for span, _ in window for t in span.turn_ids}
        answerable = [q for q in queries if q.evidence and set(q.evidence) <= turns]
        if answerable:
            first = index * window_sessions + 1
            result[f"{trace_id}@sessions{first}-{first + window_sessions - 1}"] = Window(trace_id, window, answerable)
    return result


def make_windows(queries: list[Query], cache: SpanCache, window_sessions: int, queries_per_trace: int | None,
                 seed: int) -> dict[str, Window]:
    """Session windows where questions cite evidence (and `window_sessions` > 0), else whole traces with a
    fixed sample of `queries_per_trace` questions (a fixed sample keeps their rewards comparable)."""
    by_trace: dict[str, list[Query]] = {}
    for query in queries:
        by_trace.setdefault(query.trace_id, []).append(query)
    windows: dict[str, Window] = {}
    for trace_id, items in by_trace.items():
        spans = cache.for_trace(trace_id)
        if window_sessions and any(q.evidence for q in items):
            windows.update(session_windows(trace_id, spans, items, window_sessions))
            continue
        if queries_per_trace and len(items) > queries_per_trace:
            items = random.Random(f"{seed}:{trace_id}").sample(items, queries_per_trace)
        windows[trace_id] = Window(trace_id, spans, items)
    return windows


def densest_windows(windows: dict[str, Window], count: int) -> dict[str, Window]:
    """The `count` windows with the most questions per span: the most questions a scoring's executor calls buy
    (ties keep their order)."""
    return dict(sorted(windows.items(), key=lambda item: -len(item[1].queries) / len(item[1].spans))[:count])
