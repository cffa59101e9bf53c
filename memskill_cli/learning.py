"""The method's outer loop: PPO phases for the skill-selection controller on the training split, checkpointed
every update, alternating (with `train.evolve_every`) with evolution cycles of the skill bank."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from memskill_cli.components import Components, load_skill_bank
from memskill_cli.config import Settings
from memskill_cli.controller import ControllerConfig
from memskill_cli.data.cache import SpanCache
from memskill_cli.data.schema import Trace, load_prepared
from memskill_cli.environment import MemoryEnvironment
from memskill_cli.errors import DataError
from memskill_cli.evaluation import EvalContext, bank_scorer, scoring_groups
from memskill_cli.evolution.hardcases import HardCaseBuffer, empty_buffer, hard_case
from memskill_cli.evolution.loop import Turns, evolve
from memskill_cli.executor import Executor
from memskill_cli.fileio import read_json, recover_dir, sha256_file, stable_hash, write_json, write_jsonl
from memskill_cli.llm import LLMClient, UsageLedger
from memskill_cli.progress import NoProgress, ProgressSink
from memskill_cli.selectors import SkillSelector
from memskill_cli.skills import SkillBank, changed_skills
from memskill_cli.training import TrainConfig, Trainer


def make_trainer(settings: Settings, prepared_dir: Path, cache_dir: Path, components: Components) -> Trainer:
    """A trainer over the training split's questions, starting from the bank `memory.skill_bank` names."""
    clients, encoder = components.clients, components.encoder
    _, queries = load_prepared(prepared_dir)
    train_queries = [q for q in queries if q.split == "train" and q.category not in settings.eval.exclude_categories
                     and not q.abstention]
    if not train_queries:
        raise DataError("no training questions in the prepared data", file=str(prepared_dir / "queries.jsonl"))
    cache = SpanCache.load(cache_dir)
    t = settings.train
    player = None
    if any(q.game for q in train_queries):  # ALFWorld: batch B games are played with batch A's memory
        from memskill_cli.embodied.play import GamePlayer

        player = GamePlayer(settings.alfworld, prepared_dir, clients["answerer"])
    executor = Executor(clients["executor"], settings.memory.memories_shown_to_executor)
    env = MemoryEnvironment(train_queries, cache, executor, clients["answerer"], encoder, prepared_dir.name,
                            settings.eval.memories_per_question, t.queries_per_trace, settings.seed, t.fusion,
                            t.shaping_penalty, player, settings.eval.answer_context_tokens, t.window_sessions,
                            t.reward, settings.eval.memory_diversity)
    return Trainer(env, load_skill_bank(settings), encoder.encode,
                   TrainConfig(updates=t.updates, episodes_per_update=t.episodes_per_update,
                               top_k=t.skills_per_span, workers=t.workers, seed=settings.seed,
                               new_skill_floor=t.new_skill_floor, floor_decay_updates=t.floor_decay_updates),
                   t.ppo,
                   ControllerConfig(embed_dim=int(cache.span_vectors.shape[1]), hidden=t.hidden, proj=t.proj,
                                    fusion=t.fusion))


#: (current bank, hard cases, the policy as it stands, whether to propose) -> the bank to train on: the version on
#: trial after a cycle that proposed one, else the best.
EvolveHook = Callable[[SkillBank, HardCaseBuffer, SkillSelector, bool], SkillBank]


def source_turns(traces: list[Trace]) -> Turns:
    """trace id -> turn id -> "speaker: text" (turn ids are unique within a trace only)."""
    return {trace.trace_id: {turn.turn_id: f"{turn.speaker}: {turn.text}" for turn in trace.turns()}
            for trace in traces}


def evolution_hook(settings: Settings, ctx: EvalContext, designer: LLMClient, run_dir: Path) -> EvolveHook:
    """One evolution cycle on the training run's hard cases: the version on trial since the last cycle is judged
    (scored by `ctx` with the controller being trained, paired with the best), then, when `propose`, the designer
    proposes the next version, which goes on trial for the coming PPO phase."""
    turns, groups = source_turns(ctx.traces), scoring_groups(ctx)

    def hook(bank: SkillBank, buffer: HardCaseBuffer, policy: SkillSelector, propose: bool) -> SkillBank:
        summary = evolve(settings.evolve, bank_scorer(ctx, policy), turns, ctx.encoder.encode, designer, run_dir,
                         bank, buffer, source="", max_changes=settings.evolve.max_changes, cycles=int(propose),
                         seed=settings.seed, scored_with=policy.identity, trial=True, groups=groups)
        return SkillBank.load(Path(summary["current_bank"]))

    return hook


