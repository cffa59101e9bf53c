"""The LoCoMo spans several benchmarks read: ../shared/data's conversations cut at 512 tokens and embedded."""

from __future__ import annotations

import sys
from pathlib import Path

from memskill_cli.config import EmbeddingSettings, PrepareSettings, SpanSettings
from memskill_cli.data.cache import SpanCache, build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.embeddings import Encoder

SOURCE = Path(__file__).resolve().parents[2] / "shared/data/locomo/locomo10_trainval.json"


def locomo_spans(tmp: Path, encoder: Encoder, max_tokens: int = 512) -> SpanCache:
    """Every LoCoMo conversation as spans with their vectors (exits with the reason when the data is absent)."""
    if not SOURCE.exists():
        sys.exit(f"skipped: {SOURCE} is absent")
    [prepared] = prepare("locomo", PrepareSettings(source=str(SOURCE)), tmp / "prepared")
    info = build_cache(prepared.path, SpanSettings(max_tokens=max_tokens), EmbeddingSettings(), tmp / "cache", encoder)
    return SpanCache.load(info.path)
