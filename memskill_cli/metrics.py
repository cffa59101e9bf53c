"""Scores: token F1 exactly as LoCoMo's official scorer, exact match, and an LLM judge."""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Any

from nltk.stem import PorterStemmer

from memskill_cli.errors import SchemaError
from memskill_cli.llm import ChatRequest, LLMClient, parse_json

_stemmer = PorterStemmer()
_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """LoCoMo normalisation: drop commas, lowercase, drop punctuation, drop articles (and 'and')."""
    text = str(text).replace(",", "").lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


@cache
def _stem(word: str) -> str:
    return _stemmer.stem(word)


def _stemmed_words(text: str) -> Counter[str]:
    """The words F1 counts: normalised as LoCoMo does, then stemmed."""
    return Counter(_stem(w) for w in normalize_answer(text).split())


def token_f1(prediction: str, gold: str) -> float:
    pred, truth = _stemmed_words(prediction), _stemmed_words(gold)
    common = sum((pred & truth).values())
    if common == 0:
        return 0.0
    precision, recall = common / pred.total(), common / truth.total()
    return 2 * precision * recall / (precision + recall)


def multi_answer_f1(prediction: str, gold: str) -> float:
    """Category 1 (multi-hop): comma-separated parts, each gold part matched by its best predicted part."""
    predictions = [p.strip() for p in prediction.split(",")]
    golds = [g.strip() for g in gold.split(",")]
    return sum(max(token_f1(p, g) for p in predictions) for g in golds) / len(golds)


def locomo_f1(prediction: str, gold: str, category: str) -> float:
    if category == "multi-hop":
        return multi_answer_f1(prediction, gold)
    if category == "open-domain":
        gold = gold.split(";")[0].strip()
    return token_f1(prediction, gold)


def answer_coverage(context: list[str], golds: list[str]) -> float:
    """The share of the gold answer's words (normalised and stemmed as F1 counts them) that the answer context
    holds, best over the golds: the recall an answerer quoting the context could reach. Unlike evidence recall it
    does not credit a memory that cites the right turn but lost what the turn said ("X mentioned a book")."""
    held = sum((_stemmed_words(text) for text in context), Counter())
    best = 0.0
    for gold in golds:
        truth = _stemmed_words(gold)
        if truth:
            best = max(best, sum((truth & held).values()) / truth.total())
    return best


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def best_over_golds(prediction: str, golds: list[str], category: str) -> tuple[float, float]:
    """(F1, EM), each the best over the gold answers."""
    return (max(locomo_f1(prediction, g, category) for g in golds),
            max(exact_match(prediction, g) for g in golds))


JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "explanation": {"type": "string", "maxLength": 300},
        "score": {"type": "number", "enum": [0, 0.5, 1]},
    },
    "required": ["explanation", "score"],
}


@dataclass
class Judgement:
    score: float  # an unreadable judge output scores 0 (and is counted), so it cannot raise the mean
    explanation: str
    readable: bool = True


def judge_request(question: str, golds: list[str], prediction: str) -> ChatRequest:
    prompt = (
        "Grade a predicted answer against the gold answer.\n"
        f"Question: {question}\nGold answer: {' | '.join(golds)}\nPredicted answer: {prediction}\n\n"
        "Score 1 if the prediction means the same as the gold answer (wording may differ), 0.5 if it is "
        "partly right, 0 if it is wrong or missing. Reply as JSON with a one-sentence explanation and the score."
    )
    return ChatRequest([{"role": "user", "content": prompt}], json_schema=JUDGE_SCHEMA)


def judge(client: LLMClient, items: list[tuple[str, list[str], str]]) -> list[Judgement]:
    """Judge many (question, golds, prediction) at once through the client's worker pool."""
    responses = client.map([judge_request(*item) for item in items])
    judgements = []
    for response in responses:
        try:
            value = parse_json(response.text, JUDGE_SCHEMA)
        except SchemaError as exc:
            judgements.append(Judgement(0.0, f"unreadable judge output: {exc}", readable=False))
            continue
        judgements.append(Judgement(float(value["score"]), str(value["explanation"])))
    return judgements


QA_METRICS = ("f1", "em", "judge")
EMBODIED_METRICS = ("success", "steps")


def metric_names(summary: dict[str, Any]) -> tuple[str, ...]:
    """The headline metrics of an eval summary: F1/EM/judge for questions, success/steps for games."""
    first = next(iter(summary["methods"].values()), {"overall": {}})["overall"]
    return EMBODIED_METRICS if "success" in first else QA_METRICS
