"""Skills as data, and the skill bank: one human-readable YAML file per version, with a content hash."""

from __future__ import annotations

import difflib
import re
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from memskill_cli.errors import DataError
from memskill_cli.fileio import reading, stable_hash, write_text

Action = Literal["INSERT", "UPDATE", "DELETE", "NOOP"]
ACTIONS: tuple[Action, ...] = ("INSERT", "UPDATE", "DELETE", "NOOP")
SEED_NAMES = ("insert", "update", "delete", "skip")
_SLUG = re.compile(r"^[a-z][a-z0-9-]{1,47}$")


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    origin: Literal["seed", "refined", "added"] = "seed"
    parent_version: int | None = Field(None, description="Skill version this one was refined from.")
    round: int | None = Field(None, description="Evolution round that made this version.")
    reason: str | None = Field(None, description="The designer's reason.")


class Skill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique slug.")
    description: str = Field(min_length=1, max_length=300, description="What the selector sees.")
    instructions: str = Field(min_length=1, max_length=1500, description="What the executor follows.")
    actions: list[Action] = Field(min_length=1)
    version: int = 1
    provenance: Provenance = Field(default_factory=Provenance)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError(f"{value!r} is not a slug (lowercase letters, digits, dashes; 2-48 chars)")
        return value

    @property
    def is_seed(self) -> bool:
        return self.name in SEED_NAMES


class SkillBank(BaseModel):
    """An ordered set of skills; `hash` identifies its content (not its file layout)."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    skills: list[Skill] = Field(min_length=1, description="A bank without skills would build no memory at all.")

    @field_validator("skills")
    @classmethod
    def _unique(cls, skills: list[Skill]) -> list[Skill]:
        names = [s.name for s in skills]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate skill names: {duplicates}")
        return skills

    @property
    def hash(self) -> str:
        return stable_hash([s.model_dump(exclude={"provenance"}) for s in self.skills])

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.skills]

    def in_bank_order(self, picked: list[Skill]) -> list[Skill]:
        """`picked` as the bank orders them: the executor reads a selected set, never the selector's ranking
        (a small model follows whatever skill it reads first)."""
        names = {s.name for s in picked}
        return [s for s in self.skills if s.name in names]

    def get(self, name: str) -> Skill:
        for skill in self.skills:
            if skill.name == name:
                return skill
        raise KeyError(name)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(exclude_none=True), sort_keys=False, allow_unicode=True, width=100)

    def save(self, path: Path) -> None:
        write_text(path, f"# memskill skill bank, content hash {self.hash}\n" + self.to_yaml())

    @classmethod
    def load(cls, path: Path) -> SkillBank:
        with reading(path, "skill bank"):
            text = Path(path).read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DataError(f"skill bank is not valid YAML: {exc}", file=str(path)) from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise DataError(err["msg"], file=str(path), field=".".join(str(p) for p in err["loc"])) from None

    @classmethod
    def seed(cls) -> SkillBank:
        text = resources.files("memskill_cli.resources").joinpath("seed_skills.yaml").read_text(encoding="utf-8")
        return cls.model_validate(yaml.safe_load(text))

    def diff(self, other: SkillBank) -> str:
        """A unified diff of the two banks' YAML, for reviewing an evolution step."""
        return "".join(difflib.unified_diff(
            self.to_yaml().splitlines(keepends=True), other.to_yaml().splitlines(keepends=True),
            fromfile=f"bank v{self.version} ({self.hash})", tofile=f"bank v{other.version} ({other.hash})",
        ))


def changed_skills(old: SkillBank, new: SkillBank) -> set[str]:
    """Names of skills in `new` that are not in `old` or whose text changed: a policy trained on `old` has never
    tried them, so they get the exploration floor."""
    before = {s.name: (s.description, s.instructions) for s in old.skills}
    return {s.name for s in new.skills if before.get(s.name) != (s.description, s.instructions)}
