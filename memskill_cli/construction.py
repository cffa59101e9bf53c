"""Memory construction for a whole trace: span by span, select skills, execute, apply."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from memskill_cli.data.spans import Span
from memskill_cli.executor import Executor, SpanRecord
from memskill_cli.memory import MemoryBank
from memskill_cli.quality import rejections
from memskill_cli.selectors import SkillSelector
from memskill_cli.skills import SkillBank


@dataclass
class TraceMemory:
    trace_id: str
    bank: MemoryBank
    records: list[SpanRecord]

    @property
    def executor_calls(self) -> int:
        return len(self.records)

    @property
    def parse_failures(self) -> int:
        return sum(r.parse_error is not None for r in self.records)

    @property
    def rejected(self) -> int:
        return rejections(self.records).total()


def extend_memory(
    bank: MemoryBank,
    spans: list[tuple[Span, np.ndarray]],
    skill_bank: SkillBank,
    selector: SkillSelector,
    executor: Executor,
    first_step: int = 0,
    on_span: Callable[[], None] | None = None,
) -> list[SpanRecord]:
    """Apply `spans` to an existing memory, in order: each span sees the memory the previous ones built. A
    trace's memory and a library user's memory (extended add after add) grow the same way."""
    records = []
    for step, (span, vector) in enumerate(spans, start=first_step):
        shown = [item for item, _ in bank.search(vector, executor.memory_top_k)]  # for selector and executor
        memory_vectors = (np.stack([bank.vectors[item.id] for item in shown]) if shown
                          else np.zeros((0, bank.dim), np.float32))
        skills = skill_bank.in_bank_order(selector.select(span, vector, memory_vectors, skill_bank))
        records.append(executor.process(span, shown, bank, skills, step))
        if on_span:
            on_span()
    return records


def build_trace_memory(
    trace_id: str,
    spans: list[tuple[Span, np.ndarray]],
    skill_bank: SkillBank,
    selector: SkillSelector,
    executor: Executor,
    encode: Callable[[list[str]], np.ndarray],
    dim: int,
    on_span: Callable[[], None] | None = None,
) -> TraceMemory:
    """A trace's memory built from nothing, span by span."""
    bank = MemoryBank(dim, encode)
    return TraceMemory(trace_id, bank, extend_memory(bank, spans, skill_bank, selector, executor, on_span=on_span))
