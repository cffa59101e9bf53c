"""Memory quality you can read without an answerer: how executor calls went (truncated, rejected operations by
reason, verbatim copies, tokens) and whether retrieval finds what questions need (evidence recall@k: do the
memories retrieved for a question cite the turns that hold its answer?)."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher
from typing import Any, Protocol

COPY_SHARE = 0.8       # a memory is a verbatim copy when this share of its words is one turn's text ...
COPY_MIN_BLOCK = 3     # ... counted in runs of at least this many words (shared names and dates are not copying)
_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def is_verbatim_copy(content: str, turns: Iterable[str]) -> bool:
    """True when most of `content` is taken word for word from one of `turns` (not rewritten as a fact)."""
    words = _words(content)
    if not words:
        return False
    for turn in turns:
        blocks = SequenceMatcher(None, words, _words(turn), autojunk=False).get_matching_blocks()
        if sum(b.size for b in blocks if b.size >= COPY_MIN_BLOCK) >= COPY_SHARE * len(words):
            return True
    return False


class CallRecord(Protocol):
    """What one executor call reports (the executor's SpanRecord)."""

    truncated: bool
    parse_error: str | None
    completion_tokens: int
    applied: list[dict[str, Any]]
    rejected: list[dict[str, Any]]


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def rejections(records: Iterable[CallRecord]) -> Counter[str]:
    """Rejected operations by reason (an `over_limit` entry stands for `count` operations)."""
    reasons: Counter[str] = Counter()
    for record in records:
        for op in record.rejected:
            reasons[op["reason"]] += op.get("count", 1)
    return reasons


def build_quality(records: Sequence[CallRecord], memories: int) -> dict[str, Any]:
    """Figures of one memory build (a trace, or several traces' records together)."""
    written = [op for r in records for op in r.applied if op["action"] in ("INSERT", "UPDATE")]
    reasons = rejections(records)
    calls = len(records)
    return {
        "executor_calls": calls,
        "truncated_calls": sum(r.truncated for r in records),
        "truncation_rate": _mean([float(r.truncated) for r in records]),
        "parse_failures": sum(r.parse_error is not None for r in records),
        "written_operations": len(written),
        "updates_kept_apart": sum("instead_of_update" in op for op in written),  # UPDATEs of another fact
        "verbatim_copy_rate": _mean([float(op.get("copy", False)) for op in written]),
        "rejected_operations": sum(reasons.values()),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "completion_tokens_per_span": _mean([r.completion_tokens for r in records]),
        "memories": memories,
        "memories_per_span": round(memories / calls, 4) if calls else None,
    }


def evidence_hit(evidence: Sequence[str], cited: Iterable[str]) -> tuple[bool, bool]:
    """(all evidence turns cited, at least one cited) by what was retrieved for one question."""
    found = set(cited) & set(evidence)
    return found == set(evidence), bool(found)


def evidence_share(evidence: Sequence[str], cited: Iterable[str]) -> float:
    """The share of one question's evidence turns cited by what was retrieved for it (0 without evidence)."""
    return len(set(cited) & set(evidence)) / len(evidence) if evidence else 0.0


def evidence_recall(rows: Sequence[tuple[Sequence[str], Iterable[str]]]) -> dict[str, Any]:
    """Over questions that have evidence: the share whose evidence turns are all cited by the retrieved context
    (`evidence_recall`), and the share with at least one cited (`evidence_recall_any`)."""
    hits = [evidence_hit(evidence, cited) for evidence, cited in rows if evidence]
    return {"evidence_questions": len(hits),
            "evidence_recall": _mean([float(a) for a, _ in hits]),
            "evidence_recall_any": _mean([float(b) for _, b in hits])}
