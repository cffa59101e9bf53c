"""The LoCoMo scorer on hand-made cases, and the judge's parsing."""

import pytest

from memskill_cli.metrics import (
    answer_coverage,
    best_over_golds,
    exact_match,
    judge,
    locomo_f1,
    normalize_answer,
    token_f1,
)
from tests.scripted import ScriptedClient


def test_normalisation_follows_locomo():
    assert normalize_answer("The Cat, and a Dog!") == "cat dog"
    assert normalize_answer("  7 May,  2023 ") == "7 may 2023"


def test_token_f1_with_stemming():
    assert token_f1("running marathons", "ran a marathon") == pytest.approx(0.5)  # 'marathon' matches
    assert token_f1("She runs", "running") == pytest.approx(2 * (1 / 2) * 1 / (1 / 2 + 1))
    assert token_f1("Paris", "Paris") == 1.0
    assert token_f1("", "Paris") == 0.0
    assert token_f1("London", "Paris") == 0.0


def test_category_rules():
    # multi-hop: comma-separated gold parts, each matched by the best predicted part
    assert locomo_f1("Pepper, Biscuit", "Pepper, Biscuit", "multi-hop") == 1.0
    assert locomo_f1("Pepper", "Pepper, Biscuit", "multi-hop") == pytest.approx(0.5)
    # open-domain: gold cut at the first ';'
    assert locomo_f1("yes", "yes; she likes reefs", "open-domain") == 1.0
    assert locomo_f1("yes", "yes; she likes reefs", "single-hop") < 1.0
    assert best_over_golds("Oslo", ["Bergen", "Oslo"], "single-hop") == (1.0, 1.0)
    assert exact_match("the Lisbon half marathon", "Lisbon half marathon") == 1.0


def test_answer_coverage_counts_the_gold_words_the_context_holds():
    memories = ["Jolene is reading the book Sapiens.", "Jolene mentioned a book she likes."]
    assert answer_coverage(memories, ['"Sapiens"']) == 1.0
    assert answer_coverage(memories[1:], ['"Sapiens"']) == 0.0     # cites the turn, lost the title
    # stemmed as F1 counts words, spread over the context, best gold wins
    assert answer_coverage(["John ran marathons", "in Lisbon"], ["Lisbon marathon"]) == 1.0
    assert answer_coverage(["7 May 2023"], ["8 May 2023", "7 May, 2023"]) == 1.0
    assert answer_coverage(["in May"], ["7 May 2023"]) == pytest.approx(1 / 3)
    assert answer_coverage([], ["Paris"]) == 0.0


def test_judge_reads_scores_and_survives_unreadable_output():
    answers = iter(['{"explanation": "same city", "score": 1}', "garbage"])
    client = ScriptedClient(lambda r: next(answers))
    first, second = judge(client, [("Where?", ["Oslo"], "Oslo"), ("Where?", ["Oslo"], "Rome")])
    assert first.score == 1.0 and first.explanation == "same city"
    # An unreadable judge output scores 0 and is flagged, so it cannot raise the judge mean.
    assert second.score == 0.0 and not second.readable and "unreadable" in second.explanation
