"""An OpenAI-compatible completions server in the test process, answering with the real model.

The remote backend's end-to-end tests point flashcode at it. In its normal mode it answers
`/v1/completions` from the embedded default model (inference.Engine), streamed as server-sent
events, so the completions the editor gets are the model's own. Its other modes produce one
fault each: a hanging server, HTTP errors, a malformed body, a stream that stalls, an endless
slow stream (to see a cancelled request close its connection), and a gate that answers only
once several requests are open at the same time (to see them go out concurrently). `stop()`
frees the port, so the next connection is refused; `start()` serves on the same port again.

Every wait in a handler is bounded (HOLD_S), so a test that fails cannot leave a thread behind.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from inference.engine import Engine
from inference.scheduler import GenerationRequest
from prompts.holes import encode_with_specials

HOLD_S = 20.0  # the longest any handler holds a connection
MODEL_ID = "flashcode-tiny (qwen2.5-coder tokens)"
MODES = ("ok", "hang", "http500", "http401", "malformed", "slow", "stream", "gate")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Record:
    """What the server saw, for the tests to check."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    closed_by_client: threading.Event = field(default_factory=threading.Event)
    closed_at: float = 0.0
    open_now: int = 0
    most_open: int = 0


class OpenAIServer:
    def __init__(self, engine: Engine, port: int) -> None:
        self.engine = engine
        self.port = port
        self.mode = "ok"
        self.gate_size = 3
        self.record = Record()
        self._lock = threading.Lock()
        self._gate = threading.Condition(self._lock)
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def set_mode(self, mode: str) -> None:
        assert mode in MODES, mode
        self.mode = mode
        self.record = Record()

    # -- the model -------------------------------------------------------------------------
    def complete(self, body: dict[str, Any]) -> str:
        """The model's answer to a completions body, as llama.cpp's server would give it."""
        tokenizer = self.engine.tokenizer
        if "suffix" in body:  # the server applies its FIM template, as llama.cpp does
            ids = [
                tokenizer.special_tokens["<|fim_prefix|>"],
                *tokenizer.encode(body["prompt"]),
                tokenizer.special_tokens["<|fim_suffix|>"],
                *tokenizer.encode(body["suffix"]),
                tokenizer.special_tokens["<|fim_middle|>"],
            ]
        else:  # special tokens written in the prompt are read as tokens
            ids = encode_with_specials(tokenizer, body["prompt"])
        request = GenerationRequest(
            prompt_ids=tuple(ids[-(self.engine.max_length - body["max_tokens"] - 1) :]),
            max_new_tokens=body["max_tokens"],
            stop_token_ids=tokenizer.eos_token_ids,
            stop_strings=tuple(body.get("stop", ())),
        )
        return asyncio.run(self.engine.generate(request)).text

    def enter(self) -> None:
        with self._lock:
            self.record.open_now += 1
            self.record.most_open = max(self.record.most_open, self.record.open_now)
            self._gate.notify_all()

    def leave(self) -> None:
        with self._lock:
            self.record.open_now -= 1

    def wait_for_gate(self) -> bool:
        with self._gate:
            return self._gate.wait_for(lambda: self.record.most_open >= self.gate_size, HOLD_S)


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAIServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows the test's own output."""

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        self._json(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        owner = self.owner
        owner.record.bodies.append(body)
        mode = owner.mode
        if self.path != "/v1/completions":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
        elif mode == "hang":
            self._wait_closed(HOLD_S)
        elif mode == "http500":
            self._json(500, {"error": {"message": "the model crashed (test)"}})
        elif mode == "http401":
            self._json(401, {"error": {"message": "invalid API key (test)"}})
        elif mode == "malformed":
            self._start_events()
            self.wfile.write(b"data: {this is not json\n\n")
        elif mode == "slow":
            self._start_events()
            self._event({"choices": [{"text": "sel", "finish_reason": None}]})
            self._wait_closed(HOLD_S)
        elif mode == "stream":
            self._start_events()
            self._stream_until_closed()
        else:
            owner.enter()
            try:
                if mode == "gate" and not owner.wait_for_gate():
                    self._json(503, {"error": {"message": "the gate never filled (test)"}})
                    return
                text = owner.complete(body)
            finally:
                owner.leave()
            self._start_events()
            for start in range(0, len(text), 4):
                self._event({"choices": [{"text": text[start : start + 4], "finish_reason": None}]})
            self._event({"choices": [{"text": "", "finish_reason": "stop"}]})
            self.wfile.write(b"data: [DONE]\n\n")

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_events(self) -> None:
        # HTTP/1.0 and no length: the body ends when the connection closes.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.flush()

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.wfile.flush()

    def _closed(self, wait: float) -> bool:
        readable, _, _ = select.select([self.connection], [], [], wait)
        return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""

    def _wait_closed(self, limit: float) -> None:
        ends = time.monotonic() + limit
        while time.monotonic() < ends:
            if self._closed(0.05):
                self._note_closed()
                return

    def _stream_until_closed(self) -> None:
        ends = time.monotonic() + HOLD_S
        while time.monotonic() < ends:
            try:
                self._event({"choices": [{"text": " x", "finish_reason": None}]})
            except OSError:
                self._note_closed()
                return
            if self._closed(0.05):
                self._note_closed()
                return

    def _note_closed(self) -> None:
        self.owner.record.closed_at = time.monotonic()
        self.owner.record.closed_by_client.set()
