"""Answering a question from retrieved context, with a prompt that suits the dataset."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from memskill_cli.data.schema import Query
from memskill_cli.llm import ChatRequest
from memskill_cli.memory import MemoryBank

Item = TypeVar("Item")

#: Reciprocal-rank fusion's constant (Cormack et al. 2009): an id's score is the sum of 1 / (60 + its rank).
RRF_K = 60

SHORT = ("Answer the question using only the context. Reply with a short phrase (a few words), using exact "
         "words from the context when possible. Write dates as day month year. If the context does not say, "
         "reply: not mentioned.")
EXTRACT = ("Answer the question using only the documents. Reply with the answer span only (an entity, a "
           "date, a number, or yes/no), nothing else.")


def answer_style(dataset: str) -> str:
    if dataset.startswith("hotpotqa"):
        return "extract"
    if dataset.startswith("longmemeval"):
        return "dated"
    return "short"


def answer_request(query: Query, context: list[str], dataset: str, context_label: str = "Memories") -> ChatRequest:
    question = query.question
    if answer_style(dataset) == "dated" and query.question_date:
        question = f"(asked on {query.question_date}) {question}"
    return question_request(question, context, answer_style(dataset), context_label)


def question_request(question: str, context: list[str], style: str = "short",
                     context_label: str = "Memories") -> ChatRequest:
    """The answer prompt for a question and its context lines (`style`: short, dated or extract)."""
    body = "".join(context_line(c) for c in context).rstrip("\n") if context else "(no context)"
    instructions = EXTRACT if style == "extract" else SHORT
    user = f"{context_label}:\n{body}\n\nQuestion: {question}\nShort answer:"
    return ChatRequest([{"role": "system", "content": instructions}, {"role": "user", "content": user}])


def clean_answer(text: str) -> str:
    """First line, without a leading 'Answer:' label: small models like to add both."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    for label in ("short answer:", "answer:"):
        if line.lower().startswith(label):
            line = line[len(label):]
    return line.strip().strip('"').strip()


def context_line(text: str) -> str:
    """How one piece of context appears in the answer prompt."""
    return f"- {text}\n"


def fit_context(items: Sequence[Item], text: Callable[[Item], str], budget: int,
                count_tokens: Callable[[str], int]) -> list[Item]:
    """The leading items whose lines fit in `budget` tokens together (counted with the answerer's tokenizer):
    every method fills the same answer budget, so none wins by showing the answerer more."""
    kept, used = [], 0
    for item in items:
        used += count_tokens(context_line(text(item)))
        if used > budget:
            break
        kept.append(item)
    return kept


def with_sources(memories: Sequence[Item], sources: Sequence[Item], text: Callable[[Item], str], budget: int,
                 share: float, count_tokens: Callable[[str], int]) -> list[Item]:
    """Memories first, in `1 - share` of the budget, then their sources in what is left: the memory decides what
    is shown first, the source keeps the words around the fact that a short memory drops."""
    if not share or not sources:
        return fit_context(memories, text, budget, count_tokens)
    shown = fit_context(memories, text, budget - round(share * budget), count_tokens)
    return fit_context([*shown, *sources], text, budget, count_tokens)


def rank_sources(memory: MemoryBank, query: np.ndarray, span_ids: Sequence[str], span_vectors: np.ndarray
                 ) -> list[str]:
    """`span_ids`, best first for `query`: the ranking by the memories written from each span (a span ranks where
    its most similar memory does) fused with the ranking by the span's own similarity. A short fact is a sharper
    key than a 256-token span."""
    by_memory = list(dict.fromkeys(span for item, _ in memory.search(query, len(memory.items))
                                   for span in item.source_span_ids))
    by_span = [span_ids[i] for i in np.argsort(-(span_vectors @ query), kind="stable")]
    score: dict[str, float] = {}
    for ranking in (by_memory, by_span):
        for rank, span_id in enumerate(ranking):
            score[span_id] = score.get(span_id, 0.0) + 1 / (RRF_K + rank)
    known = set(span_ids)
    return [s for s in sorted(score, key=lambda s: -score[s]) if s in known]


def prompt_tokens(query: Query, dataset: str, count_tokens: Callable[[str], int]) -> int:
    """Tokens of the answer prompt around an empty context (the budget comes on top)."""
    request = answer_request(query, [], dataset, "Conversation")
    return sum(count_tokens(m["content"]) for m in request.messages) + 16  # chat template markers
