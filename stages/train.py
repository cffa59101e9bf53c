"""Stage `train`: PPO for the skill-selection controller on the training split, checkpointed every update."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from memskill_cli.config import Settings
from memskill_cli.controller import ControllerConfig
from memskill_cli.data.schema import load_prepared
from memskill_cli.embeddings import Encoder
from memskill_cli.environment import MemoryEnvironment
from memskill_cli.errors import DataError
from memskill_cli.evolution.hardcases import HardCaseBuffer
from memskill_cli.executor import Executor
from memskill_cli.fileio import write_json, write_jsonl
from memskill_cli.llm import LLMClient, UsageLedger
from memskill_cli.progress import NoProgress, ProgressSink
from memskill_cli.skills import SkillBank
from memskill_cli.training import TrainConfig, Trainer
from stages.build_cache import SpanCache
from stages.evaluate import EvalContext


def make_trainer(settings: Settings, prepared_dir: Path, cache_dir: Path, clients: dict[str, LLMClient],
                 encoder: Encoder) -> Trainer:
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
    env = MemoryEnvironment(train_queries, cache, Executor(clients["executor"], settings.memory.exec_memory_top_k),
                            clients["answerer"], encoder, prepared_dir.name, settings.eval.mem_top_k_eval,
                            t.queries_per_trace, settings.seed, t.fusion, t.shaping_penalty, player)
    bank = SkillBank.load(Path(settings.memory.skill_bank)) if settings.memory.skill_bank else SkillBank.seed()
    return Trainer(env, bank, encoder.encode,
                   TrainConfig(updates=t.updates, episodes_per_update=t.episodes_per_update,
                               top_k=settings.memory.top_k, workers=t.workers, seed=settings.seed,
                               new_skill_floor=t.new_skill_floor, floor_decay_updates=t.floor_decay_updates),
                   t.ppo,
                   ControllerConfig(embed_dim=int(cache.span_vectors.shape[1]), hidden=t.hidden, proj=t.proj,
                                    fusion=t.fusion))


def hard_case(case: dict[str, Any], trace_id: str) -> dict[str, Any]:
    """An episode's scored query in the hard-case buffer's shape (histories from before `score` carry `f1`)."""
    keys = ("query_id", "question", "gold", "category", "evidence", "prediction", "retrieved")
    return {**{k: case.get(k, []) for k in keys}, "trace_id": trace_id, "score": case.get("score", case.get("f1"))}


EvolveHook = Callable[[SkillBank, HardCaseBuffer], SkillBank]


def changed_skills(old: SkillBank, new: SkillBank) -> set[str]:
    """Names of skills that are new or whose text changed: they get the exploration floor."""
    before = {s.name: (s.description, s.instructions) for s in old.skills}
    return {s.name for s in new.skills if before.get(s.name) != (s.description, s.instructions)}


def evolution_hook(settings: Settings, ctx: EvalContext, designer: LLMClient, run_dir: Path) -> EvolveHook:
    """One evolution cycle on the training run's hard cases; returns the best bank so far."""
    from stages.evolve import evolve

    def hook(bank: SkillBank, buffer: HardCaseBuffer) -> SkillBank:
        summary = evolve(settings, ctx, designer, run_dir, bank, buffer, settings.evolve.max_changes, cycles=1)
        return SkillBank.load(Path(summary["exported"]))

    return hook


def train(settings: Settings, trainer: Trainer, out_dir: Path, ledger: UsageLedger, resume: bool,
          progress: ProgressSink | None = None, evolve_hook: EvolveHook | None = None) -> dict[str, Any]:
    """Run PPO updates up to `train.updates`, saving a checkpoint after each; `resume` continues the last one.

    With `train.evolve_every` and a hook, PPO phases alternate with evolution cycles: the controller then
    trains on the evolved bank, new and refined skills getting the exploration floor.
    """
    checkpoint = out_dir / "checkpoint"
    e = settings.evolve
    buffer = HardCaseBuffer(threshold=e.fail_threshold, capacity=e.buffer_capacity, expiry_steps=e.expiry_steps)
    if resume and (checkpoint / "state.json").exists():
        meta = trainer.resume(checkpoint)
        buffer = HardCaseBuffer.model_validate(meta.get("hard_cases", buffer.model_dump()))
    advance = (progress or NoProgress()).task("training updates", settings.train.updates - trainer.update)
    while trainer.update < settings.train.updates:
        record = trainer.step()
        record["llm_usage"] = ledger.to_dict()
        for episode in record["episodes"]:
            for case in episode.get("cases", []):
                buffer.add(hard_case(case, episode["id"]), step=trainer.update)
        buffer.expire(trainer.update)
        every = settings.train.evolve_every
        if evolve_hook and every and trainer.update % every == 0 and trainer.update < settings.train.updates:
            evolved = evolve_hook(trainer.bank, buffer)
            if evolved.hash != trainer.bank.hash:
                trainer.set_bank(evolved, fresh=changed_skills(trainer.bank, evolved))
                record["skill_bank_after"] = evolved.hash
        trainer.save(checkpoint, {"hard_cases": buffer.model_dump()})
        advance()
    write_jsonl(out_dir / "history.jsonl", trainer.history)
    trainer.bank.save(out_dir / "skill_bank.yaml")
    rewards = [h["reward_mean"] for h in trainer.history]
    summary = {
        "updates": trainer.update, "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
        "reward_best": float(np.max(rewards)) if rewards else None, "skill_bank": trainer.bank.hash,
        "llm_usage": ledger.to_dict(),
    }
    write_json(out_dir / "metrics.json", summary)
    return summary
