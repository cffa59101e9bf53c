"""Benchmark (issue: skill selection that matters): what one PPO update costs on LoCoMo with the embedded default,
and whether the learned selection beats the alternatives at the same K.

1. Trains the controller for `--updates` PPO updates on LoCoMo's training conversations (episodes are one-session
   windows with every question whose evidence lies in them) and prints seconds per update (episodes, PPO) and
   the reward per update. The checkpoint is kept, and a rerun continues it.
2. On the validation conversations' session windows (`--windows` of them, seeded), builds each window's memory
   with the trained controller, the similarity selector and random-K at the same K from the same bank, and
   prints evidence recall@k (do the memories retrieved for a question cite its evidence turns?), answer coverage
   (how much of the gold answer's words they hold) and F1 with the same answerer, with the paired difference of
   the controller against each and its 95% bootstrap interval (resampling windows: a window's questions share
   one memory build), and the share of spans each selector gave each skill. With `--bank`, the seed bank with
   all four skills (static-primitives) is compared too: does the grown bank help at all?

With `--controller DIR` step 1 is skipped and that checkpoint is compared (e.g. the shipped
`bench/banks/grown-10-controller` with `--bank bench/banks/grown-10.yaml`); `--densest` compares on the windows with
the most questions per span (those that score bank versions) instead of a seeded sample; `--no-answer` leaves F1 out
(no answerer call: evidence recall and answer coverage only); `--selectors` names which to build.

Run: .venv/bin/python bench/bench_selection.py [--updates 1] [--episodes 4] [--windows 12] [--top-k 3] [--lr X]
     [--reward f1|evidence|coverage] [--bank PATH (an evolved bank; default: the seed bank)] [--controller DIR]
     [--densest] [--no-answer] [--selectors controller similarity random seed-all]
Reads ../shared/data/locomo. LLM calls are cached under .cache/bench-selection (delete it to time anew); the
checkpoint under .cache/bench-selection/train-<reward>[-<bank hash>] (a rerun continues it).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from locomo import SOURCE

from memskill_cli.checkpoint import load_controller
from memskill_cli.components import Components
from memskill_cli.config import PrepareSettings, Settings, SpanSettings
from memskill_cli.data.cache import build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.data.spans import Span
from memskill_cli.data.windows import make_windows
from memskill_cli.embeddings import Encoder
from memskill_cli.evaluation import (
    load_context,
    scoring_windows,
    select_queries,
    unanswered_rows,
    window_contexts,
    window_rows,
)
from memskill_cli.learning import make_trainer, train
from memskill_cli.llm import UsageLedger
from memskill_cli.llm.roles import build_role_clients
from memskill_cli.quality import evidence_hit
from memskill_cli.selectors import AllSkills, ControllerSelector, RandomK, SimilarityTopK, SkillSelector
from memskill_cli.significance import paired_gain
from memskill_cli.skills import Skill, SkillBank

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".cache/bench-selection"


class Tally:
    """A selector that counts the skills it hands the executor: what each policy actually chose, for diagnosis."""

    def __init__(self, inner: SkillSelector) -> None:
        self.inner, self.identity, self.picks, self.spans = inner, inner.identity, Counter(), 0

    def select(self, span: Span, span_vector: np.ndarray, memory_vectors: np.ndarray, bank: SkillBank) -> list[Skill]:
        picked = self.inner.select(span, span_vector, memory_vectors, bank)
        self.picks.update(s.name for s in picked)
        self.spans += 1
        return picked


def per_question(rows: list[dict]) -> dict[str, list[float]]:
    """Per question: evidence hit (every evidence turn cited by the memories in the answer budget), answer coverage
    (the share of the gold answer's words those memories hold) and F1 (where the questions were answered)."""
    hits = [float(evidence_hit(r["evidence"], [t for turns in r["retrieved_turns"] for t in turns])[0]) for r in rows]
    scores = {"evidence recall": hits, "answer coverage": [r["answer_coverage"] for r in rows]}
    return scores | ({"F1": [r["f1"] for r in rows]} if rows and "f1" in rows[0] else {})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=1, help="PPO updates in all (a rerun continues).")
    parser.add_argument("--episodes", type=int, default=4, help="Episodes (session windows) per update.")
    parser.add_argument("--windows", type=int, default=12, help="Validation windows compared (seeded sample).")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--lr", type=float, default=None, help="PPO learning rate (default: train.ppo's).")
    parser.add_argument("--reward", choices=["f1", "evidence", "coverage"], default="f1", help="The training reward.")
    parser.add_argument("--bank", type=Path, default=None, help="Skill bank YAML (default: the seed bank).")
    parser.add_argument("--controller", type=Path, default=None, help="A trained checkpoint to compare (no training).")
    parser.add_argument("--densest", action="store_true", help="The windows with most questions per span.")
    parser.add_argument("--no-answer", action="store_true", help="Evidence recall and answer coverage only (no F1).")
    parser.add_argument("--selectors", nargs="+", choices=["controller", "similarity", "random", "seed-all"],
                        help="Which memories to build, in this order (default: all, seed-all only with --bank).")
    args = parser.parse_args()
    if not SOURCE.exists():
        sys.exit(f"skipped: {SOURCE} is absent")
    if args.selectors is None:
        args.selectors = ["controller", "similarity", "random"] + ["seed-all"] * bool(args.bank)
    if "seed-all" in args.selectors and not args.bank:
        sys.exit("seed-all compares a grown bank with the seed bank: give --bank")
    bank = SkillBank.load(args.bank) if args.bank else SkillBank.seed()
    settings = Settings(memory={"skill_bank": str(args.bank) if args.bank else None},
                        llm={"cache_path": str(WORK / "llm.sqlite")},
                        train={"updates": args.updates, "episodes_per_update": args.episodes,
                               "skills_per_span": args.top_k, "window_sessions": 1, "reward": args.reward,
                               **({"ppo": {"learning_rate": args.lr}} if args.lr else {})},
                        eval={"skills_per_span": args.top_k})
    encoder, ledger = Encoder(), UsageLedger()
    [prepared] = prepare("locomo", PrepareSettings(source=str(SOURCE)), WORK / "prepared")
    info = build_cache(prepared.path, SpanSettings(), settings.embedding, WORK / "cache", encoder)
    components = Components(encoder, build_role_clients(settings.llm, ledger, ("executor", "answerer")), ledger)

    start = time.perf_counter()
    checkpoint = args.controller or train_controller(args, bank, settings, prepared.path, info.path, components,
                                                     ledger) / "checkpoint"

    scoring = settings.model_copy(update={
        "eval": settings.eval.model_copy(update={"split": "validation", "judge": False}),
        "evolve": settings.evolve.model_copy(update={"validation_windows": args.windows})})
    ctx = load_context(scoring, prepared.path, info.path, components, memory_root=WORK / "memories")
    if args.densest:  # the windows the gate scores bank versions on
        windows = list(scoring_windows(ctx).values())
    else:
        every = list(make_windows(select_queries(ctx.queries, scoring), ctx.cache, 1, None, 0).values())
        windows = random.Random(0).sample(every, min(args.windows, len(every)))
    controller, identity, trained_on = load_controller(checkpoint)
    selectors = {"controller": (bank, Tally(ControllerSelector(controller, encoder.encode, args.top_k, identity,
                                                               trained_on, settings.train.new_skill_floor))),
                 "similarity": (bank, Tally(SimilarityTopK(encoder.encode, args.top_k))),
                 "random": (bank, Tally(RandomK(args.top_k, 0)))}
    if args.bank:  # does the grown bank help at all? the seed bank with every skill is static-primitives
        selectors["seed-all"] = (SkillBank.seed(), Tally(AllSkills()))
    print(f"\n== validation: {len(windows)} {'densest' if args.densest else 'seeded'} windows, "
          f"{sum(len(w.queries) for w in windows)} questions in {sum(len(w.spans) for w in windows)} spans, "
          f"K={args.top_k} of {len(bank.skills)}")

    def rows(skills: SkillBank, selector: SkillSelector) -> list[dict]:
        if args.no_answer:
            return unanswered_rows(*window_contexts(ctx, skills, selector, windows), "coverage")
        return window_rows(ctx, skills, selector, windows)

    window_of = [w for w, window in enumerate(windows) for _ in window.queries]  # rows come window by window
    results = {}
    for name in args.selectors:  # in the order given, each printed as soon as it is built
        skills, tally = selectors[name]
        results[name] = per_question(rows(skills, tally))
        chosen = ", ".join(f"{skill} {n / tally.spans:.0%}" for skill, n in tally.picks.most_common())
        print(f"{name:10s} " + ", ".join(f"{metric} {statistics.fmean(values):.3f}"
                                         for metric, values in results[name].items())
              + f"; share of spans given each skill: {chosen}", flush=True)
        others = [o for o in results if o != "controller"] if name == "controller" else [name]
        for other in others if "controller" in results else []:
            for metric, values in results["controller"].items():
                gain = paired_gain(results[other][metric], values, groups=window_of)
                outlook = f"; {gain.outlook()}" if gain.outlook() else ""
                print(f"controller - {other:10s} {metric:15s} {gain}{outlook}", flush=True)
    usage = ledger.role("executor")
    print(f"\nexecutor calls {usage.calls} ({usage.cache_hits} cached), mean latency "
          f"{usage.latency_s / max(1, usage.calls - usage.cache_hits):.1f} s; answerer calls "
          f"{ledger.role('answerer').calls}; {np.round(time.perf_counter() - start)} s in all")


def train_controller(args: argparse.Namespace, bank: SkillBank, settings: Settings, prepared: Path, cache: Path,
                     components: Components, ledger: UsageLedger) -> Path:
    """Step 1: trains (or continues) the controller on LoCoMo's training windows, printing what each update cost;
    returns the training folder."""
    trainer = make_trainer(settings, prepared, cache, components)
    print(f"== training on LoCoMo: {len(trainer.env.episodes)} one-session windows, {args.episodes} per update, "
          f"K={args.top_k} of {len(bank.skills)} skills (executor {settings.llm.executor.model})")
    train_dir = WORK / (f"train-{args.reward}" + (f"-{bank.hash[:8]}" if args.bank else ""))  # one per bank
    start = time.perf_counter()
    before = train(settings, trainer, train_dir, ledger, resume=True)["resumed_from"] or 0
    for record in trainer.history[before:]:
        calls = sum(e["executor_calls"] for e in record["episodes"])
        questions = sum(len(e["cases"]) for e in record["episodes"])
        print(f"update {record['update']}: {record['episodes_seconds'] + record['ppo_seconds']:.0f} s "
              f"(episodes {record['episodes_seconds']:.0f} s for {calls} executor calls and {questions} questions, "
              f"PPO {record['ppo_seconds']:.2f} s), reward {record['reward_mean']:.3f}")
    if trainer.update == before:
        print("(all updates were already done: delete the checkpoint folder to time them)")
    else:
        print(f"seconds per update: {(time.perf_counter() - start) / (trainer.update - before):.0f}")
    return train_dir


if __name__ == "__main__":
    main()
