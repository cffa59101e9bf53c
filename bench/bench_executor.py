"""Benchmark (issue: memory construction): executor calls and tokens for one LoCoMo validation conversation
at 512-token spans (the floor is one call per span), and wall time split into LLM time vs everything else.

Run: .venv/bin/python bench/bench_executor.py [--max-spans N]   (reads ../shared/data/locomo)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from locomo import locomo_spans

from memskill_cli.config import LLMRoleSettings
from memskill_cli.construction import build_trace_memory
from memskill_cli.embeddings import Encoder
from memskill_cli.executor import Executor
from memskill_cli.llm import RoleClient, UsageLedger, create_backend
from memskill_cli.selectors import AllSkills
from memskill_cli.skills import SkillBank


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversation", default="conv-47")
    parser.add_argument("--max-spans", type=int, default=None, help="Stop after this many spans (a quick look).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        encoder = Encoder()
        spans = locomo_spans(Path(tmp), encoder).for_trace(args.conversation)[: args.max_spans]
        ledger = UsageLedger()
        client = RoleClient("executor", create_backend(LLMRoleSettings(max_tokens=384)), ledger=ledger)
        start = time.perf_counter()
        memory = build_trace_memory(args.conversation, spans, SkillBank.seed(), AllSkills(), Executor(client),
                                    encoder.encode, dim=384)
        wall = time.perf_counter() - start
    usage = ledger.role("executor")
    print(f"{args.conversation}: {len(spans)} spans of <=512 tokens -> {usage.calls} executor calls "
          f"({usage.calls / len(spans):.2f} per span), {usage.prompt_tokens} prompt + {usage.completion_tokens} "
          f"completion tokens ({(usage.prompt_tokens + usage.completion_tokens) / len(spans):.0f} per span), "
          f"{len(memory.bank)} memories, {memory.parse_failures} parse failures, {memory.rejected} rejected ops")
    print(f"wall {wall:.1f}s = LLM {usage.latency_s:.1f}s ({usage.latency_s / wall:.0%}) + "
          f"everything else {wall - usage.latency_s:.1f}s")


if __name__ == "__main__":
    main()
