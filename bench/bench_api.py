"""Latency of the library API: `add` per span with the embedded executor (LLM time and the framework's own time
apart), and `search` over 10,000 memories of one user.

    .venv/bin/python bench/bench_api.py [--spans 6] [--memories 10000] [--searches 200]

`add` runs on our own sample conversations with the response cache off, so every span is a real executor call.
The 10,000 memories are distinct synthetic facts embedded with the real encoder and inserted directly (writing
them with the LLM would take hours); `search` then embeds each query and asks FAISS, as in use.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memskill_cli import MemSkill
from memskill_cli.config import PrepareSettings
from memskill_cli.data.prepare import prepare
from memskill_cli.data.schema import load_prepared

REPO = Path(__file__).resolve().parents[1]
PEOPLE = ("Ana", "Bruno", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun")
THINGS = ("a bakery", "the cello", "a red bike", "Lisbon", "a cat called Pepper", "night shifts", "pottery",
          "the Berlin marathon", "a garden", "chess")
VERBS = ("likes", "bought", "visited", "sold", "learned about", "talked about", "lost", "found")


def bench_add(args: argparse.Namespace, tmp: Path) -> None:
    [prepared] = prepare("sample", PrepareSettings(source=str(REPO / "data/sample/sample.yaml")), tmp / "prep")
    traces = load_prepared(prepared.path)[0]
    memory = MemSkill.from_config({"llm.cache_enabled": False})
    spans, seconds, llm_seconds, prompt, completion = 0, 0.0, 0.0, 0, 0
    for trace in traces:
        for session in trace.sessions:
            if spans >= args.spans:
                break
            before = memory.ledger.role("executor").latency_s
            result = memory.add([{"role": "user", "name": t.speaker, "content": t.text} for t in session.turns],
                                user_id=trace.trace_id, session_date=session.date_time)
            spans += len(result.spans)
            seconds += result.seconds
            llm_seconds += memory.ledger.role("executor").latency_s - before
            prompt += result.prompt_tokens
            completion += result.completion_tokens
    print(f"add: {spans} spans in {seconds:.1f} s = {seconds / spans:.2f} s per span "
          f"(executor LLM {llm_seconds / spans:.2f} s, memskill's own {(seconds - llm_seconds) / spans * 1000:.0f} ms);"
          f" {prompt / spans:.0f} prompt + {completion / spans:.0f} completion tokens per span")


def bench_search(args: argparse.Namespace) -> None:
    memory = MemSkill.from_config()
    facts = [f"{PEOPLE[i % 10]} {VERBS[(i // 10) % 8]} {THINGS[(i // 80) % 10]} in week {i // 800} (note {i})"
             for i in range(args.memories)]
    start = time.perf_counter()
    vectors = memory.encoder.encode(facts, kind="passage")
    bank = memory._user("bench", create=True).memory.bank   # bulk insert: no LLM writes 10k facts in a bench
    bank.insert(facts, None, 0, vectors=vectors)
    print(f"search setup: {len(bank)} memories embedded and indexed in {time.perf_counter() - start:.1f} s")
    queries = [f"What did {PEOPLE[i % 10]} do with {THINGS[i % 7]}?" for i in range(args.searches)]
    times = []
    for query in queries:
        start = time.perf_counter()
        hits = memory.search(query, user_id="bench", limit=20)
        times.append(time.perf_counter() - start)
        assert len(hits) == 20
    times.sort()
    print(f"search over {len(bank)} memories: median {statistics.median(times) * 1000:.1f} ms, "
          f"p95 {times[int(0.95 * len(times))] * 1000:.1f} ms ({args.searches} queries, limit 20; query embedding "
          f"included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=6, help="Spans to add with the embedded executor.")
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--searches", type=int, default=200)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        bench_add(args, Path(tmp))
    bench_search(args)


if __name__ == "__main__":
    main()
