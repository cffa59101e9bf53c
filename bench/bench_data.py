"""Benchmark (issue: data): time and peak memory of prepare + build-cache on LoCoMo train+val.

Run: .venv/bin/python bench/bench_data.py   (reads ../shared/data/locomo/locomo10_trainval.json)
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from locomo import SOURCE

from memskill_cli.config import EmbeddingSettings, PrepareSettings, SpanSettings
from memskill_cli.data.cache import build_cache
from memskill_cli.data.prepare import prepare


def main() -> None:
    if not SOURCE.exists():
        sys.exit(f"skipped: {SOURCE} is absent")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        [prepared] = prepare("locomo", PrepareSettings(source=str(SOURCE)), Path(tmp) / "prepared")
        prepare_s = time.perf_counter() - start
        for max_tokens in (512, 256):
            start = time.perf_counter()
            info = build_cache(prepared.path, SpanSettings(max_tokens=max_tokens), EmbeddingSettings(),
                               Path(tmp) / "cache")
            seconds = time.perf_counter() - start
            print(f"build-cache {max_tokens}-token spans: {info.spans} spans + {info.queries} queries in "
                  f"{seconds:.1f}s ({(info.spans + info.queries) / seconds:.0f} embeddings/s, "
                  f"{info.spans / seconds:.0f} spans/s incl. encoder load)")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"prepare locomo (8 conversations, {prepared.manifest['turns']} turns): {prepare_s:.2f}s; "
          f"peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
