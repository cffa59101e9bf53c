"""The LoCoMo scorer on hand-made cases, and the judge's parsing."""

import pytest

from memskill_cli.metrics import best_over_golds, exact_match, judge, locomo_f1, normalize_answer, token_f1
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


def test_judge_reads_scores_and_survives_unreadable_output():
    answers = iter(['{"explanation": "same city", "score": 1}', "garbage"])
    client = ScriptedClient(lambda r: next(answers))
    first, second = judge(client, [("Where?", ["Oslo"], "Oslo"), ("Where?", ["Oslo"], "Rome")])
    assert first.score == 1.0 and first.explanation == "same city"
    # An unreadable judge output scores 0 and is flagged, so it cannot raise the judge mean.
    assert second.score == 0.0 and not second.readable and "unreadable" in second.explanation
