"""The remote backend: the engine contract served by an OpenAI-compatible completions server.

For a team sharing a GPU box, or a laptop too small for the model: vLLM, TGI, llama.cpp's server
or Ollama batch and scale the model; flashcode keeps its prompt pipeline, post-processing,
caches and editor features in front of them, unchanged. `RemoteEngine` takes the same
`GenerationRequest` as the local engine and turns its token ids back into text
(remote_prompt.py), then streams `/completions` with `stream: true`.

- Prompt budget: the tokenizer of `modelPath` when set (the server's model, or one like it),
  else a character budget (char_tokenizer.py: a token per three ASCII characters).
- Cancellation: a cancelled request aborts its connection at once, so the server can stop.
- Concurrency: every request is its own connection and coroutine; the server batches them.
- Faults (refused, unreachable, timeout, HTTP error, malformed answer, a stream that stalls or
  breaks off) end in an empty answer with finish "error", never a hang, and one rate-limited
  message naming the URL and the fix. Nothing is remembered against the server: the next
  request tries again, so it recovers on its own when the server is back.
- Token healing: an OpenAI-compatible API takes no constraint on an answer's first characters,
  so by default (`remote.healing: "prompt"`) the text the prompt backed off from goes back at the
  prompt's end and leads the answer, as if forced. With `"grammar"` the prompt stays backed off
  and a GBNF grammar holds the answer to start with that text (llama.cpp's servers), as the
  local engine's forced tokens do; a server that ignores the grammar is reported, not trusted.
- Privacy: the only socket is to `remote.url`, opened only when `backend` is remote.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.router import ModelRouter
from inference.scheduler import FinishReason, GenerationRequest, GenerationResult
from inference.tokenizer import Tokenizer
from lsp_server.backends.char_tokenizer import CharTokenizer
from lsp_server.backends.engine import EngineTokenizer, ServingEngine
from lsp_server.backends.http_stream import Endpoint, ProtocolError, Response
from lsp_server.backends.http_stream import request as http_request
from lsp_server.backends.remote_faults import (
    TRANSPORT_FAULTS,
    FaultGate,
    RemoteFault,
    fault_message,
)
from lsp_server.backends.remote_prompt import (
    completion_body,
    cut_at_stop,
    stop_texts,
    template_for_model,
)
from lsp_server.settings import Settings
from prompts.fim import QWEN, FimTemplate, select_template

log = logging.getLogger(__name__)

PROVIDER = "remote"
MAX_LENGTH = 4096  # prompt plus answer; the local engine's slot length too
ERROR_BODY_BYTES = 4096


class RemoteSetupError(ValueError):
    """Settings that cannot reach a server; `fix` says what to change."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


@dataclass(frozen=True)
class RemoteSpec:
    """What decides whether a remote engine can be kept after a settings change."""

    url: str
    model: str
    api_key_env: str
    timeout_ms: int
    fim: str
    fim_template: str
    tokenizer_dir: Path | None  # modelPath, when set: its tokenizer counts the prompt
    healing: str = "prompt"

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteSpec:
        remote = settings.remote
        return cls(
            url=remote.url,
            model=remote.model,
            api_key_env=remote.api_key_env,
            timeout_ms=remote.timeout_ms,
            fim=remote.fim,
            fim_template=settings.fim_template,
            tokenizer_dir=Path(settings.model_path).expanduser() if settings.model_path else None,
            healing=remote.healing,
        )


@dataclass(frozen=True)
class RemoteModel:
    name: str
    fingerprint: str


