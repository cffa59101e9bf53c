"""A real OpenAI-compatible HTTP server on 127.0.0.1 whose behaviour a test scripts, request by request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A behaviour returns (status, headers, body) or sleeps to force a client timeout; a body given as a string is
# sent as it is (an HTML error page, say), anything else as JSON.
Behaviour = Callable[[dict[str, Any], str], tuple[int, dict[str, str], dict[str, Any]]]


def completion(text: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    return 200, {}, {"choices": [{"message": {"role": "assistant", "content": text}}],
                     "usage": {"prompt_tokens": 11, "completion_tokens": 3}}


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog (5) drops bursts of connections: 1 s SYN retries, not ours


class FakeOpenAIServer:
    def __init__(self, behaviour: Behaviour | None = None, latency_s: float = 0.0, keep_alive: bool = False) -> None:
        """`keep_alive`: HTTP/1.1 persistent connections, as real servers (vLLM, OpenAI) keep them; off by default,
        so a test that shuts the server down sees no pooled connection still answering."""
        self.behaviour = behaviour or (lambda body, auth: completion("ok"))
        self.latency_s = latency_s
        self.seen: list[tuple[str, dict[str, Any]]] = []  # (Authorization header, body)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
            disable_nagle_algorithm = keep_alive  # headers and body are two writes: Nagle would hold the body ~40 ms

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                auth = self.headers.get("authorization", "")
                with server._lock:
                    server.seen.append((auth, body))
                if server.latency_s:
                    time.sleep(server.latency_s)
                status, headers, payload = server.behaviour(body, auth)
                raw = isinstance(payload, str)
                data = payload.encode() if raw else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("content-type", "text/html" if raw else "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
