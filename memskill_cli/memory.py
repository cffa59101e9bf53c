"""A trace's memory bank: items with stable ids, an edit history, and a FAISS index kept in step."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
from pydantic import BaseModel, Field

from memskill_cli.fileio import read_json, read_jsonl, read_npy, write_json, write_jsonl, write_npy

EncodeFn = Callable[[list[str]], np.ndarray]


class MemoryEvent(BaseModel):
    step: int
    action: str
    old: str | None = None
    new: str | None = None
    span_id: str | None = None
    turn_ids: list[str] = Field(default_factory=list)


class MemoryItem(BaseModel):
    """A fact with its provenance: the spans and turns it was written from, and the session date it belongs to."""

    id: str
    content: str
    source_span_ids: list[str] = Field(default_factory=list)
    source_turn_ids: list[str] = Field(default_factory=list)
    session_date: str | None = None
    created_step: int
    updated_step: int
    history: list[MemoryEvent] = Field(default_factory=list)


def _normalise(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


class MemoryBank:
    """Ids are `m<n>` and never reused; FAISS holds the same n, so positions never leak out. A deleted item is
    kept aside (`deleted`) with its history ending in the DELETE, so what was forgotten stays auditable."""

    def __init__(self, dim: int, encode: EncodeFn | None = None) -> None:
        self.dim = dim
        self.encode = encode
        self.items: dict[str, MemoryItem] = {}
        self.vectors: dict[str, np.ndarray] = {}
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.next_id = 1
        self.deleted: dict[str, MemoryItem] = {}

    def __len__(self) -> int:
        return len(self.items)

    def embed(self, texts: list[str]) -> np.ndarray:
        if self.encode is None:
            raise RuntimeError("this memory bank was loaded without an encoder; it is read-only")
        return np.asarray(self.encode(texts), dtype=np.float32).reshape(len(texts), self.dim)

    @staticmethod
    def _faiss_id(item_id: str) -> int:
        return int(item_id[1:])

    def _place(self, item: MemoryItem, vector: np.ndarray) -> None:
        """Hold an item and its vector, and index it under its number."""
        self.items[item.id] = item
        self.vectors[item.id] = vector
        self.index.add_with_ids(vector.reshape(1, -1), np.array([self._faiss_id(item.id)], dtype=np.int64))

    def find_duplicate(self, content: str) -> str | None:
        key = _normalise(content)
        return next((i for i, item in self.items.items() if _normalise(item.content) == key), None)

    def insert(self, contents: list[str], span_id: str | None, step: int, vectors: np.ndarray | None = None,
               sources: list[list[str]] | None = None, session_dates: list[str | None] | None = None) -> list[str]:
        """New items; `sources` are the turn ids each one was written from, `session_dates` their dates."""
        vectors = self.embed(contents) if vectors is None else vectors
        sources = sources or [[] for _ in contents]
        session_dates = session_dates or [None for _ in contents]
        ids = []
        for content, vector, turns, date in zip(contents, vectors, sources, session_dates, strict=True):
            item_id = f"m{self.next_id}"
            self.next_id += 1
            self._place(MemoryItem(
                id=item_id, content=content, source_span_ids=[span_id] if span_id else [],
                source_turn_ids=list(turns), session_date=date, created_step=step, updated_step=step,
                history=[MemoryEvent(step=step, action="INSERT", new=content, span_id=span_id, turn_ids=list(turns))]),
                vector)
            ids.append(item_id)
        return ids

    def similarity(self, item_id: str, vector: np.ndarray) -> float:
        """Cosine of an item's vector with `vector` (both L2-normalised, as the index's inner product assumes)."""
        return float(self.vectors[item_id] @ np.asarray(vector, dtype=np.float32).reshape(-1))

    def update(self, item_id: str, content: str, span_id: str | None, step: int,
               turn_ids: list[str] | None = None, session_date: str | None = None,
               vector: np.ndarray | None = None) -> None:
        """Rewrite an item; the turns it now draws on join its provenance (the earlier ones stay)."""
        item = self.items[item_id]
        vector = self.embed([content])[0] if vector is None else np.asarray(vector, dtype=np.float32)
        item.history.append(MemoryEvent(step=step, action="UPDATE", old=item.content, new=content, span_id=span_id,
                                        turn_ids=list(turn_ids or [])))
        item.content, item.updated_step = content, step
        item.session_date = session_date or item.session_date
        if span_id and span_id not in item.source_span_ids:
            item.source_span_ids.append(span_id)
        item.source_turn_ids.extend(t for t in turn_ids or [] if t not in item.source_turn_ids)
        faiss_id = np.array([self._faiss_id(item_id)], dtype=np.int64)
        self.index.remove_ids(faiss_id)
        self.index.add_with_ids(vector.reshape(1, -1), faiss_id)
        self.vectors[item_id] = vector

    def delete(self, item_id: str, step: int | None = None, span_id: str | None = None) -> MemoryItem:
        item = self.items.pop(item_id)
        item.history.append(MemoryEvent(step=item.updated_step if step is None else step, action="DELETE",
                                        old=item.content, span_id=span_id))
        self.deleted[item_id] = item
        del self.vectors[item_id]
        self.index.remove_ids(np.array([self._faiss_id(item_id)], dtype=np.int64))
        return item

    def search(self, query: np.ndarray, k: int, diversity: float = 0.0) -> list[tuple[MemoryItem, float]]:
        """The `k` memories for `query` with their cosine to it. By similarity alone, best first; with `diversity`
        d > 0, by maximal marginal relevance: each next memory maximises (1 - d) x its similarity to the query -
        d x its largest similarity to those already chosen, so an answer budget is not spent on rewordings of
        one fact. The choice is made among the 4k most similar (all of a LoCoMo conversation's at k = 300)."""
        if not self.items or k <= 0:
            return []
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        pool = min(4 * k if diversity > 0 else k, len(self.items))
        scores, ids = self.index.search(query, pool)
        found = [(self.items[f"m{i}"], float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
        return self._diverse(found, k, diversity) if diversity > 0 else found

    def _diverse(self, found: list[tuple[MemoryItem, float]], k: int,
                 diversity: float) -> list[tuple[MemoryItem, float]]:
        vectors = np.stack([self.vectors[item.id] for item, _ in found])
        relevance = np.array([score for _, score in found], dtype=np.float32)
        redundancy = np.zeros(len(found), dtype=np.float32)   # largest cosine to a chosen memory (0 while none)
        open_ = np.ones(len(found), dtype=bool)
        chosen: list[tuple[MemoryItem, float]] = []
        for _ in range(min(k, len(found))):
            score = np.where(open_, (1 - diversity) * relevance - diversity * redundancy, -np.inf)
            best = int(np.argmax(score))
            chosen.append(found[best])
            open_[best] = False
            redundancy = np.maximum(redundancy, vectors @ vectors[best])
        return chosen

    def save(self, directory: Path) -> None:
        """JSONL + .npy + meta JSON: no pickle."""
        order = list(self.items)
        write_jsonl(directory / "items.jsonl", (self.items[i].model_dump() for i in order))
        matrix = np.stack([self.vectors[i] for i in order]) if order else np.zeros((0, self.dim), np.float32)
        write_npy(directory / "vectors.npy", matrix.astype(np.float32))
        write_jsonl(directory / "deleted.jsonl", (item.model_dump() for item in self.deleted.values()))
        write_json(directory / "meta.json", {"dim": self.dim, "next_id": self.next_id, "size": len(order)})

    @classmethod
    def load(cls, directory: Path, encode: EncodeFn | None = None) -> MemoryBank:
        meta = read_json(directory / "meta.json")
        bank = cls(meta["dim"], encode)
        items = [MemoryItem.model_validate(row) for row in read_jsonl(directory / "items.jsonl")]
        matrix = read_npy(directory / "vectors.npy")
        for item, vector in zip(items, matrix, strict=True):
            bank._place(item, vector)
        if (directory / "deleted.jsonl").exists():  # memories saved before deletions were kept have none
            deleted = [MemoryItem.model_validate(row) for row in read_jsonl(directory / "deleted.jsonl")]
            bank.deleted = {item.id: item for item in deleted}
        bank.next_id = meta["next_id"]
        return bank

    def copy(self) -> MemoryBank:
        """An independent copy (items, vectors, index): what a failed change rolls back to."""
        twin = MemoryBank(self.dim, self.encode)
        for item_id, item in self.items.items():
            twin._place(item.model_copy(deep=True), self.vectors[item_id].copy())
        twin.deleted = {i: item.model_copy(deep=True) for i, item in self.deleted.items()}
        twin.next_id = self.next_id
        return twin
