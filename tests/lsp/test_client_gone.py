"""The editor dies while the server works for it: both pipes close with a completion decoding and
a run of generated tests in progress. The server must exit cleanly within 5 s and leave none of
the processes it started behind."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, e2e_model_dir

# A docstring example is a test the server writes without the model, and runs: this one sleeps
# for two minutes, so the run is still going when the editor dies.
SLOW = '''def slow_answer():
    """The answer, slowly.

    >>> slow_answer()
    42
    """
    import time

    time.sleep(120)
    return 42
'''
EXIT_LIMIT_S = 5.0

pytestmark = pytest.mark.skipif(not Path("/proc/self").exists(), reason="reads /proc")


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Editor:
    """The editor's ends of the server's pipes, written and read as raw JSON-RPC."""

    def __init__(self, write_fd: int, reader: asyncio.StreamReader, transport: Any) -> None:
        self.write_fd, self.reader, self.transport = write_fd, reader, transport

    def send(self, message: dict[str, Any]) -> None:
        os.write(self.write_fd, frame({"jsonrpc": "2.0", **message}))

    async def receive(self) -> dict[str, Any]:
        length = 0
        while True:
            line = await self.reader.readline()
            if not line:
                raise EOFError("the server closed its stdout")
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            if line == b"\r\n":
                return json.loads(await self.reader.readexactly(length))  # type: ignore[no-any-return]

    async def until(self, wanted: Any, timeout: float = 120) -> dict[str, Any]:
        """Messages are read (server requests answered with null) until one is `wanted`."""

        async def read() -> dict[str, Any]:
            while True:
                message = await self.receive()
                if "method" in message and "id" in message:
                    self.send({"id": message["id"], "result": None})
                if wanted(message):
                    return message

        return await asyncio.wait_for(read(), timeout)

    def die(self) -> None:
        """What the end of an editor's process does to the pipes: both close."""
        os.close(self.write_fd)
        self.transport.close()


def descendants(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of every process under `root`; the start time tells a PID reused."""
    parents: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    found: set[tuple[int, str]] = set()
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child[0])
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""  # gone meanwhile


def alive(process: tuple[int, str]) -> bool:
    try:
        stat = Path(f"/proc/{process[0]}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] == process[1] and fields[0] != "Z"


async def start(project: Path) -> tuple[asyncio.subprocess.Process, Editor]:
    to_server, server_stdin = os.pipe()
    server_stdout, from_server = os.pipe()
    cache = tempfile.mkdtemp(prefix="flashcode-e2e-cache-")  # never the user's cache
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lsp_server", "--model", str(e2e_model_dir()),
        stdin=to_server, stdout=from_server, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT), "FLASHCODE_CACHE__DIRECTORY": cache},
    )  # fmt: skip
    os.close(to_server)
    os.close(from_server)
    reader = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(server_stdout, "rb")
    )
    return server, Editor(server_stdin, reader, transport)


async def test_the_server_exits_at_once_and_stops_its_work_when_the_editor_dies(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "slow"\nversion = "0"\n')
    module = project / "slow.py"
    module.write_text(SLOW)
    server, editor = await start(project)
    try:
        editor.send(
            {"id": 1, "method": "initialize",
             "params": {"processId": None, "rootUri": project.as_uri(), "capabilities": {},
                        "initializationOptions": {"flashcode": {
                            "maxNewTokens": 1024, "deadlineMs": 120000,
                            "cache": {"enabled": False}}}}}
        )  # fmt: skip
        await editor.until(lambda m: m.get("id") == 1)
        editor.send({"method": "initialized", "params": {}})
        await editor.until(
            lambda m: m.get("method") == "flashcode/status" and m["params"]["state"] == "ready"
        )
        uri = module.as_uri()
        editor.send(
            {"method": "textDocument/didOpen",
             "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                         "text": SLOW}}}
        )  # fmt: skip
        editor.send(
            {"id": 2, "method": "workspace/executeCommand",
             "params": {"command": "flashcode.generateTests",
                        "arguments": [uri, {"line": 0, "character": 4}]}}
        )  # fmt: skip
        # Until the server runs the generated tests (the sandbox, under the server).
        deadline = time.monotonic() + 120
        while not any(b"sandbox.py" in cmdline(pid) for pid, _ in descendants(server.pid)):
            assert time.monotonic() < deadline, "the generated tests never ran"
            await asyncio.sleep(0.1)
        editor.send(
            {"id": 3, "method": "textDocument/inlineCompletion",
             "params": {"textDocument": {"uri": uri}, "position": {"line": 10, "character": 0},
                        "context": {"triggerKind": 1}}}
        )  # fmt: skip
        await asyncio.sleep(0.2)  # the completion is in the model now
        started = descendants(server.pid)
        assert started, "the server had no process of its own running"
        editor.die()
        exited_at = time.monotonic()
        code = await asyncio.wait_for(server.wait(), EXIT_LIMIT_S)
        assert time.monotonic() - exited_at < EXIT_LIMIT_S
        assert code == 1  # LSP's code for an end without a shutdown request
        assert [process for process in started if alive(process)] == []
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
