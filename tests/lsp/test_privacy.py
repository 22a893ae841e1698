"""Nothing leaves the machine and nothing the user wrote reaches the log: a whole session with
the default settings (workspace pass, completions, a docstring, test generation's discovery),
watched by an audit hook in the server process. With backend=remote the one connection it
makes is to remote.url (an OpenAI-compatible server in this process, answering from the
embedded model)."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from inference.engine import Engine
from tests.conftest import ROOT, e2e_model_dir
from tests.lsp.harness import REPR, end_of, inline_completion, open_document, stats, watch_status
from tests.lsp.openai_server import OpenAIServer, free_port

SCRATCH = Path(tempfile.mkdtemp(prefix="flashcode-privacy-"))
AUDIT, LOG, CACHE = SCRATCH / "network.txt", SCRATCH / "server.log", SCRATCH / "cache"
PROJECT = SCRATCH / "project"
REMOTE_AUDIT, REMOTE_LOG = SCRATCH / "remote-network.txt", SCRATCH / "remote-server.log"
REMOTE_PORT = free_port()
SECRET_VALUE = "tok-4f1c9e2b7a6d"  # appears only in the secret-looking file
MARKER = "zebra_quartz_mango"  # appears only in an ordinary document


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[
            sys.executable,
            str(ROOT / "tests" / "lsp" / "audited_server.py"),
            "--model",
            str(e2e_model_dir()),
        ],
        server_env={
            "PYTHONPATH": str(ROOT),
            "FLASHCODE_CACHE__DIRECTORY": str(CACHE),
            "FLASHCODE_TEST_AUDIT": str(AUDIT),
            "FLASHCODE_TEST_LOG": str(LOG),
        },
    ),
    scope="module",
)
async def client(lsp_client: LanguageClient) -> Any:
    PROJECT.mkdir(parents=True, exist_ok=True)
    (PROJECT / "models.py").write_text(REPR + "self.name\n", encoding="utf-8")
    lsp_client.status = watch_status(lsp_client)  # type: ignore[attr-defined]

    @lsp_client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def accept_registration(_client: LanguageClient, params: types.RegistrationParams) -> None:
        """As VS Code does: the server registers for watched files in the workspace."""

    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=PROJECT.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=PROJECT.as_uri(), name="project")],
        )
    )
    await lsp_client.status.wait_for("ready")  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_a_session_opens_no_network_socket_and_logs_no_document_text(
    client: LanguageClient,
) -> None:
    secret = f'API_TOKEN = "{SECRET_VALUE}"\n\n\n' + REPR
    secret_uri = open_document(client, str(PROJECT / "credentials.py"), secret)
    ordinary = f"{MARKER} = 1\n\n\n" + REPR
    uri = open_document(client, str(PROJECT / "user.py"), ordinary)
    assert await inline_completion(client, uri, end_of(ordinary))
    await inline_completion(client, secret_uri, end_of(secret))
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(line=7, character=8), end=end_of(ordinary)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert actions, "the docstring action is offered, so its code path ran"
    await client.code_action_resolve_async(actions[0])  # type: ignore[arg-type]
    report = await stats(client)
    assert report["completions"]["requests"] >= 2
    # The log is flushed line by line; everything up to the last answer is in the file.
    log = LOG.read_text(encoding="utf-8")
    assert "completion" in log, "the log file is the server's log"
    assert SECRET_VALUE not in log and MARKER not in log
    network = AUDIT.read_text(encoding="utf-8") if AUDIT.exists() else ""
    assert network == ""


async def test_the_cache_and_the_usage_file_are_readable_by_the_user_only(
    client: LanguageClient,
) -> None:
    uri = open_document(client, str(PROJECT / "again.py"), REPR)
    assert await inline_completion(client, uri, end_of(REPR))
    assert (await stats(client))["usage"]["requested"] >= 1  # a report writes what is pending
    files = [path for path in CACHE.rglob("*")]
    assert any(path.is_file() for path in files), "the session wrote its cache"
    assert any(p.parent == CACHE / "usage" for p in files), "the session wrote its usage"
    if os.name == "posix":
        shared = [p for p in files if stat.S_IMODE(p.stat().st_mode) & 0o077]
        assert shared == []


async def test_the_usage_file_holds_counts_never_code_or_file_names(
    client: LanguageClient,
) -> None:
    assert (await stats(client))["usage"]["shown"] >= 1
    months = sorted((CACHE / "usage").glob("*.json"))
    assert months, "the session wrote its usage"
    stored = "".join(month.read_text(encoding="utf-8") for month in months)
    for written in (SECRET_VALUE, MARKER, "self.name", "credentials", "user.py", "project"):
        assert written not in stored, written


@pytest.fixture(scope="module")
def remote_server() -> Any:
    with Engine.load(e2e_model_dir()) as engine:
        server = OpenAIServer(engine, REMOTE_PORT)
        server.start()
        yield server
        server.stop()


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, str(ROOT / "tests" / "lsp" / "audited_server.py")],
        server_env={
            "PYTHONPATH": str(ROOT),
            "FLASHCODE_CACHE__DIRECTORY": str(SCRATCH / "remote-cache"),
            "FLASHCODE_TEST_AUDIT": str(REMOTE_AUDIT),
            "FLASHCODE_TEST_LOG": str(REMOTE_LOG),
            "FLASHCODE_BACKEND": "remote",
            "FLASHCODE_REMOTE__URL": f"http://127.0.0.1:{REMOTE_PORT}/v1",
        },
    ),
    scope="module",
)
async def remote_client(lsp_client: LanguageClient, remote_server: OpenAIServer) -> Any:
    lsp_client.status = watch_status(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities("visual-studio-code"))
    )
    await lsp_client.status.wait_for("ready")  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_with_backend_remote_the_only_connection_is_to_remote_url(
    remote_client: LanguageClient, remote_server: OpenAIServer
) -> None:
    ordinary = f"{MARKER} = 1\n\n\n" + REPR
    uri = open_document(remote_client, str(SCRATCH / "remote-user.py"), ordinary)
    assert await inline_completion(remote_client, uri, end_of(ordinary))
    actions = await remote_client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(line=7, character=8), end=end_of(ordinary)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert actions, "the docstring action is offered"
    await remote_client.code_action_resolve_async(actions[0])  # type: ignore[arg-type]
    assert len(remote_server.record.bodies) >= 2, "completion and docstring asked the server"
    events = REMOTE_AUDIT.read_text(encoding="utf-8").splitlines()
    assert events, "the audit hook saw the connections"
    elsewhere = [e for e in events if f"'127.0.0.1', {REMOTE_PORT}" not in e]
    assert elsewhere == []
    assert MARKER not in REMOTE_LOG.read_text(encoding="utf-8")
