"""Stage `build-cache`: data/prepared/<dataset>/ -> artifacts/cache/<dataset>/<key>/ (params: spans, embedding)."""

from __future__ import annotations

from pathlib import Path

from memskill_cli.config import Settings
from memskill_cli.data.cache import CacheInfo
from memskill_cli.data.cache import build_cache as build_span_cache


def build_cache(dataset: str, settings: Settings) -> CacheInfo:
    return build_span_cache(Path(settings.paths.data_dir) / "prepared" / dataset, settings.spans, settings.embedding,
                            Path(settings.paths.artifacts_dir) / "cache")
