"""Two memory builds of bench_memory.py compared question by question: does each bank cite all (any) evidence turns
of a question, how much of its gold answer's words the bank holds (answer coverage), and the paired difference
with its 95% bootstrap interval. On 49-90 questions, recall moves by 0.05-0.10 between builds that differ in one
prompt detail; this says whether such a move is more than noise.

Run: .venv/bin/python bench/compare_builds.py BEFORE AFTER [--sessions 8] [--conversations conv-47 conv-48]
BEFORE and AFTER are the folders `bench_memory.py --fresh` prints ("built memories and executor records"), or
cached builds under .cache/bench-memory/memories; the questions are those bench_memory.py prepared under
.cache/bench-memory/prepared whose evidence lies in the first `--sessions` sessions (every session without it),
chosen as evaluation chooses them (`select_queries`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memskill_cli.config import Settings
from memskill_cli.data.schema import load_prepared
from memskill_cli.evaluation import select_queries
from memskill_cli.metrics import answer_coverage
from memskill_cli.quality import evidence_hit
from memskill_cli.significance import paired_gain

PREPARED = Path(__file__).resolve().parents[1] / ".cache/bench-memory/prepared/locomo"


def bank_items(build: Path, trace_id: str) -> list[dict]:
    """The trace's memories (items.jsonl, wherever under `build` it was written)."""
    found = sorted(build.glob(f"**/{trace_id}/items.jsonl"))
    if len(found) != 1:
        sys.exit(f"{build}: expected one {trace_id}/items.jsonl, found {len(found)}")
    return [json.loads(line) for line in found[0].read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--sessions", type=int, default=None, help="Questions on the first N sessions only.")
    parser.add_argument("--conversations", nargs="+", default=["conv-47", "conv-48"])
    args = parser.parse_args()
    if not (PREPARED / "manifest.json").exists():
        sys.exit(f"{PREPARED} is absent: run bench/bench_memory.py first")
    traces, queries = load_prepared(PREPARED)
    shown = {t.trace_id: {turn.turn_id for s in t.sessions[: args.sessions] for turn in s.turns} for t in traces}
    questions = [q for q in select_queries(queries, Settings(eval={"split": "validation"}))
                 if q.trace_id in args.conversations and q.evidence and set(q.evidence) <= shown[q.trace_id]]
    scores = {}
    for name, build in (("before", args.before), ("after", args.after)):
        items = {t: bank_items(build, t) for t in args.conversations}
        cited = {t: {turn for item in items[t] for turn in item.get("source_turn_ids", [])} for t in items}
        rows = [evidence_hit(q.evidence, cited[q.trace_id]) for q in questions]
        coverage = [answer_coverage([item["content"] for item in items[q.trace_id]], q.answers) for q in questions]
        scores[name] = ([float(a) for a, _ in rows], [float(b) for _, b in rows], coverage)
    print(f"{len(questions)} questions, whole banks")
    for i, label in enumerate(("all evidence turns cited", "any evidence turn cited", "answer coverage")):
        before, after = scores["before"][i], scores["after"][i]
        print(f"{label:26s} before {sum(before) / len(before):.3f}  after {sum(after) / len(after):.3f}  "
              f"after - before {paired_gain(before, after)}")


if __name__ == "__main__":
    main()
