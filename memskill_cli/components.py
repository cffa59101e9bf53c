"""The one place that builds what the method runs on: the encoder, the LLM role clients, the skill bank and
the skill selector. The CLI stages and the library API both call it, so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from memskill_cli.config import Settings
from memskill_cli.embeddings import Encoder
from memskill_cli.llm import RoleClient, UsageLedger, build_role_clients
from memskill_cli.selectors import AllSkills, RandomK, SimilarityTopK, SkillSelector
from memskill_cli.skills import SkillBank


@dataclass
class Components:
    """Loaded models and the usage ledger their calls are counted in."""

    encoder: Encoder
    clients: dict[str, RoleClient]
    ledger: UsageLedger = field(default_factory=UsageLedger)


def build_encoder(settings: Settings) -> Encoder:
    e = settings.embedding
    return Encoder(e.model, e.batch_size, e.device)


def build_components(settings: Settings, roles: Sequence[str]) -> Components:
    """The encoder and one client per LLM role in `roles` (roles with the same settings share a model)."""
    ledger = UsageLedger()
    return Components(build_encoder(settings), build_role_clients(settings.llm, ledger, roles=roles), ledger)


def load_skill_bank(settings: Settings) -> SkillBank:
    """`memory.skill_bank` when set, else the four seed skills."""
    return SkillBank.load(Path(settings.memory.skill_bank)) if settings.memory.skill_bank else SkillBank.seed()


def build_selector(settings: Settings, encoder: Encoder, skills_per_span: int) -> SkillSelector:
    """The trained controller when `memory.controller` names one, else the configured `memory.selector`.
    Skills the controller never trained with (an evolved bank's new or refined ones) get
    `train.new_skill_floor`, as they would when its training resumes on that bank."""
    if settings.memory.controller:
        from memskill_cli.checkpoint import load_controller
        from memskill_cli.selectors import ControllerSelector

        controller, identity, trained_on = load_controller(Path(settings.memory.controller))
        return ControllerSelector(controller, encoder.encode, skills_per_span, identity, trained_on,
                                  settings.train.new_skill_floor)
    kind = settings.memory.selector
    if kind == "all":
        return AllSkills()
    if kind == "random":
        return RandomK(skills_per_span, settings.seed)
    return SimilarityTopK(encoder.encode, skills_per_span)
