"""Answering a question from retrieved context, with a prompt that suits the dataset."""

from __future__ import annotations

from memskill_cli.data.schema import Query
from memskill_cli.llm import ChatRequest

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
    style = answer_style(dataset)
    body = "\n".join(f"- {c}" for c in context) if context else "(no context)"
    question = query.question
    if style == "dated" and query.question_date:
        question = f"(asked on {query.question_date}) {question}"
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