def run_fingerprint(settings: Settings) -> str:
    """What a training run depends on: memskill's code and every setting but how long it runs, how parallel,
    and where files go. `--resume` continues only a run with the same fingerprint (an interrupted one)."""
    package = Path(__file__).parent
    code = {str(f.relative_to(package)): sha256_file(f) for f in sorted(package.rglob("*.py"))}
    return stable_hash({"code": code, "settings": settings.model_dump(
        mode="json", exclude={"train": {"updates", "workers"}, "paths": True, "mlflow": True,
                              "eval": {"methods", "judge"}})})


def fresh_start_reason(checkpoint: Path, fingerprint: str) -> str | None:
    """Why `--resume` cannot continue `checkpoint` (None: it can); a checkpoint that is not one is an error."""
    if not (checkpoint / "state.json").exists():
        return "there is no checkpoint"
    state = read_json(checkpoint / "state.json")
    if not isinstance(state, dict) or not {"update", "controller", "history"} <= set(state):
        raise DataError("not a memskill training checkpoint (no update, controller or history)",
                        file=str(checkpoint / "state.json"))
    if state.get("settings_fingerprint") != fingerprint:
        return "the checkpoint was made with other code or settings"
    return None


def adopt(trainer: Trainer, bank: SkillBank) -> bool:
    """Train on `bank` from now on (its new and refined skills get the exploration floor); whether it changed."""
    if bank.hash == trainer.bank.hash:
        return False
    trainer.set_bank(bank, fresh=changed_skills(trainer.bank, bank))
    return True


def train(settings: Settings, trainer: Trainer, out_dir: Path, ledger: UsageLedger, resume: bool,
          progress: ProgressSink | None = None, evolve_hook: EvolveHook | None = None) -> dict[str, Any]:
    """Run PPO updates up to `train.updates`, saving a checkpoint after each; `resume` continues the last one
    when it was made with the same settings (else the run starts afresh, and the summary says why).

    With `train.evolve_every` and a hook, PPO phases alternate with evolution cycles: the controller trains on
    each proposed version for a phase (new and refined skills at the exploration floor) before the next cycle
    judges it; the last one is judged after the last update.
    """
    checkpoint = out_dir / "checkpoint"
    recover_dir(checkpoint)  # a kill mid-save leaves the previous checkpoint set aside: take it back
    buffer = empty_buffer(settings.evolve)
    fingerprint = run_fingerprint(settings)
    fresh_because = fresh_start_reason(checkpoint, fingerprint) if resume else None
    resumed_from = None
    if resume and fresh_because is None:
        meta = trainer.resume(checkpoint)
        resumed_from = trainer.update
        buffer = HardCaseBuffer.model_validate(meta.get("hard_cases", buffer.model_dump()))
    elif evolve_hook is not None:
        shutil.rmtree(out_dir / "evolution", ignore_errors=True)  # a fresh run's evolution starts fresh too
    advance = (progress or NoProgress()).task("training updates", settings.train.updates - trainer.update)

    def save() -> None:
        trainer.save(checkpoint, {"hard_cases": buffer.model_dump(), "settings_fingerprint": fingerprint,
                                  "settings": settings.model_dump(mode="json")})

    def cycle(propose: bool) -> bool:
        """An evolution cycle with the policy as it stands; whether training goes on with another bank."""
        if evolve_hook is None:
            return False
        policy = trainer.selector(settings.eval.skills_per_span)
        return adopt(trainer, evolve_hook(trainer.bank, buffer, policy, propose))

    while trainer.update < settings.train.updates:
        record = trainer.step()
        record["llm_usage"] = ledger.to_dict()
        for episode in record["episodes"]:
            for case in episode.get("cases", []):
                buffer.add(hard_case(case, episode["id"]), step=trainer.update)
        buffer.expire(trainer.update)
        every = settings.train.evolve_every
        if every and trainer.update % every == 0 and trainer.update < settings.train.updates and cycle(True):
            record["skill_bank_after"] = trainer.bank.hash
        save()
        advance()
    if settings.train.evolve_every and cycle(False):  # the version still on trial is judged by the final policy
        save()
    write_jsonl(out_dir / "history.jsonl", trainer.history)
    trainer.bank.save(out_dir / "skill_bank.yaml")
    rewards = [h["reward_mean"] for h in trainer.history]
    summary = {
        "updates": trainer.update, "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
        "reward_best": float(np.max(rewards)) if rewards else None, "skill_bank": trainer.bank.hash,
        "resumed_from": resumed_from,  # the update a --resume continued from; None: a fresh run ...
        "fresh_because": fresh_because,  # ... and why, when --resume was asked for
        "llm_usage": ledger.to_dict(),
    }
    write_json(out_dir / "metrics.json", summary)
    return summary
