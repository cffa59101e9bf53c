"""Answering a question from retrieved context, with a prompt that suits the dataset."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from memskill_cli.data.schema import Query
from memskill_cli.llm import ChatRequest

Item = TypeVar("Item")

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


def prompt_tokens(query: Query, dataset: str, count_tokens: Callable[[str], int]) -> int:
    """Tokens of the answer prompt around an empty context (the budget comes on top)."""
    request = answer_request(query, [], dataset, "Conversation")
    return sum(count_tokens(m["content"]) for m in request.messages) + 16  # chat template markers
