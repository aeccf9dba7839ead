"""A local HTTP server speaking both reference APIs, with faults injected on demand.

It answers from a `ReplayApi` (the same fixtures logic as replay mode) over real HTTP on
127.0.0.1, so the clients run in `live` mode against it: real sockets, timeouts and headers.
`inject` queues faults for requests whose path and query contain a text: an HTTP status with a
body and headers, a delay (to trip the client's timeout), or a token revocation (the next API
call gets 401, as when a token expires in the middle of a walk).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from rcm_assets.resources.api_replay import ReplayApi
from rcm_assets.sample_data.synth import npi_check_digit

CLIENT_ID = "rcm-test-client"


def valid_npi(number: int, first_digit: str = "1") -> str:
    base9 = f"{first_digit}{number:08d}"
    return base9 + str(npi_check_digit(base9))


@dataclass(frozen=True)
class Fault:
    """What to do with one matching request instead of (or before) answering it normally."""

    status: int | None = None  # None: answer from the replay
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    revoke_tokens: bool = False  # forget issued tokens first (the call then gets 401)


@dataclass(frozen=True)
class SeenRequest:
    method: str
    target: str  # path and query
    headers: dict[str, str]


class ApiTestServer:
    def __init__(self, replay: ReplayApi) -> None:
        self.replay = replay
        self.requests: list[SeenRequest] = []
        self._faults: list[tuple[str, deque[Fault]]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def inject(self, contains: str, *faults: Fault) -> None:
        """Apply `faults`, one per request, to the next requests whose target contains a text."""
        with self._lock:
            self._faults.append((contains, deque(faults)))

    def seen(self, contains: str = "") -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if contains in r.target]

    def _next_fault(self, target: str) -> Fault | None:
        with self._lock:
            for contains, queue in self._faults:
                if contains in target and queue:
                    return queue.popleft()
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, the client's delayed
            # ACK would add ~40 ms to every request.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server._lock:
                    server.requests.append(SeenRequest(self.command, self.path, headers))
                fault = server._next_fault(self.path)
                if fault and fault.delay:
                    time.sleep(fault.delay)
                if fault and fault.revoke_tokens:
                    server.replay.revoke_tokens()
                if fault and fault.status is not None:
                    status, reply_headers, content = fault.status, fault.headers, fault.body
                else:
                    parts = urlsplit(self.path)
                    reply = server.replay.respond(
                        self.command, parts.path, dict(parse_qsl(parts.query)), headers, body
                    )
                    status, reply_headers, content = reply.status, reply.headers, reply.body
                try:
                    self.send_response(status)
                    for name, value in reply_headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout fault): nothing to answer

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def running(replay: ReplayApi) -> Iterator[ApiTestServer]:
    server = ApiTestServer(replay)
    server.start()
    try:
        yield server
    finally:
        server.stop()
