import threading
import time

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


def test_concurrent_callers_share_a_pass_and_get_the_vectors_they_would_alone(encoder):
    """Texts are embedded in groups of equal token length (never padded), so a vector does not depend on its
    batch; callers that queue while the model is busy are embedded together in one pass."""
    texts = [f"Ana told Bo about fact number {i} of her week." for i in range(12)]
    texts += ["Bo adopted a grey cat named Luna in Denver last month, and she sleeps on the sofa."]
    alone = np.stack([encoder.encode([text])[0] for text in texts])
    assert np.array_equal(encoder.encode(texts), alone)   # bit for bit, whatever shares the pass
    results: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        results[i] = encoder.encode([texts[i]])[0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(texts))]
    passes, seconds = encoder.passes, encoder.seconds
    with encoder._model_lock:              # the model is busy: every caller queues behind it
        for thread in threads:
            thread.start()
        while len(encoder._queue) < len(texts):
            time.sleep(0.01)
    for thread in threads:
        thread.join()
    assert encoder.passes - passes == 2    # one pass per token length, not one per caller
    assert encoder.seconds > seconds       # the passes' time is kept (bench_throughput prints it apart)
    assert all(np.array_equal(results[i], alone[i]) for i in range(len(texts)))


def test_a_failed_pass_fails_its_callers_and_the_next_call_works(encoder, monkeypatch):
    def broken(texts, kind):
        raise RuntimeError("out of memory")

    with monkeypatch.context() as patched:
        patched.setattr(encoder._backend, "encode", broken)
        with pytest.raises(RuntimeError, match="out of memory"):
            encoder.encode(["Ana moved to Lisbon."])
    assert encoder._queue == [] and encoder.encode(["Ana moved to Lisbon."]).shape == (1, 384)
