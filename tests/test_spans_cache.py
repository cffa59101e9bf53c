"""Span modes on a known conversation, and the build-cache stage."""

import itertools

import numpy as np
import pytest

from memskill_cli.config import EmbeddingSettings, PrepareSettings, SpanSettings
from memskill_cli.data.cache import SpanCache, build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.data.schema import Session, Trace, Turn
from memskill_cli.data.spans import make_spans
from memskill_cli.data.tokens import TokenCounter
from tests.conftest import REPO

COUNTER = TokenCounter()


def _trace() -> Trace:
    s1 = Session(session_id="S1", date_time="1 May 2024", turns=[
        Turn(turn_id="S1:1", speaker="Ann", text="I moved to Oslo."),
        Turn(turn_id="S1:2", speaker="Bo", text="Nice city!", image_caption="a photo of a fjord"),
        Turn(turn_id="S1:3", speaker="Ann", text="My cat is called Miso."),
    ])
    s2 = Session(session_id="S2", date_time="9 June 2024", turns=[
        Turn(turn_id="S2:1", speaker="Bo", text="How is Miso?"),
        Turn(turn_id="S2:2", speaker="Ann", text="Miso is well. " + "We walk by the harbour every day. " * 30),
    ])
    return Trace(trace_id="t", split="train", speakers=["Ann", "Bo"], sessions=[s1, s2])


def test_turn_mode():
    spans = make_spans(_trace(), SpanSettings(mode="turn"), COUNTER)
    assert [s.turn_ids for s in spans] == [["S1:1"], ["S1:2"], ["S1:3"], ["S2:1"], ["S2:2"]]
    assert spans[0].text == "[1 May 2024]\nAnn: I moved to Oslo."
    assert spans[1].text == "[1 May 2024]\nBo: Nice city! [shares an image: a photo of a fjord]"
    assert [s.span_id for s in spans] == [f"t/{i:05d}" for i in range(5)]


def test_turn_pair_and_full_session_modes():
    pairs = make_spans(_trace(), SpanSettings(mode="turn-pair"), COUNTER)
    assert [s.turn_ids for s in pairs] == [["S1:1", "S1:2"], ["S1:3"], ["S2:1", "S2:2"]]
    sessions = make_spans(_trace(), SpanSettings(mode="full-session"), COUNTER)
    assert [s.session_ids for s in sessions] == [["S1"], ["S2"]]
    assert sessions[1].text.startswith("[9 June 2024]\nBo: How is Miso?")


def test_fixed_length_packs_whole_turns_within_budget_and_splits_long_turns():
    spans = make_spans(_trace(), SpanSettings(mode="fixed-length", max_tokens=48), COUNTER)
    assert all(s.n_tokens <= 48 for s in spans)
    assert spans[0].turn_ids == ["S1:1", "S1:2", "S1:3"]  # whole turns packed together
    long_pieces = [s for s in spans if s.turn_ids == ["S2:2"]]
    assert len(long_pieces) >= 3  # the over-long turn was split
    assert all(s.text.startswith("[9 June 2024]") for s in long_pieces)  # the date heads every span
    # every piece keeps who said it (the executor binds facts to it), though only the first starts "Ann:"
    assert [t.speaker for t in spans[0].turns] == ["Ann", "Bo", "Ann"]
    assert {t.speaker for s in long_pieces for t in s.turns} == {"Ann"}
    assert not long_pieces[-1].turns[0].line.startswith("Ann:")
    # Nothing is lost: every word of the long turn appears across its pieces.
    assert " ".join(s.text for s in long_pieces).count("harbour") == 30
    assert spans == make_spans(_trace(), SpanSettings(mode="fixed-length", max_tokens=48), COUNTER)


def test_fixed_length_overlap_repeats_previous_turns():
    settings = SpanSettings(mode="fixed-length", max_tokens=40, overlap=20)
    spans = make_spans(_trace(), settings, COUNTER)
    assert all(s.n_tokens <= 40 for s in spans)
    shared = [set(a.turn_ids) & set(b.turn_ids) for a, b in itertools.pairwise(spans)]
    assert any(shared)
    no_overlap = make_spans(_trace(), SpanSettings(mode="fixed-length", max_tokens=40), COUNTER)
    assert len(spans) >= len(no_overlap)


@pytest.fixture
def prepared_sample(tmp_path):
    [result] = prepare("sample", PrepareSettings(source=str(REPO / "data/sample/sample.yaml")), tmp_path / "prep")
    return result.path


def test_build_cache_is_idempotent_and_keyed(prepared_sample, tmp_path, encoder):
    root = tmp_path / "cache"
    spans = SpanSettings(max_tokens=128)
    first = build_cache(prepared_sample, spans, EmbeddingSettings(), root, encoder)
    assert first.built and first.spans > 4
    mtime = (first.path / "span_embeddings.npy").stat().st_mtime_ns
    second = build_cache(prepared_sample, spans, EmbeddingSettings(), root, encoder)
    assert not second.built and second.key == first.key
    assert (first.path / "span_embeddings.npy").stat().st_mtime_ns == mtime
    third = build_cache(prepared_sample, SpanSettings(max_tokens=64), EmbeddingSettings(), root, encoder)
    assert third.built and third.key != first.key and third.spans > first.spans
    loaded = SpanCache.load(first.path)
    assert loaded.span_vectors.shape == (first.spans, 384)
    np.testing.assert_allclose(np.linalg.norm(loaded.span_vectors, axis=1), 1.0, rtol=1e-5)
    assert len(loaded.query_vectors) == first.queries
    assert not list(root.rglob("*.tmp"))
