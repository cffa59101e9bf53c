"""Every skill-bank version as a snapshot with its per-question validation scores; a version replaces the best
only when its paired gain is significant (else the bank rolls back to the best); export the best."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from memskill_cli.evolution.hardcases import HardCaseBuffer
from memskill_cli.fileio import read_json, write_json, write_text
from memskill_cli.significance import Gain, paired_gain
from memskill_cli.skills import SkillBank


class Version(BaseModel):
    version: int
    hash: str
    parent: int | None = None
    round: int = 0
    score: float | None = None  # mean over the validation questions (scores.json beside the bank holds each)
    gain: Gain | None = None    # paired gain over the best version when it was scored
    scored_with: str = ""       # the policy that built its scored memories (a changed policy re-scores the best)
    status: str = "seed"  # seed | on_trial (proposed, not yet scored) | best | kept (a former best) | rolled_back
    changes: list[dict[str, Any]] = Field(default_factory=list)
    rejected: list[dict[str, Any]] = Field(default_factory=list)


class EvolutionState(BaseModel):
    source: str = Field("", description="What produced the initial bank and hard cases (training run identity).")
    versions: list[Version] = Field(default_factory=list)
    current: int = 1
    best: int = 1
    round: int = 0
    stale_cycles: int = 0
    failed_proposals: list[dict[str, Any]] = Field(default_factory=list)
    cycles: list[dict[str, Any]] = Field(default_factory=list)
    buffer: HardCaseBuffer = Field(default_factory=HardCaseBuffer)

    def get(self, version: int) -> Version:
        return next(v for v in self.versions if v.version == version)


class SnapshotStore:
    """`<run>/state.json`, `<run>/versions/v<N>/bank.yaml` (+ diff.patch, analysis.json), `<run>/best_bank.yaml`."""

    def __init__(self, root: Path, state: EvolutionState) -> None:
        self.root, self.state = root, state

    @classmethod
    def open(cls, root: Path, initial: SkillBank, buffer: HardCaseBuffer, source: str = "") -> SnapshotStore:
        """Resume the run in `root`, unless it started from another bank or source: then start afresh (the old
        versions' scores were measured for inputs that no longer exist)."""
        if (root / "state.json").exists():
            state = EvolutionState.model_validate(read_json(root / "state.json"))
            if state.source == source and initial.hash in {v.hash for v in state.versions}:
                return cls(root, state)
            shutil.rmtree(root / "versions", ignore_errors=True)
        initial = initial.model_copy(update={"version": 1})
        store = cls(root, EvolutionState(source=source, versions=[Version(version=1, hash=initial.hash)],
                                         buffer=buffer.model_copy(deep=True)))
        initial.save(store.bank_path(1))
        store.save()
        return store

    def merge_cases(self, buffer: HardCaseBuffer) -> None:
        """Bring in every case of `buffer` newer than what the persisted buffer holds for its query."""
        for case in buffer.cases.values():
            known = self.state.buffer.cases.get(case.query_id)
            if known is None or case.step > known.step:
                self.state.buffer.add(case.model_dump(exclude={"failures", "step"}), case.step)

    def bank_path(self, version: int) -> Path:
        return self.root / "versions" / f"v{version}" / "bank.yaml"

    def bank(self, version: int) -> SkillBank:
        return SkillBank.load(self.bank_path(version))

    def add(self, bank: SkillBank, parent: int, analysis: dict[str, Any], changes: list[dict[str, Any]],
            rejected: list[dict[str, Any]]) -> Version:
        version = Version(version=max(v.version for v in self.state.versions) + 1, hash=bank.hash, parent=parent,
                          round=self.state.round, changes=changes, rejected=rejected, status="kept")
        bank = bank.model_copy(update={"version": version.version})
        bank.save(self.bank_path(version.version))
        write_text(self.bank_path(version.version).with_name("diff.patch"), self.bank(parent).diff(bank))
        write_json(self.bank_path(version.version).with_name("analysis.json"),
                   {"analysis": analysis, "changes": changes, "rejected": rejected})
        self.state.versions.append(version)
        return version

    def has_scores(self, version: int) -> bool:
        return self.bank_path(version).with_name("scores.json").exists()

    def scores(self, version: int) -> dict[str, float]:
        return read_json(self.bank_path(version).with_name("scores.json"))

    def record_score(self, version: int, scores: dict[str, float], confidence: float = 0.95,
                     scored_with: str = "", groups: dict[str, str] | None = None) -> str:
        """Score a version by question. It becomes the best when its paired gain over the best version is
        significant (the interval's lower bound above zero); otherwise the bank rolls back to the best.
        `groups` (question id -> the memory build that answers it) makes the bootstrap resample builds (a question
        it does not name is a build of its own)."""
        write_json(self.bank_path(version).with_name("scores.json"), scores)
        entry = self.state.get(version)
        entry.scored_with = scored_with
        entry.score = round(sum(scores.values()) / len(scores), 6) if scores else 0.0
        best = self.state.get(self.state.best)
        if version != self.state.best and best.score is not None:
            reference = self.scores(best.version)
            common = sorted(set(reference) & set(scores))
            entry.gain = paired_gain([reference[q] for q in common], [scores[q] for q in common], confidence,
                                     groups=[groups.get(q, q) for q in common] if groups else None)
            if not entry.gain.significant:
                entry.status, self.state.current = "rolled_back", self.state.best
                return "rolled_back"
            best.status = "kept"
        entry.status, self.state.best, self.state.current = "best", version, version
        return "best"

    def export_best(self) -> Path:
        target = self.root / "best_bank.yaml"
        self.bank(self.state.best).save(target)
        return target

    def save(self) -> None:
        write_json(self.root / "state.json", self.state.model_dump())
