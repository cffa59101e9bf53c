"""Executor throughput of the embedded model by llama.cpp slots (`n_parallel`) on this machine: four LoCoMo
conversations built at once (their first spans, 512 tokens), one worker per slot, response cache off.

    .venv/bin/python bench/bench_slots.py [--slots 1 2 4] [--spans-per-trace 2]   (reads ../shared/data/locomo)

Slots decode their requests together (one batch per step), so more slots can give more spans per second until the
cores are saturated; the default `llm.<role>.n_parallel` is set from this.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from locomo import locomo_spans

from memskill_cli.config import LLMRoleSettings
from memskill_cli.construction import build_trace_memory
from memskill_cli.embeddings import Encoder
from memskill_cli.executor import Executor
from memskill_cli.llm import RoleClient, UsageLedger
from memskill_cli.llm.llamacpp import LlamaCppClient
from memskill_cli.selectors import AllSkills
from memskill_cli.skills import SkillBank

TRACES = ("conv-26", "conv-30", "conv-47", "conv-48")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--spans-per-trace", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        encoder = Encoder()
        cache = locomo_spans(Path(tmp), encoder)
        work = {t: cache.for_trace(t)[: args.spans_per_trace] for t in TRACES}
        spans = sum(len(s) for s in work.values())
        for slots in args.slots:
            ledger = UsageLedger()
            client = RoleClient("executor", LlamaCppClient(LLMRoleSettings(max_tokens=384, n_parallel=slots)),
                                default_max_tokens=384, ledger=ledger)
            executor = Executor(client)

            def build(trace_id: str, executor: Executor = executor) -> None:
                build_trace_memory(trace_id, work[trace_id], SkillBank.seed(), AllSkills(), executor,
                                   encoder.encode, dim=384)

            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=slots) as pool:
                list(pool.map(build, TRACES))
            wall = time.perf_counter() - start
            usage = ledger.role("executor")
            print(f"{slots} slot(s): {spans} spans in {wall:.1f} s = {spans / wall:.3f} spans/s "
                  f"({usage.completion_tokens / wall:.1f} completion tok/s, "
                  f"{usage.prompt_tokens / spans:.0f} prompt + {usage.completion_tokens / spans:.0f} completion "
                  f"tokens per span)", flush=True)


if __name__ == "__main__":
    main()
