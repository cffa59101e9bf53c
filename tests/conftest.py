from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """A benchmark file from ../shared/data, or a clean skip saying why."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"benchmark file {path} is absent (../shared/data is only beside a full checkout)")
    return path


def cli_in(tmp_path: Path, **overrides: dict) -> list[str]:
    """The `memskill` command line with a params.yaml whose paths and caches all live in `tmp_path`."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["paths"] = {"data_dir": str(tmp_path / "data"), "artifacts_dir": str(tmp_path / "artifacts")}
    params["prepare"]["source"] = str(REPO / "data/sample/sample.yaml")
    params["llm"]["cache_path"] = str(tmp_path / "llm.sqlite")
    params["memory"]["cache_dir"] = str(tmp_path / "memories")
    for section, values in overrides.items():
        params[section].update(values)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return [sys.executable, "-m", "memskill_cli.cli.app", "-q", "--params", str(tmp_path / "params.yaml")]


def small_models() -> dict:
    """An `llm` override that runs the executor and the designer on the 0.5B: for tests of mechanics
    (checkpoints, bank versions, games), not of memory or edit quality, which run the default 1.5B (the quickstart
    pipeline test). Keeps the suite well under 30 minutes."""
    from memskill_cli.llm.models import DEFAULT_MODEL

    roles = yaml.safe_load((REPO / "params.yaml").read_text())["llm"]
    return {role: {**roles[role], "model": DEFAULT_MODEL} for role in ("executor", "designer")}


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
