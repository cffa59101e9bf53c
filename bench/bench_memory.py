"""Benchmark (issue: memory a small model builds well): static-primitives memory built by each embedded executor
model on the LoCoMo validation conversations, against raw retrieval of spans, at one answer budget.

Prints, per executor model: truncated calls, verbatim copies, rejected operations, completion tokens, memories and
seconds per span, executor minutes per conversation; evidence recall@k of memory vs raw-rag (within the answer
budget, which every method fills, and of the top k without it; "whole bank": the most any retrieval could find),
and answer coverage (the share of the gold answer's words the same context holds, over all questions), with the
paired difference of memory's from raw-rag's. Memory's context is what evaluation answers from: the retrieved
memories, then the spans they were written from (`eval.source_share` of the budget); "memories only" leaves the
spans out;
and, unless --no-answer, F1 of both on a seeded sample of questions with the same answerer, with the paired
difference and its 95% bootstrap interval.

Run: .venv/bin/python bench/bench_memory.py [--models qwen2.5-coder-0.5b qwen2.5-coder-1.5b]
     [--conversations conv-47 conv-48] [--sessions N] [--max-spans N] [--span-tokens 256] [--questions 80] [--no-answer]
     [--fresh] [--dry 0.8]
Reads ../shared/data/locomo. Built memories and LLM answers are cached under .cache/bench-memory, so a rerun
costs nothing; delete that folder to measure time again.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from locomo import SOURCE, first_sessions

from memskill_cli.components import Components
from memskill_cli.config import LLMRoleSettings, PrepareSettings, Settings, SpanSettings
from memskill_cli.data.cache import build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.embeddings import Encoder
from memskill_cli.evaluation import (
    EvalContext,
    Passage,
    answer_rows,
    build_memories,
    fit,
    load_context,
    memory_context,
    memory_cost,
    ranked_spans,
    raw_rag,
    retrieved_memories,
    select_queries,
)
from memskill_cli.llm import RoleClient, UsageLedger, create_backend
from memskill_cli.llm.cache import ResponseCache
from memskill_cli.metrics import answer_coverage
from memskill_cli.quality import evidence_recall
from memskill_cli.selectors import AllSkills
from memskill_cli.significance import paired_gain
from memskill_cli.skills import SkillBank

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".cache/bench-memory"
TOP_K = 20         # recall@k compares the top k memories with the top k spans


def recall_rows(ctx: EvalContext, queries: list, contexts: list[list[Passage]]) -> dict:
    return evidence_recall([(q.evidence, [t for p in c for t in p.turn_ids]) for q, c in zip(queries, contexts,
                                                                                               strict=True)])


def run_model(base: Settings, prepared: Path, cache_dir: Path, encoder: Encoder, answerer: RoleClient,
              model: str, args: argparse.Namespace) -> None:
    ledger = UsageLedger()
    dry = base.llm.executor.dry_multiplier if args.dry is None else args.dry
    role = LLMRoleSettings(model=model, max_tokens=base.llm.executor.max_tokens, n_ctx=4096, dry_multiplier=dry)
    fresh_dir = Path(tempfile.mkdtemp()) if args.fresh else None  # --fresh: nothing reused, times measured
    executor = RoleClient("executor", create_backend(role), default_max_tokens=role.max_tokens,
                          cache=None if fresh_dir else ResponseCache(WORK / "llm.sqlite"), ledger=ledger)
    ctx = load_context(base, prepared, cache_dir, Components(encoder, {"executor": executor, "answerer": answerer},
                                                             ledger), memory_root=fresh_dir or WORK / "memories")
    ctx = first_sessions(ctx, args.conversations, args.sessions, args.max_spans)
    traces = [t for t in ctx.traces if t.trace_id in args.conversations]
    start = time.perf_counter()
    memories = build_memories(ctx, "static-primitives", SkillBank.seed(), AllSkills(), traces)
    wall = time.perf_counter() - start
    usage = ledger.role("executor")
    quality = memory_cost(memories)["total"]
    queries = [q for q in select_queries(ctx.queries, ctx.settings) if q.trace_id in args.conversations]
    found = {q.query_id: retrieved_memories(ctx, memories[q.trace_id].bank, q) for q in queries}
    whole_bank = {t: [Passage(i.id, i.content, i.source_turn_ids) for i in m.bank.items.values()]
                  for t, m in memories.items()}
    memory_ctx = [memory_context(ctx, memories[q.trace_id].bank, q, ctx.cache.for_trace(q.trace_id))
                  for q in queries]   # what evaluation answers from: memories, then the spans they came from
    facts_ctx = [fit(ctx, found[q.query_id]) for q in queries]
    rag_ctx = [raw_rag(ctx, q) for q in queries]
    rag_top = [ranked_spans(ctx, q)[:TOP_K] for q in queries]
    spans = quality["executor_calls"]
    print(f"\n== executor {model}, DRY {dry:g} ({spans} spans, {len(queries)} questions, answer budget "
          f"{ctx.settings.eval.answer_context_tokens} tokens)")
    fresh = usage.calls - usage.cache_hits
    seconds = (f"{usage.latency_s / fresh:.1f} s/span, {wall / 60 / len(traces):.1f} min per conversation "
               "(of what was built)") if fresh else "timing: cached (delete .cache/bench-memory to measure)"
    print(f"truncated {quality['truncation_rate']:.1%} | verbatim copies {quality['verbatim_copy_rate'] or 0:.1%} | "
          f"completion tokens/span {quality['completion_tokens_per_span']:.0f} | memories/span "
          f"{quality['memories_per_span']:.2f} ({quality['memories']} in all) | {seconds}")
    print(f"rejected operations: {quality['rejected_by_reason'] or 'none'}; parse failures "
          f"{quality['parse_failures']}; UPDATEs of another fact kept apart (inserted) {quality['updates_kept_apart']}")
    if fresh_dir:
        print(f"built memories and executor records (items.jsonl, records.jsonl per conversation): {fresh_dir}")
    for name, contexts in (("static-primitives (budget)", memory_ctx), ("raw-rag (budget)", rag_ctx),
                           ("static-primitives memories only", facts_ctx),
                           (f"static-primitives top {TOP_K}", [found[q.query_id][:TOP_K] for q in queries]),
                           (f"raw-rag top {TOP_K} spans", rag_top),
                           ("static-primitives whole bank", [whole_bank[q.trace_id] for q in queries])):
        r = recall_rows(ctx, queries, contexts)
        coverage = statistics.fmean(answer_coverage([p.text for p in c], q.answers)
                                    for q, c in zip(queries, contexts, strict=True))
        mean_tokens = statistics.fmean(sum(answerer.count_tokens(p.text) for p in c) for c in contexts)
        print(f"evidence recall  {name:28s} all {r['evidence_recall']:.3f}  any {r['evidence_recall_any']:.3f}  "
              f"answer coverage {coverage:.3f}  (context {mean_tokens:.0f} tokens)")
    per_question = {name: ([answer_coverage([p.text for p in c], q.answers) for q, c in zip(queries, contexts,
                                                                                          strict=True)],
                           [recall_rows(ctx, [q], [c])["evidence_recall"] for q, c in zip(queries, contexts,
                                                                                           strict=True)])
                    for name, contexts in (("memory", memory_ctx), ("memories only", facts_ctx), ("raw", rag_ctx))}
    for name in ("memory", "memories only"):
        coverage, recall = per_question[name]
        print(f"{name} - raw-rag (budget): answer coverage {paired_gain(per_question['raw'][0], coverage)}; "
              f"evidence recall (all) {paired_gain(per_question['raw'][1], recall)}")
    if args.no_answer:
        return
    sample = sorted(random.Random(0).sample(range(len(queries)), min(args.questions, len(queries))))
    picked = [queries[i] for i in sample]
    f1 = {}
    for name, contexts in (("static-primitives", memory_ctx), ("raw-rag", rag_ctx)):
        rows = answer_rows(ctx, name, picked, [contexts[i] for i in sample])
        f1[name] = [r["f1"] for r in rows]
    gain = paired_gain(f1["raw-rag"], f1["static-primitives"])
    print(f"F1 on {len(picked)} sampled questions: static-primitives {statistics.fmean(f1['static-primitives']):.3f}"
          f", raw-rag {statistics.fmean(f1['raw-rag']):.3f}; memory - raw-rag {gain}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    parser.add_argument("--conversations", nargs="+", default=["conv-47", "conv-48"])
    parser.add_argument("--sessions", type=int, default=None, help="Only the first N sessions of each conversation.")
    parser.add_argument("--max-spans", type=int, default=None, help="Only the first N spans of each conversation.")
    parser.add_argument("--span-tokens", type=int, default=SpanSettings().max_tokens, help="Span size in tokens.")
    parser.add_argument("--questions", type=int, default=80, help="Questions answered for F1 (seeded sample).")
    parser.add_argument("--no-answer", action="store_true", help="Answerer-free figures only.")
    parser.add_argument("--fresh", action="store_true", help="Build memories anew (no cached executor calls).")
    parser.add_argument("--dry", type=float, default=None, help="Executor DRY multiplier (default: the settings').")
    args = parser.parse_args()
    if not SOURCE.exists():
        sys.exit(f"skipped: {SOURCE} is absent")
    settings = Settings(eval={"split": "validation", "judge": False},  # memories retrieved as evaluation does
                        spans={"max_tokens": args.span_tokens})
    encoder = Encoder()
    [prepared] = prepare("locomo", PrepareSettings(source=str(SOURCE)), WORK / "prepared")
    info = build_cache(prepared.path, settings.spans, settings.embedding, WORK / "cache", encoder)
    answer_role = settings.llm.answerer
    answerer = RoleClient("answerer", create_backend(answer_role), default_max_tokens=answer_role.max_tokens,
                          cache=ResponseCache(WORK / "llm.sqlite"), ledger=UsageLedger())
    for model in args.models:
        run_model(settings, prepared.path, info.path, encoder, answerer, model, args)


if __name__ == "__main__":
    main()
