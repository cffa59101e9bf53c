"""One user's memory in the library: the memory bank, the turns it was built from (so every memory's cited
turns can be shown), the spans with their vectors (an answer shows the spans its memories were written from),
every span's record (skills chosen, operations), and the counters that let the next `add` continue where the
last one stopped (turn, span and session numbers are never reused)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ValidationError

from memskill_cli.data.spans import Span, SpanTurn
from memskill_cli.errors import DataError
from memskill_cli.executor import SpanRecord
from memskill_cli.fileio import read_json, read_jsonl, read_npy, write_json, write_jsonl, write_npy
from memskill_cli.memory import EncodeFn, MemoryBank


class Counters(BaseModel):
    """The next free numbers: a later `add` continues them, so ids stay unique for the user's whole life."""

    next_turn: int = 1
    next_span: int = 0
    next_session: int = 1


@dataclass
class UserMemory:
    user_id: str
    bank: MemoryBank
    turns: dict[str, SpanTurn] = field(default_factory=dict)
    records: list[SpanRecord] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)
    spans: list[Span] = field(default_factory=list)          # without their turns (those are in `turns`)
    span_vectors: np.ndarray | None = None                   # one row per span

    def add_spans(self, spans: list[Span], vectors: np.ndarray) -> None:
        self.spans += [span.model_copy(update={"turns": []}) for span in spans]
        self.span_vectors = vectors if self.span_vectors is None else np.vstack([self.span_vectors, vectors])

    def skills_of_span(self, span_id: str | None) -> list[str]:
        return next((r.skills for r in self.records if r.span_id == span_id), [])

    def save(self, directory: Path) -> None:
        """JSON, JSONL and .npy only: loads without pickle."""
        self.bank.save(directory / "memory")
        write_jsonl(directory / "turns.jsonl", (t.model_dump() for t in self.turns.values()))
        write_jsonl(directory / "records.jsonl", (r.to_dict() for r in self.records))
        write_jsonl(directory / "spans.jsonl", (span.model_dump() for span in self.spans))
        if self.span_vectors is not None:
            write_npy(directory / "span_vectors.npy", self.span_vectors.astype(np.float32))
        write_json(directory / "state.json", {"user_id": self.user_id, **self.counters.model_dump()})

    @classmethod
    def load(cls, directory: Path, encode: EncodeFn) -> UserMemory:
        state = read_json(directory / "state.json")
        try:
            turns = [SpanTurn.model_validate(row) for row in read_jsonl(directory / "turns.jsonl")]
            records = [SpanRecord(**row) for row in read_jsonl(directory / "records.jsonl")]
            counters = Counters.model_validate({k: v for k, v in state.items() if k != "user_id"})
            bank = MemoryBank.load(directory / "memory", encode)
            # memories saved before spans were kept answer from their memories alone
            spans = ([Span.model_validate(row) for row in read_jsonl(directory / "spans.jsonl")]
                     if (directory / "spans.jsonl").exists() else [])
        except (ValidationError, TypeError, KeyError) as exc:
            raise DataError(f"not a saved memskill user memory ({type(exc).__name__}: {str(exc)[:200]})",
                            file=str(directory)) from None
        vectors = read_npy(directory / "span_vectors.npy") if spans else None
        if vectors is not None and len(vectors) != len(spans):
            raise DataError(f"{len(vectors)} span vectors for {len(spans)} spans", file=str(directory))
        return cls(state["user_id"], bank, {t.turn_id: t for t in turns}, records, counters, spans, vectors)
