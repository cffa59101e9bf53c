"""API keys: read from env vars or files only, and scrubbed from every message memskill prints."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import quote

from memskill_cli.errors import ConfigError

_known: set[str] = set()
_SEPARATORS = re.compile(r"[,\s]+")
_lock = threading.Lock()


def register(secret: str) -> None:
    """Remember a secret for redaction, with the spellings it takes when echoed back (JSON escapes, URL
    encoding)."""
    if len(secret) >= 4:
        escaped = json.dumps(secret)[1:-1]
        spellings = {secret, escaped, escaped.replace("/", "\\/"), quote(secret, safe="")}
        with _lock:
            _known.update(spellings)


def redact(text: str) -> str:
    """Replace every registered secret in `text` with a fixed marker."""
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def load_api_keys(env_var: str, key_file: str | None) -> list[str]:
    """Keys from a file (one per line) or an env var (comma-separated); each is registered for redaction."""
    if key_file:
        path = Path(key_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"API key file not found: {path}")
        source, text = f"key file {path}", path.read_bytes().decode("utf-8", errors="replace")
    else:
        source, text = f"environment variable {env_var}", os.environ.get(env_var, "")
    keys = [k for k in _SEPARATORS.split(text) if k]  # commas, newlines or spaces: a key never holds them
    for key in keys:
        register(key)
    for number, key in enumerate(keys, start=1):
        if not (key.isascii() and key.isprintable()):
            raise ConfigError(f"API key {number} in {source} has characters an HTTP header cannot carry "
                              "(keys are printable ASCII); check that it was copied whole")
    return keys
