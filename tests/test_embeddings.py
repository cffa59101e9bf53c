import numpy as np
import pytest

from memskill_cli.embeddings import Encoder
from memskill_cli.errors import ConfigError


def test_shape_normalisation_and_similarity(encoder):
    vectors = encoder.encode(["My sister adopted a beagle last spring.",
                              "Last spring my sister got a beagle puppy.",
                              "The train to Lisbon leaves at nine."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_batching_gives_the_same_vectors(encoder):
    texts = [f"sentence number {i} about topic {i % 3}" for i in range(10)]
    small = Encoder(batch_size=3)
    np.testing.assert_allclose(small.encode(texts), encoder.encode(texts), atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_missing_hf_model_says_how_to_provide_it():
    with pytest.raises(ConfigError, match="not available offline"):
        Encoder("facebook/contriever-not-downloaded")


def test_a_text_longer_than_the_window_is_embedded_whole(encoder):
    head = " ".join(f"Maya talked about her garden and the tomatoes she planted in week {i}." for i in range(40))
    assert len(encoder.chunks(head)) >= 2  # well past MiniLM's 256-token window
    vectors = encoder.encode([head + " At the end she said she is moving to Lisbon next year.",
                              head + " At the end she said her brother plays the violin in an orchestra."])
    assert vectors[0] @ vectors[1] < 0.999  # the ends differ, so the embeddings differ
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    short = "A short sentence fits in one window."
    assert encoder.chunks(short) == [short]
    pieces = encoder.chunks(head)
    assert "".join(pieces).replace(" ", "") == head.replace(" ", "")  # cut at token boundaries, nothing lost
