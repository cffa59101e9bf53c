"""A portable MemSkill folder: what the library needs from a run, checked by hash when it is read.

    manifest.json     format, memskill version, sha256 of every file below, bank hash, controller hash
    settings.json     the settings that shaped them (spans, encoder, K, the LLM roles; key *names* only)
    skill_bank.yaml   the bank (a run's best)
    controller/       controller.safetensors + state.json (absent: the configured selector picks skills)
    users/            saved user memories (only in a folder written by `MemSkill.save`; data, not hashed)

`memskill export` writes one from a training/evolution run; `MemSkill.save` writes one with its users;
`MemSkill.from_run` and `MemSkill.load` read either.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from memskill_cli import __version__
from memskill_cli.config import Settings
from memskill_cli.errors import DataError
from memskill_cli.fileio import read_json, sha256_file, write_json
from memskill_cli.skills import SkillBank

EXPORT_FORMAT = 1
CONTROLLER_FILES = ("controller.safetensors", "state.json")


@dataclass(frozen=True)
class Export:
    root: Path
    settings: Settings
    skill_bank: SkillBank
    controller: Path | None


def write_export(target: Path, settings: Settings, bank: SkillBank, controller: Path | None,
                 source: dict[str, str] | None = None) -> None:
    """Fill the (empty, temporary) folder `target`; the caller renames it into place."""
    bank.save(target / "skill_bank.yaml")
    files = ["skill_bank.yaml"]
    if controller is not None:
        (target / "controller").mkdir()
        for name in CONTROLLER_FILES:
            if not (controller / name).is_file():
                raise DataError(f"not a controller checkpoint (no {name})", file=str(controller))
            shutil.copyfile(controller / name, target / "controller" / name)
            files.append(f"controller/{name}")
    settings = settings.model_copy(update={"memory": settings.memory.model_copy(
        update={"skill_bank": None, "controller": None})})  # the folder's own files stand for these
    write_json(target / "settings.json", settings.model_dump(mode="json"))
    files.append("settings.json")
    write_json(target / "manifest.json", {
        "format": EXPORT_FORMAT, "memskill": __version__, "skill_bank": bank.hash,
        "controller": sha256_file(target / "controller" / "controller.safetensors")[:16] if controller else None,
        "source": source or {}, "files": {name: sha256_file(target / name) for name in files}})


def is_export(path: Path) -> bool:
    return (path / "manifest.json").is_file() and (path / "settings.json").is_file()


def read_export(root: Path) -> Export:
    """An export folder, every file checked against the manifest: a changed or missing file is an error."""
    if not root.is_dir() or not (root / "manifest.json").is_file():
        raise DataError("not a memskill export (no manifest.json); write one with `memskill export`", file=str(root))
    manifest = read_json(root / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise DataError(f"unknown export format {manifest.get('format') if isinstance(manifest, dict) else None!r} "
                        f"(this memskill reads format {EXPORT_FORMAT})", file=str(root / "manifest.json"))
    for name, digest in manifest.get("files", {}).items():
        path = root / name
        if not path.is_file():
            raise DataError("missing from the export", file=str(path))
        if sha256_file(path) != digest:
            raise DataError("changed since it was exported (sha256 differs from manifest.json)", file=str(path))
    try:
        settings = Settings(**read_json(root / "settings.json"))
    except (ValidationError, TypeError) as exc:  # TypeError: not a mapping (a hand-edited file)
        raise DataError(f"invalid settings ({str(exc)[:300]})", file=str(root / "settings.json")) from None
    controller = root / "controller" if (root / "controller" / "controller.safetensors").is_file() else None
    return Export(root, settings, SkillBank.load(root / "skill_bank.yaml"), controller)
