"""Stage `prepare`: an official dataset file -> data/prepared/<dataset>/ (params: prepare, seed, alfworld)."""

from __future__ import annotations

from pathlib import Path

from memskill_cli.config import Settings
from memskill_cli.data.prepare import Prepared
from memskill_cli.data.prepare import prepare as prepare_data


def prepare(dataset: str, settings: Settings, out_root: Path | None = None) -> list[Prepared]:
    out_root = out_root or Path(settings.paths.data_dir) / "prepared"
    return prepare_data(dataset, settings.prepare, out_root, settings.alfworld, settings.seed)