class RemoteEngine:
    """Generation on an OpenAI-compatible server; one connection per request."""

    def __init__(
        self,
        spec: RemoteSpec,
        endpoint: Endpoint,
        tokenizer: EngineTokenizer,
        max_length: int,
        on_fault: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.endpoint = endpoint
        self.url = endpoint.url()
        self.provider = PROVIDER
        self._tokenizer = tokenizer
        self._fixed_tokenizer = spec.tokenizer_dir is not None or bool(spec.fim_template)
        self.max_length = max_length
        self._on_fault = on_fault
        self._gate = FaultGate(clock)
        self.model_name = spec.model
        self._probed = False
        self.requests = 0
        self.cancelled = 0
        self.in_flight = 0
        self.faults: Counter[str] = Counter()
        self.last_fault = ""

    @property
    def tokenizer(self) -> EngineTokenizer:
        return self._tokenizer

    @property
    def model(self) -> RemoteModel:
        name = self.model_name or "remote model"
        template = getattr(self._tokenizer, "template", None)
        counted = self.spec.tokenizer_dir or (template.name if template else "")
        fingerprint = (
            f"remote|{self.url}|{self.model_name}|{self.spec.fim}|{self.spec.healing}|{counted}"
        )
        return RemoteModel(name=f"{name} @ {self.endpoint.host}", fingerprint=fingerprint)

    @property
    def timeout_s(self) -> float:
        return self.spec.timeout_ms / 1000

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream, application/json"}
        key = os.environ.get(self.spec.api_key_env, "") if self.spec.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    # -- faults --------------------------------------------------------------------------------
    def report_fault(self, fault: RemoteFault) -> None:
        self.faults[fault.kind] += 1
        self.last_fault = fault.kind
        message = fault_message(fault, self.url, self.spec.timeout_ms)
        if self._gate.should_report(fault.kind):
            log.warning("%s", message)
            self._on_fault(message)
        else:
            log.info("remote fault again (%s): %s", fault.kind, fault.detail)

    def _answered(self) -> None:
        if self._gate.recovered():
            log.info("the completion server at %s answers again", self.url)

    # -- /models -------------------------------------------------------------------------------
    async def probe(self) -> RemoteFault | None:
        """Ask /models for the model's name (when remote.model is empty), its context and the
        FIM family its name says. Returns the fault, for the caller to report or not."""
        try:
            response = await http_request(
                self.endpoint, "GET", "/models", None, self._headers(), self.timeout_s
            )
            try:
                if response.status >= 400:
                    body = await _read_quietly(response, self.timeout_s)
                    return RemoteFault.from_http(response.status, response.reason, body, "/models")
                listing = _json(await response.read_body(1 << 20, self.timeout_s))
            finally:
                response.close()
        except RemoteFault as fault:
            return fault
        except (OSError, TimeoutError, ProtocolError, ValueError) as exc:
            return RemoteFault.from_exception(exc, answered=False)
        models = listing.get("data") if isinstance(listing, dict) else None
        entries = [m for m in models or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if not entries:
            return RemoteFault("malformed", "/models lists no model")
        entry = next((m for m in entries if m["id"] == self.spec.model), entries[0])
        self.model_name = self.spec.model or entry["id"]
        context = entry.get("max_model_len")
        if isinstance(context, int) and context > 0:
            self.max_length = min(self.max_length, context)
        if not self._fixed_tokenizer:
            template = template_for_model(self.model_name)
            if template is not None and template != getattr(self._tokenizer, "template", None):
                self._tokenizer = CharTokenizer(template)
        self._probed = True
        log.info("remote model %s at %s (fim=%s)", self.model_name, self.url, self.spec.fim)
        return None

    async def _probe_once(self) -> bool:
        """Probe until it worked once; False when the server cannot be reached (reported).
        A server without /models is asked for completions all the same."""
        fault = await self.probe()
        if fault is None:
            return True
        if fault.kind in TRANSPORT_FAULTS:
            self.report_fault(fault)
            return False
        log.info("no model listing at %s (%s); completions go on without it", self.url, fault)
        self._probed = True
        return True

    # -- generation ----------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """A completion from the server; a fault gives an empty result with finish "error".
        Cancelling the awaiting task closes the connection at once."""
        started = time.perf_counter()
        deadline = started + request.deadline_s if request.deadline_s else None
        self.requests += 1
        self.in_flight += 1
        grammar = self.spec.healing == "grammar"
        stream = _Stream(request, started, stop_texts(request, self._tokenizer), grammar)
        try:
            if not self._probed and not await self._probe_once():
                return stream.result("error")
            body = completion_body(
                request, self._tokenizer, self.spec.fim, self.model_name, self.max_length, grammar
            )
            finish = await self._stream(body, stream, deadline)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        except RemoteFault as fault:
            self.report_fault(fault)
            return stream.result("error")
        finally:
            self.in_flight -= 1
        self._answered()
        result = stream.result(finish)
        result.token_ids = self._tokenizer.encode(stream.text)  # as counted here, for the log
        return result

    def _limit(self, deadline: float | None) -> tuple[float, bool]:
        """The wait allowed for the next read, and whether the deadline (not the timeout) set it."""
        if deadline is None:
            return self.timeout_s, False
        left = max(0.0, deadline - time.perf_counter())
        return (left, True) if left < self.timeout_s else (self.timeout_s, False)

    async def _stream(
        self, body: dict[str, Any], stream: _Stream, deadline: float | None
    ) -> FinishReason:
        """Stream one completion into `stream`; its finish, or RemoteFault."""
        wait, _ = self._limit(deadline)
        payload = json.dumps(body).encode()
        headers = {**self._headers(), "Content-Type": "application/json"}
        response: Response | None = None
        try:
            try:
                response = await http_request(
                    self.endpoint, "POST", "/completions", payload, headers, wait
                )
            except (OSError, TimeoutError, ProtocolError, ValueError) as exc:
                raise RemoteFault.from_exception(exc, answered=False) from None
            if response.status >= 400:
                error = await _read_quietly(response, self.timeout_s)
                raise RemoteFault.from_http(response.status, response.reason, error)
            if response.content_type == "application/json":  # a server that ignored stream
                stream.add_event(_json(await response.read_body(1 << 22, wait)))
                return stream.finish or "stop"
            while True:
                wait, by_deadline = self._limit(deadline)
                try:
                    line = await response.read_line(wait)
                except TimeoutError:
                    if by_deadline:
                        return "deadline"
                    raise RemoteFault("slow", "") from None
                except (OSError, ProtocolError, ValueError) as exc:
                    raise RemoteFault.from_exception(exc, answered=True) from None
                if line is None:
                    if stream.finish is None:
                        raise RemoteFault("closed", "")
                    return stream.finish
                event = _sse_data(line)
                if event is None:
                    continue
                if event == "[DONE]":
                    return stream.finish or "stop"
                stream.add_event(_json(event.encode()))
                if stream.cut:  # a stop string: the rest is not wanted, so stop the server
                    return "stop"
        finally:
            if response is not None:
                response.close()

    def stats(self) -> dict[str, object]:
        return {
            "backend": "remote",
            "url": self.url,
            "model": self.model_name,
            "fim": self.spec.fim,
            "healing": self.spec.healing,
            "provider": PROVIDER,
            "max_length": self.max_length,
            "requests": self.requests,
            "cancelled": self.cancelled,
            "in_flight": self.in_flight,
            "faults": dict(self.faults),
            "last_fault": self.last_fault,
        }

    def close(self) -> None:
        """Nothing to stop: each request owns its connection, and a cancelled one closes it."""


class _Stream:
    """The answer as it streams in: the text, the stop strings found, the finish reason."""

    def __init__(
        self,
        request: GenerationRequest,
        started: float,
        stops: tuple[str, ...],
        grammar: bool = False,
    ) -> None:
        self.request = request
        self.started = started
        self.stops = stops
        # held by a grammar, the answer starts with the forced text: taken off as it arrives
        self.lead = request.forced_prefix if grammar else ""
        self.text = ""
        self.first_ms = 0.0
        self.events = 0
        self.finish: FinishReason | None = None
        self.cut = False

    def add_event(self, event: Any) -> None:
        """Take one completion chunk (or a whole answer)."""
        if isinstance(event, dict) and "error" in event:
            raise RemoteFault("http", _error_text(event["error"]))
        choices = event.get("choices") if isinstance(event, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise RemoteFault("malformed", "an event without choices")
        choice = choices[0]
        piece = choice.get("text", "")
        if not isinstance(piece, str):
            raise RemoteFault("malformed", "a choice without text")
        if self.lead:
            piece = self._take_lead(piece)
        if self.events == 0:
            self.first_ms = (time.perf_counter() - self.started) * 1000
        self.events += 1
        if not self.cut:
            self.text, self.cut = cut_at_stop(self.text + piece, self.stops)
        reason = choice.get("finish_reason")
        if self.cut:
            self.finish = "stop"
        elif reason == "length":
            self.finish = "length"
        elif isinstance(reason, str) and reason:
            self.finish = "stop"

    def _take_lead(self, piece: str) -> str:
        size = min(len(piece), len(self.lead))
        if piece[:size] != self.lead[:size]:
            raise RemoteFault(
                "malformed",
                "the answer does not start with the typed text: the server ignores `grammar`"
                ' (set remote.healing to "prompt")',
            )
        self.lead = self.lead[size:]
        return piece[size:]

    def result(self, finish: FinishReason) -> GenerationResult:
        text = "" if finish == "error" else self.request.forced_prefix + self.text
        total_ms = (time.perf_counter() - self.started) * 1000
        return GenerationResult(
            token_ids=[],
            text=text,
            finish_reason=finish,
            prompt_tokens=len(self.request.prompt_ids),
            reused_prompt_tokens=0,
            prefill_ms=self.first_ms,
            total_ms=total_ms,
            steps=self.events,
        )


def _sse_data(line: bytes) -> str | None:
    """The data of one server-sent-event line; None for blank, comment and other fields."""
    if not line.startswith(b"data:"):
        return None
    return line[5:].decode("utf-8", "replace").strip()


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise RemoteFault("malformed", f"not JSON: {data[:60]!r}") from None


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error)


async def _read_quietly(response: Response, timeout: float) -> bytes:
    try:
        return await response.read_body(ERROR_BODY_BYTES, timeout)
    except (OSError, TimeoutError, ProtocolError, ValueError):
        return b""


def _context_length(folder: Path) -> int:
    """The model's context from its config files, MAX_LENGTH when they do not say."""
    for name, keys in (
        ("genai_config.json", ("model", "context_length")),
        ("config.json", ("max_position_embeddings",)),
    ):
        try:
            value: Any = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int) and value > 0:
            return min(value, MAX_LENGTH)
    return MAX_LENGTH


def _tokenizer_for(spec: RemoteSpec) -> tuple[EngineTokenizer, int]:
    """The prompt's counter and the length of a request (blocking: reads modelPath's files).
    modelPath needs only the tokenizer (a Hugging Face download of the served model will do)."""
    folder = spec.tokenizer_dir
    if folder is not None:
        if not (folder / "tokenizer.json").is_file():
            raise RemoteSetupError(
                f"modelPath {folder} has no tokenizer.json",
                "With backend remote, set modelPath to a folder holding the served model's"
                " tokenizer.json, or leave it empty to count the prompt in characters.",
            )
        return Tokenizer.from_model_dir(folder), _context_length(folder)
    template: FimTemplate = QWEN  # the most common family; /models may name another
    if spec.fim_template:
        template = select_template((), spec.fim_template)
    return CharTokenizer(template), MAX_LENGTH


async def connect(spec: RemoteSpec, on_fault: Callable[[str], None]) -> ModelRouter[ServingEngine]:
    """A router over one remote engine for both tiers. Raises RemoteSetupError for settings
    that name no usable server; a server that does not answer yet is only reported."""
    if not spec.url:
        raise RemoteSetupError(
            "backend is remote but remote.url is empty",
            "Set remote.url to the server's base URL, e.g. http://gpu-box:8000/v1, or set"
            ' backend to "local".',
        )
    try:
        endpoint = Endpoint.parse(spec.url)
    except ValueError as exc:
        raise RemoteSetupError(
            f"remote.url: {exc}", "Set remote.url to a base URL such as http://gpu-box:8000/v1."
        ) from None
    if spec.api_key_env and not os.environ.get(spec.api_key_env):
        on_fault(
            f"flashcode: remote.apiKeyEnv names {spec.api_key_env}, which is not set in the"
            " server's environment; requests go without a key."
        )
    tokenizer, max_length = await asyncio.to_thread(_tokenizer_for, spec)
    engine = RemoteEngine(spec, endpoint, tokenizer, max_length, on_fault)
    fault = await engine.probe()
    if fault is not None:  # said now, so the user knows before the first completion
        engine.report_fault(fault)
    return ModelRouter[ServingEngine]({"primary": engine})
