"""One user's memory in the library: the memory bank, the turns it was built from (so every memory's cited
turns can be shown), every span's record (skills chosen, operations), and the counters that let the next
`add` continue where the last one stopped (turn, span and session numbers are never reused)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from memskill_cli.data.spans import SpanTurn
from memskill_cli.errors import DataError
from memskill_cli.executor import SpanRecord
from memskill_cli.fileio import read_json, read_jsonl, write_json, write_jsonl
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

    def skills_of_span(self, span_id: str | None) -> list[str]:
        return next((r.skills for r in self.records if r.span_id == span_id), [])

    def save(self, directory: Path) -> None:
        """JSON, JSONL and .npy only: loads without pickle."""
        self.bank.save(directory / "memory")
        write_jsonl(directory / "turns.jsonl", (t.model_dump() for t in self.turns.values()))
        write_jsonl(directory / "records.jsonl", (r.to_dict() for r in self.records))
        write_json(directory / "state.json", {"user_id": self.user_id, **self.counters.model_dump()})

    @classmethod
    def load(cls, directory: Path, encode: EncodeFn) -> UserMemory:
        state = read_json(directory / "state.json")
        try:
            turns = [SpanTurn.model_validate(row) for row in read_jsonl(directory / "turns.jsonl")]
            records = [SpanRecord(**row) for row in read_jsonl(directory / "records.jsonl")]
            counters = Counters.model_validate({k: v for k, v in state.items() if k != "user_id"})
            bank = MemoryBank.load(directory / "memory", encode)
        except (ValidationError, TypeError, KeyError) as exc:
            raise DataError(f"not a saved memskill user memory ({type(exc).__name__}: {str(exc)[:200]})",
                            file=str(directory)) from None
        return cls(state["user_id"], bank, {t.turn_id: t for t in turns}, records, counters)
