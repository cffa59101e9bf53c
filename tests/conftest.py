from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """A benchmark file from ../shared/data, or a clean skip saying why."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"benchmark file {path} is absent (../shared/data is only beside a full checkout)")
    return path


@pytest.fixture(scope="session")
def encoder():
    from memskill_cli.embeddings import Encoder

    return Encoder()


@pytest.fixture(scope="session")
def embedded_llm():
    """The real embedded llama.cpp model (assembled into the user cache on first use)."""
    from memskill_cli.config import LLMRoleSettings
    from memskill_cli.llm.llamacpp import LlamaCppClient

    return LlamaCppClient(LLMRoleSettings(n_ctx=4096))
