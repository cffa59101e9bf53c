"""Memory systems people use, run as evaluation methods in our harness (extra `peers`): the real libraries,
configured and called, never copied or patched. Each gets our LLM (served in-process as an OpenAI-compatible
endpoint, so its calls land in our usage ledger), our MiniLM encoder and a local vector store."""

from __future__ import annotations

import os

from memskill_cli.errors import MissingExtraError

os.environ.setdefault("MEM0_TELEMETRY", "False")   # Mem0 reports usage to PostHog unless told not to (read on import)
os.environ.setdefault("LANGSMITH_TRACING", "false")   # LangChain sends traces to LangSmith only when this is true

#: Each peer method: the module it imports and the distribution that installs it (whose version keys its memories).
PEERS = {"mem0": ("mem0", "mem0ai"), "langmem": ("langmem", "langmem")}
PEER_METHODS = tuple(PEERS)
INSTALL = "pip install -e '.[peers]'"


def requirement(method: str) -> None:
    """Say how to install a peer before any work is done for it."""
    import importlib.util

    if importlib.util.find_spec(PEERS[method][0]) is None:
        raise MissingExtraError(f"the {method} method needs the `peers` extra: {INSTALL}")


def peer_version(method: str) -> str:
    """The installed version of a peer's library (part of its memories' cache key)."""
    from importlib.metadata import version

    return version(PEERS[method][1])
