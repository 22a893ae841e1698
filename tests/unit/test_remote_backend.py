"""The remote backend's pure parts: the character budget, the request body built from token ids,
stop strings, what a fault tells the user and how often, the HTTP reader, and its settings."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from inference.router import default_model_dir
from inference.scheduler import GenerationRequest
from inference.tokenizer import Tokenizer
from lsp_server.backends.char_tokenizer import CharTokenizer
from lsp_server.backends.http_stream import Endpoint, request
from lsp_server.backends.remote import RemoteSetupError, RemoteSpec, _Stream, connect
from lsp_server.backends.remote_faults import FaultGate, RemoteFault, fault_message
from lsp_server.backends.remote_prompt import (
    completion_body,
    cut_at_stop,
    forced_start_grammar,
    prompt_and_suffix,
    stop_texts,
    template_for_model,
)
from lsp_server.settings import merge
from prompts.fim import CODELLAMA, DEEPSEEK, QWEN, STARCODER

URL = "http://gpu-box:8000/v1"


def fim_ids(tokenizer: CharTokenizer | Tokenizer, prefix: str, suffix: str) -> tuple[int, ...]:
    special = tokenizer.special_tokens
    return (
        special["<|fim_prefix|>"],
        *tokenizer.encode(prefix),
        special["<|fim_suffix|>"],
        *tokenizer.encode(suffix),
        special["<|fim_middle|>"],
    )


def test_the_character_budget_counts_a_token_per_three_ascii_characters() -> None:
    tokenizer = CharTokenizer(QWEN)
    assert len(tokenizer.encode("return self.name")) == 6  # 16 characters
    assert len(tokenizer.encode("naïve")) == 3  # "na", "ï", "ve"


@pytest.mark.parametrize("text", ["def f(x):\n    return x\n", "naïve 😀 ü\t", "", "ab"])
def test_the_character_budget_decodes_what_it_encoded(text: str) -> None:
    tokenizer = CharTokenizer(QWEN)
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert all(0 <= i < 2**32 for i in ids), "the exact cache packs ids in 32 bits"


def test_the_character_budget_knows_its_templates_special_tokens() -> None:
    tokenizer = CharTokenizer(DEEPSEEK)
    assert tokenizer.token_id(DEEPSEEK.prefix_token) is not None
    assert tokenizer.token_id("<|fim_prefix|>") is None
    assert tokenizer.eos_token_ids == {tokenizer.special_tokens[DEEPSEEK.stop_tokens[0]]}


def test_suffix_mode_sends_the_text_before_and_after_the_hole() -> None:
    tokenizer = CharTokenizer(QWEN)
    ids = fim_ids(tokenizer, "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n")
    prompt, suffix = prompt_and_suffix(ids, tokenizer, "suffix")
    assert prompt == "def add(a, b):\n    return "
    assert suffix == "\n\nprint(add(1, 2))\n"


def test_raw_mode_sends_the_templated_prompt_with_the_tokens_spelled_out() -> None:
    tokenizer = Tokenizer.from_model_dir(default_model_dir())
    ids = fim_ids(tokenizer, "x = ", "\n")
    prompt, suffix = prompt_and_suffix(ids, tokenizer, "raw")
    assert prompt == "<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>"
    assert suffix is None


def test_a_prompt_without_fim_tokens_is_sent_whole_and_a_bos_is_left_to_the_server() -> None:
    tokenizer = CharTokenizer(CODELLAMA)
    ids = (tokenizer.special_tokens["<s>"], *tokenizer.encode("import os\n"))
    assert prompt_and_suffix(ids, tokenizer, "suffix") == ("import os\n", None)


def test_the_body_puts_the_healed_text_back_and_holds_the_answer_to_the_length() -> None:
    tokenizer = CharTokenizer(QWEN)
    request = GenerationRequest(
        prompt_ids=fim_ids(tokenizer, "return self.", "\n"),
        max_new_tokens=64,
        stop_strings=("\n", "\ndef ", "\nclass ", "\nif ", "\n@"),
        forced_prefix="na",
        seed=3,
    )
    body = completion_body(request, tokenizer, "suffix", "qwen", max_length=40)
    assert body["prompt"] == "return self.na" and body["suffix"] == "\n"
    assert body["stream"] is True and body["model"] == "qwen" and body["seed"] == 3
    assert body["stop"] == ["\n", "\ndef ", "\nclass ", "\nif "]  # OpenAI takes four
    assert body["max_tokens"] == 40 - len(request.prompt_ids)


def test_with_a_grammar_the_prompt_stays_backed_off_and_the_answer_is_held_to_the_typed_text() -> (
    None
):
    tokenizer = CharTokenizer(QWEN)
    healed = GenerationRequest(
        prompt_ids=fim_ids(tokenizer, "return self.", "\n"), forced_prefix="na"
    )
    body = completion_body(healed, tokenizer, "suffix", "qwen", max_length=40, grammar=True)
    assert body["prompt"] == "return self." and body["grammar"] == 'root ::= "na" [^\\x00]*'
    whole = GenerationRequest(prompt_ids=fim_ids(tokenizer, "return self.", "\n"))
    assert "grammar" not in completion_body(whole, tokenizer, "suffix", "qwen", 40, grammar=True)


def test_the_grammar_spells_quotes_backslashes_tabs_and_non_ascii_as_code_points() -> None:
    assert forced_start_grammar('f"\\') == 'root ::= "f\\x22\\x5C" [^\\x00]*'
    assert forced_start_grammar("\té😀") == 'root ::= "\\x09\\xE9\\U0001F600" [^\\x00]*'


def test_a_grammar_held_answer_is_reported_once_and_a_server_ignoring_it_is_named() -> None:
    request = GenerationRequest(prompt_ids=(1,), forced_prefix="sel", stop_strings=("\n",))
    stream = _Stream(request, 0.0, ("\n",), grammar=True)
    for piece in ("se", "lf.items", ".append(item)\nx"):
        stream.add_event({"choices": [{"text": piece}]})
    assert stream.result("stop").text == "self.items.append(item)"
    ignoring = _Stream(request, 0.0, (), grammar=True)
    with pytest.raises(RemoteFault, match=r"remote\.healing"):
        ignoring.add_event({"choices": [{"text": "items"}]})


def test_every_stop_ends_the_streamed_text_even_those_the_server_was_not_sent() -> None:
    tokenizer = CharTokenizer(QWEN)
    request = GenerationRequest(
        prompt_ids=(1,),
        stop_strings=("a", "b", "c", "d", "\n@"),
        stop_token_ids=frozenset({tokenizer.special_tokens["<|file_sep|>"]}),
    )
    stops = stop_texts(request, tokenizer)
    assert cut_at_stop("x = 1\n@property", stops) == ("x = 1", True)
    assert cut_at_stop("x<|file_sep|>y", stops) == ("x", True)
    assert cut_at_stop("x = 1", ()) == ("x = 1", False)


@pytest.mark.parametrize(
    ("name", "template"),
    [
        ("Qwen/Qwen2.5-Coder-1.5B", QWEN),
        ("qwen2.5-coder:1.5b-base", QWEN),
        ("bigcode/starcoder2-3b", STARCODER),
        ("deepseek-ai/deepseek-coder-1.3b-base", DEEPSEEK),
        ("codellama/CodeLlama-7b-hf", CODELLAMA),
        ("my-model", None),
    ],
)
def test_a_served_models_name_says_its_fim_family(name: str, template: object) -> None:
    assert template_for_model(name) == template


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (RemoteFault.from_exception(ConnectionRefusedError(), answered=False), "Start the server"),
        (
            RemoteFault.from_exception(OSError("Multiple exceptions: [Errno 111] x"), False),
            "refused",
        ),
        (RemoteFault.from_exception(TimeoutError(), answered=False), "remote.timeoutMs"),
        (RemoteFault.from_exception(TimeoutError(), answered=True), "stopped sending"),
        (RemoteFault.from_http(401, "Unauthorized", b""), "remote.apiKeyEnv"),
        (RemoteFault.from_http(404, "Not Found", b""), "/v1"),
        (RemoteFault.from_http(400, "Bad Request", b'{"error": {"message": "no suffix"}}'), "raw"),
        (RemoteFault.from_http(500, "Internal Server Error", b"boom"), "server's log"),
        (RemoteFault("malformed", "not JSON"), "OpenAI-compatible"),
    ],
)
def test_each_fault_names_the_url_and_a_fix(fault: RemoteFault, words: str) -> None:
    message = fault_message(fault, URL, 5000)
    assert URL in message and words in message


def test_the_servers_error_message_is_kept_short() -> None:
    fault = RemoteFault.from_http(
        400, "Bad Request", b'{"error": {"message": "' + b"x" * 500 + b'"}}'
    )
    assert len(fault.detail) < 200 and fault.detail.startswith("HTTP 400 Bad Request: xxx")


def test_a_fault_is_said_once_per_outage_and_again_after_a_minute_or_a_recovery() -> None:
    now = [0.0]
    gate = FaultGate(lambda: now[0])
    assert gate.should_report("refused")
    now[0] = 30.0
    assert not gate.should_report("refused")
    assert gate.should_report("timeout"), "another kind of fault needs another fix"
    now[0] = 100.0
    assert gate.should_report("timeout"), "a reminder a minute later"
    assert gate.recovered()
    assert not gate.recovered()
    assert gate.should_report("timeout"), "a new outage"


def test_a_base_url_names_its_endpoint() -> None:
    assert Endpoint.parse(URL) == Endpoint("http", "gpu-box", 8000, "/v1")
    assert Endpoint.parse("https://api.example.com/v1/").url("/models") == (
        "https://api.example.com/v1/models"
    )
    for bad in ("gpu-box:8000", "ftp://x/v1", "http:///v1", "http://x:99999/v1"):
        with pytest.raises(ValueError):
            Endpoint.parse(bad)


async def test_a_chunked_event_stream_is_read_line_by_line() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b'data: {"a": 1}\n\ndata: [DONE]\n\n'
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:7], body[7:]))
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        response = await request(
            Endpoint("http", "127.0.0.1", port, "/v1"), "GET", "/x", None, {}, 5
        )
        lines = []
        while (line := await response.read_line(5)) is not None:
            lines.append(line)
        response.close()
    assert response.status == 200
    assert lines == [b'data: {"a": 1}', b"", b"data: [DONE]", b""]


def test_the_remote_settings_have_environment_forms(tmp_path: Path) -> None:
    settings, problems = merge(
        environ={
            "FLASHCODE_BACKEND": "remote",
            "FLASHCODE_REMOTE__URL": URL,
            "FLASHCODE_REMOTE__API_KEY_ENV": "TEAM_KEY",
            "FLASHCODE_REMOTE__TIMEOUT_MS": "2500",
            "FLASHCODE_REMOTE__FIM": "raw",
        },
        config_file=tmp_path / "none.json",
    )
    assert problems == []
    assert settings.backend == "remote"
    assert (settings.remote.url, settings.remote.api_key_env) == (URL, "TEAM_KEY")
    assert (settings.remote.timeout_ms, settings.remote.fim) == (2500, "raw")


def test_a_wrong_remote_setting_is_reported_and_replaced_by_its_default(tmp_path: Path) -> None:
    settings, problems = merge(
        {"backend": "cloud", "remote": {"fim": "both", "timeoutMs": 5}},
        environ={},
        config_file=tmp_path / "none.json",
    )
    assert settings.backend == "local" and settings.remote.fim == "suffix"
    assert settings.remote.timeout_ms == 5000
    assert len(problems) == 3 and any("remote.fim" in p for p in problems)


def remote_spec(tokenizer_dir: Path | None) -> RemoteSpec:
    return RemoteSpec("http://127.0.0.1:1/v1", "", "", 1000, "raw", "", tokenizer_dir)


async def test_modelpath_needs_only_the_served_models_tokenizer(tmp_path: Path) -> None:
    shutil.copy(default_model_dir() / "tokenizer.json", tmp_path)
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 2048}', encoding="utf-8")
    said: list[str] = []
    router = await connect(remote_spec(tmp_path), said.append)
    engine = router.primary
    assert isinstance(engine.tokenizer, Tokenizer) and engine.max_length == 2048
    assert len(said) == 1 and "refused the connection" in said[0], "a down server is told at once"


async def test_modelpath_without_a_tokenizer_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(RemoteSetupError) as refused:
        await connect(remote_spec(tmp_path), lambda _: None)
    assert "tokenizer.json" in str(refused.value) and "modelPath" in refused.value.fix
