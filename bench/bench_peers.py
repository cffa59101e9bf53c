"""Benchmark (issue: real peers in the same harness): our memory construction against the real Mem0 and LangMem
libraries on the LoCoMo validation conversations, with one LLM (the embedded executor model, served to the peers),
one embedder, one answerer and one answer budget.

Prints, per method: token F1 on the questions whose evidence lies in what was built, evidence recall where the
memories cite turns (a peer's do not: omitted, not guessed), answer coverage (the share of the gold answer's words
the answer context holds: every method's), and the memory-construction cost per conversation
(LLM calls, prompt and completion tokens with the prompt tokens llama.cpp served from its prefix cache, LLM
seconds, memories written); then each method's paired F1 difference from static-primitives with its 95% bootstrap
interval, and the token ratio the issue targets (ours at most a fifth of Mem0's), also over the tokens computed
(prefix-cache hits left out: a fixed prompt prefix is computed once, and API providers bill it at a discount).

With `--bank` and `--controller` (an evolved bank and the controller trained on it, e.g. `bench/banks/grown-10.yaml`
and `bench/banks/grown-10-controller`, which bench_selection.py trains), the `memskill` method is the full one:
the trained controller picks `--top-k` skills of that bank per span.

Run: .venv/bin/python bench/bench_peers.py [--conversations conv-47 conv-48] [--sessions 2]
     [--methods static-primitives raw-rag mem0 langmem no-memory memskill] [--model qwen2.5-coder-1.5b]
     [--bank PATH --controller DIR] [--top-k 3]
Reads ../shared/data/locomo. Built memories (ours and the peers') and every LLM answer are cached under
.cache/bench-peers, so a rerun costs nothing; delete that folder to measure time again.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from locomo import SOURCE, first_sessions

from memskill_cli.components import Components
from memskill_cli.config import PrepareSettings, Settings
from memskill_cli.data.cache import build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.embeddings import Encoder
from memskill_cli.evaluation import load_context, method_rows
from memskill_cli.llm import RoleClient, UsageLedger, create_backend
from memskill_cli.llm.cache import ResponseCache
from memskill_cli.significance import paired_gain

WORK = Path(__file__).resolve().parents[1] / ".cache/bench-peers"
BASELINE = "static-primitives"


def construction_cost(metrics: dict, executor_seconds: float, conversations: int) -> dict[str, float]:
    """LLM cost of building memory, per conversation: the peer's ledger entries, or our executor's records (and
    the executor's seconds while the method ran); empty for a method that builds nothing."""
    total = metrics["cost"]["total"] if metrics.get("cost") else {}
    if "llm_calls" in total:   # a peer
        return {k: total[k] / conversations for k in ("llm_calls", "prompt_tokens", "completion_tokens",
                                                      "cached_prompt_tokens", "llm_seconds", "memories")}
    if not total.get("executor_calls"):
        return {}
    return {"llm_calls": total["executor_calls"] / conversations,
            "prompt_tokens": total["prompt_tokens"] / conversations,
            "completion_tokens": total["completion_tokens"] / conversations,
            "cached_prompt_tokens": total["cached_prompt_tokens"] / conversations,
            "llm_seconds": executor_seconds / conversations, "memories": total["memories"] / conversations}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", nargs="+", default=["conv-47", "conv-48"])
    parser.add_argument("--sessions", type=int, default=2, help="Only the first N sessions of each conversation "
                                                                "(0: whole conversations).")
    parser.add_argument("--methods", nargs="+", default=[BASELINE, "raw-rag", "mem0", "langmem", "no-memory"])
    parser.add_argument("--model", default=None, help="Executor model (the peers' LLM too); default: params'.")
    parser.add_argument("--bank", default=None, help="Skill bank of the memskill method (default: the seed bank).")
    parser.add_argument("--controller", default=None, help="Trained controller of the memskill method (default: "
                                                           "the similarity selector).")
    parser.add_argument("--top-k", type=int, default=None, help="Skills per span of the memskill method.")
    args = parser.parse_args()
    if not SOURCE.exists():
        sys.exit(f"skipped: {SOURCE} is absent")
    # A peer's memories cite no spans, so ours answer from their memories alone too (eval.source_share 0): like
    # for like, memory against memory
    settings = Settings(eval={"split": "validation", "judge": False, "source_share": 0.0,
                              **({"skills_per_span": args.top_k} if args.top_k else {})},
                        memory={"skill_bank": args.bank, "controller": args.controller})
    if args.model:
        settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={
            "executor": settings.llm.executor.model_copy(update={"model": args.model})})})
    encoder = Encoder()
    [prepared] = prepare("locomo", PrepareSettings(source=str(SOURCE)), WORK / "prepared")
    info = build_cache(prepared.path, settings.spans, settings.embedding, WORK / "cache", encoder)
    ledger, cache = UsageLedger(), ResponseCache(WORK / "llm.sqlite")
    clients = {role: RoleClient(role, create_backend(getattr(settings.llm, role)),
                                default_max_tokens=getattr(settings.llm, role).max_tokens, cache=cache, ledger=ledger)
               for role in ("executor", "answerer")}
    ctx = load_context(settings, prepared.path, info.path, Components(encoder, clients, ledger),
                       memory_root=WORK / "memories")
    ctx = first_sessions(ctx, args.conversations, args.sessions or None)
    ctx = replace(ctx, traces=[t for t in ctx.traces if t.trace_id in args.conversations],
                  queries=[q for q in ctx.queries if q.trace_id in args.conversations])
    n = len(args.conversations)
    print(f"LoCoMo {', '.join(args.conversations)}, first {args.sessions or 'all'} sessions; executor and peers' LLM "
          f"{settings.llm.executor.model}, answerer {settings.llm.answerer.model}, answer budget "
          f"{settings.eval.answer_context_tokens} tokens")
    f1, cost = {}, {}
    for method in args.methods:
        before = ledger.role("executor").latency_s
        rows, metrics, _ = method_rows(ctx, method)
        f1[method] = [r["f1"] for r in rows]
        cost[method] = construction_cost(metrics, ledger.role("executor").latency_s - before, n)
        overall = metrics["overall"]
        recall = (f"{overall['evidence_recall']:.3f}" if overall.get("evidence_recall") is not None else "  -  ")
        built = cost[method]
        seconds = f"{built['llm_seconds']:.0f} s" if built.get("llm_seconds") else "s: reused (not measured)"
        spent = (f"{built['llm_calls']:.0f} calls, {built['prompt_tokens']:.0f} + {built['completion_tokens']:.0f} "
                 f"tokens ({built['cached_prompt_tokens']:.0f} prompt tokens from llama.cpp's prefix cache), "
                 f"{seconds}, {built['memories']:.0f} memories") if built else "no build"
        failed = metrics.get("cost", {}).get("total", {}).get("failed_traces")
        coverage = overall.get("answer_coverage")  # every method's, peers' included: it needs no citations
        coverage = "  -  " if coverage is None else f"{coverage:.3f}"
        print(f"{method:18s} F1 {statistics.fmean(f1[method]):.3f} ({len(rows)} q) | evidence recall {recall} | "
              f"answer coverage {coverage} | per conversation: {spent}"
              + (f" | failed traces {failed}" if failed else ""), flush=True)
    if BASELINE in f1:
        for method in f1:
            if method != BASELINE:
                print(f"F1 {method} - {BASELINE}: {paired_gain(f1[BASELINE], f1[method])}")
    def tokens(method: str, computed: bool = False) -> float:
        """Construction tokens per conversation; `computed`: less the prompt tokens served from the prefix cache."""
        built = cost.get(method, {})
        return (built.get("prompt_tokens", 0) + built.get("completion_tokens", 0)
                - (built.get("cached_prompt_tokens", 0) if computed else 0))

    for ours in [m for m in (BASELINE, "memskill") if tokens(m)]:
        for peer in [p for p in ("mem0", "langmem") if tokens(p)]:
            target = " (target: at most 0.20)" if peer == "mem0" else ""
            print(f"construction tokens, {ours} / {peer}: {tokens(ours) / tokens(peer):.2f}{target}; tokens computed "
                  f"(prefix-cache hits left out): {tokens(ours, True) / max(tokens(peer, True), 1):.2f}")


if __name__ == "__main__":
    main()
