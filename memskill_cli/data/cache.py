"""The span cache: a prepared dataset -> spans and embeddings that training and evaluation reuse.

The cache directory is keyed by a hash of the prepared data, the span settings and the encoder, so a
second run with the same inputs does nothing and any change gives a new key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memskill_cli.config import EmbeddingSettings, SpanSettings
from memskill_cli.data.schema import check_turn_sizes, load_prepared
from memskill_cli.data.spans import SPAN_FORMAT, Span, make_spans
from memskill_cli.data.tokens import TokenCounter
from memskill_cli.embeddings import LONG_TEXT_POOLING, Encoder
from memskill_cli.errors import DataError
from memskill_cli.fileio import (
    atomic_dir,
    read_json,
    read_jsonl,
    read_npy,
    sha256_file,
    stable_hash,
    write_json,
    write_jsonl,
    write_npy,
)


@dataclass
class CacheInfo:
    path: Path
    key: str
    built: bool
    spans: int
    queries: int
    seconds: float


def cache_key(prepared_dir: Path, spans: SpanSettings, embedding: EmbeddingSettings) -> str:
    return stable_hash({
        "traces": sha256_file(prepared_dir / "traces.jsonl"),
        "queries": sha256_file(prepared_dir / "queries.jsonl"),
        "spans": spans.model_dump(), "span_format": SPAN_FORMAT,
        "encoder": embedding.model, "long_text": LONG_TEXT_POOLING,
    })


def build_cache(prepared_dir: Path, spans: SpanSettings, embedding: EmbeddingSettings, cache_root: Path,
                encoder: Encoder | None = None) -> CacheInfo:
    start = time.perf_counter()
    if not (prepared_dir / "traces.jsonl").is_file():
        raise DataError(f"no prepared dataset {prepared_dir.name!r}: run `memskill prepare {prepared_dir.name}` first",
                        file=str(prepared_dir))
    if prepared_dir.name.startswith("hotpotqa") and spans.mode != "fixed-length":
        spans = spans.model_copy(update={"mode": "fixed-length"})  # documents are cut by length, never by turn
    if prepared_dir.name.startswith("alfworld") and spans.mode != "trajectory":
        spans = spans.model_copy(update={"mode": "trajectory"})  # an expert trajectory is never cut
    key = cache_key(prepared_dir, spans, embedding)
    target = cache_root / prepared_dir.name / key
    pointer = cache_root / prepared_dir.name / "current.json"
    if (target / "meta.json").exists():
        meta = read_json(target / "meta.json")
        write_json(pointer, {"key": key})
        return CacheInfo(target, key, False, meta["spans"], meta["queries"], time.perf_counter() - start)
    traces, queries = load_prepared(prepared_dir)
    check_turn_sizes(traces, prepared_dir / "traces.jsonl")
    counter = TokenCounter(spans.tokenizer)
    all_spans = [span for trace in traces for span in make_spans(trace, spans, counter)]
    if not all_spans:
        raise DataError("the prepared dataset has no turns to cut into spans", file=str(prepared_dir / "traces.jsonl"))
    known = {trace.trace_id for trace in traces}
    for number, query in enumerate(queries, start=1):
        if query.trace_id not in known:
            raise DataError(f"question names trace {query.trace_id!r}, which traces.jsonl does not hold",
                            file=str(prepared_dir / "queries.jsonl"), record=f"line {number}", field="trace_id")
    encoder = encoder or Encoder(embedding.model, embedding.batch_size, embedding.device)
    span_vectors = encoder.encode([s.text for s in all_spans], kind="passage")
    query_vectors = encoder.encode([q.question for q in queries], kind="query")
    with atomic_dir(target) as tmp:
        write_jsonl(tmp / "spans.jsonl", (s.model_dump() for s in all_spans))
        write_npy(tmp / "span_embeddings.npy", span_vectors)
        write_jsonl(tmp / "query_ids.jsonl", (q.query_id for q in queries))
        write_npy(tmp / "query_embeddings.npy", query_vectors)
        write_json(tmp / "meta.json", {
            "key": key, "dataset": prepared_dir.name, "spans": len(all_spans), "queries": len(queries),
            "span_settings": spans.model_dump(), "encoder": embedding.model, "dim": int(span_vectors.shape[1]),
        })
    write_json(pointer, {"key": key})
    return CacheInfo(target, key, True, len(all_spans), len(queries), time.perf_counter() - start)


@dataclass
class SpanCache:
    """A built cache, loaded: spans with their embeddings, and query embeddings by id."""

    spans: list[Span]
    span_vectors: np.ndarray
    query_vectors: dict[str, np.ndarray]
    _by_trace: dict[str, list[tuple[Span, np.ndarray]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_trace = {}
        for span, vector in zip(self.spans, self.span_vectors, strict=True):
            self._by_trace.setdefault(span.trace_id, []).append((span, vector))

    @classmethod
    def load(cls, path: Path) -> SpanCache:
        spans = [Span.model_validate(row) for row in read_jsonl(path / "spans.jsonl")]
        query_ids = read_jsonl(path / "query_ids.jsonl")
        query_matrix = read_npy(path / "query_embeddings.npy")
        return cls(spans, read_npy(path / "span_embeddings.npy"), dict(zip(query_ids, query_matrix, strict=False)))

    def for_trace(self, trace_id: str) -> list[tuple[Span, np.ndarray]]:
        return list(self._by_trace.get(trace_id, []))


def current_cache(cache_root: Path, dataset: str) -> Path:
    pointer = cache_root / dataset / "current.json"
    if not pointer.exists():
        raise DataError(f"no cache built for {dataset}; run `memskill build-cache {dataset}` first",
                        file=str(pointer))
    return cache_root / dataset / read_json(pointer)["key"]
