"""The LoCoMo spans several benchmarks read: ../shared/data's conversations cut at 512 tokens and embedded."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from memskill_cli.config import EmbeddingSettings, PrepareSettings, SpanSettings
from memskill_cli.data.cache import SpanCache, build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.embeddings import Encoder
from memskill_cli.evaluation import EvalContext

SOURCE = Path(__file__).resolve().parents[2] / "shared/data/locomo/locomo10_trainval.json"


def locomo_spans(tmp: Path, encoder: Encoder, max_tokens: int = 512) -> SpanCache:
    """Every LoCoMo conversation as spans with their vectors (exits with the reason when the data is absent)."""
    if not SOURCE.exists():
        sys.exit(f"skipped: {SOURCE} is absent")
    [prepared] = prepare("locomo", PrepareSettings(source=str(SOURCE)), tmp / "prepared")
    info = build_cache(prepared.path, SpanSettings(max_tokens=max_tokens), EmbeddingSettings(), tmp / "cache", encoder)
    return SpanCache.load(info.path)


def first_sessions(ctx: EvalContext, conversations: list[str], sessions: int | None,
                   max_spans: int | None = None) -> EvalContext:
    """A quick look: the first sessions (or spans) of each conversation, and only the questions whose evidence lies
    in them; the traces keep those sessions only (a peer ingests sessions, not our spans); the cache key says so,
    so memories built for the part never pass for the whole."""
    if not (sessions or max_spans):
        return ctx
    first = {t.trace_id: {s.session_id for s in t.sessions[: sessions or None]} for t in ctx.traces}
    kept = {s.span_id for t in conversations for s, _ in ctx.cache.for_trace(t)[:max_spans]
            if set(s.session_ids) <= first[t]}
    spans = [s for s in ctx.cache.spans if s.span_id in kept]
    turns = {t for s in spans for t in s.turn_ids}
    cache = replace(ctx.cache, spans=spans, span_vectors=np.stack(
        [v for s, v in zip(ctx.cache.spans, ctx.cache.span_vectors, strict=True) if s.span_id in kept]))
    queries = [q for q in ctx.queries if set(q.evidence) <= turns]
    traces = [t.model_copy(update={"sessions": t.sessions[:sessions]}) if sessions else t for t in ctx.traces]
    return replace(ctx, traces=traces, cache=cache, queries=queries,
                   cache_key=f"{ctx.cache_key}-first{sessions}-{max_spans}")
