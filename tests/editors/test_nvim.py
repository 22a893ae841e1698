"""Neovim with editors/nvim against the real server: what a user sees and gets.

One `nvim --embed --headless` (driven over its RPC API by pynvim) and one server per module; every
test opens its own file. Keys go in through nvim_input, exactly as typed keys do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.editors.conftest import (
    NVIM_PLUGIN,
    missing,
    nvim_binary,
    server_command,
    server_settings,
    wait_for,
)

try:
    import pynvim
except ImportError:  # pragma: no cover - depends on the machine
    missing("pynvim (which drives Neovim) is not installed")

LOAD_TIMEOUT = 180.0  # the model loads while another one may be training on the same two cores
SUGGESTION_TIMEOUT = 60.0

# The file the tests type into (shared with the VS Code test).
MODULE = (Path(__file__).parent / "sample" / "geometry.py").read_text()

# A key mapping that another plugin (a completion menu, say) put on <Tab> before flashcode.
INIT_LUA = """
vim.opt.runtimepath:prepend({plugin})
vim.opt.swapfile = false
vim.opt.shortmess:append("IF")
vim.keymap.set("i", "<Tab>", function() return "<<other-tab>>" end, {{ expr = true }})
require("flashcode").setup({{
  cmd = vim.json.decode({cmd}),
  settings = vim.json.decode({settings}),
  suggestion = {{ debounce_ms = 50 }},
  log = {{ file = {log}, level = "debug" }},
}})
"""

# Reads the ghost text back from the buffer's extmarks: the first line is inline virtual text at
# the cursor, the others are virtual lines below it.
GHOST_LUA = """
local ns = vim.api.nvim_get_namespaces()["flashcode.ghost"]
if not ns then return vim.NIL end
local marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
if #marks == 0 then return vim.NIL end
local m = marks[1]
local lines = {}
local first = {}
for _, chunk in ipairs(m[4].virt_text or {}) do table.insert(first, chunk[1]) end
table.insert(lines, table.concat(first))
for _, vl in ipairs(m[4].virt_lines or {}) do
  local parts = {}
  for _, chunk in ipairs(vl) do table.insert(parts, chunk[1]) end
  table.insert(lines, table.concat(parts))
end
return { row = m[2], col = m[3], text = table.concat(lines, "\\n"), count = #marks }
"""


def line_of(start: str) -> int:
    """1-based number of the line of MODULE that starts with `start`."""
    return next(i for i, line in enumerate(MODULE.splitlines(), 1) if line.startswith(start))


def lua_str(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nvim-project")
    (root / "pyproject.toml").write_text('[project]\nname = "geometry"\nversion = "0"\n')
    return root


@pytest.fixture(scope="module")
def nvim(workspace: Path, editor_env: dict[str, str]) -> Iterator[Any]:
    binary = nvim_binary()
    log_file = workspace.parent / "flashcode-nvim.log"
    init = workspace.parent / "init.lua"
    init.write_text(
        INIT_LUA.format(
            plugin=lua_str(str(NVIM_PLUGIN)),
            cmd=lua_str(json.dumps(server_command())),
            settings=lua_str(json.dumps(server_settings())),
            log=lua_str(str(log_file)),
        )
    )
    argv = ["env", "-i", *(f"{k}={v}" for k, v in editor_env.items())]
    argv += [binary, "--embed", "--headless", "-n", "-i", "NONE", "-u", str(init)]
    session = pynvim.attach("child", argv=argv)
    session.command(f"cd {workspace}")
    try:
        yield session
    finally:
        try:
            session.exec_lua("require('flashcode.client').stop()")
            wait_for(
                lambda: session.exec_lua("return #require('flashcode.client').all() == 0"),
                "the server to stop",
                timeout=10,
            )
        finally:
            session.close()
        if log_file.exists():
            print(log_file.read_text()[-4000:])


@pytest.fixture
def buffer(nvim: Any, workspace: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh Python file open in normal mode, with the server attached and its model ready."""
    # Not test_*.py: the server (rightly) treats those as tests, not as code to test.
    path = workspace / f"{request.node.name.removeprefix('test_')}.py"
    path.write_text(MODULE)
    nvim.input("<Esc>")
    nvim.command(f"edit {path}")
    wait_for(
        lambda: nvim.exec_lua("return require('flashcode').status().state == 'ready'"),
        "the server to report ready",
        timeout=LOAD_TIMEOUT,
    )
    return path


def ghost(nvim: Any) -> dict[str, Any] | None:
    result = nvim.exec_lua(GHOST_LUA)
    return result or None


def lines(nvim: Any) -> list[str]:
    return list(nvim.current.buffer[:])


def type_and_wait_for_ghost(nvim: Any, keys: str) -> dict[str, Any]:
    nvim.input(keys)
    return wait_for(lambda: ghost(nvim), "ghost text in the buffer's extmarks", SUGGESTION_TIMEOUT)


def server_stats(nvim: Any) -> dict[str, Any]:
    stats = nvim.exec_lua(
        """local client = require("flashcode.client").all()[1]
           local answer = client:request_sync("flashcode/stats", vim.empty_dict(), 5000)
           return answer and answer.result or vim.NIL"""
    )
    return stats or {}


def accepted_count(nvim: Any) -> int:
    return int(server_stats(nvim).get("completions", {}).get("accepted", 0))


def usage_accepted(nvim: Any) -> int:
    return int(server_stats(nvim).get("usage", {}).get("accepted", 0))


def in_insert_mode(nvim: Any) -> bool:
    return bool(nvim.api.get_mode()["mode"] == "i")


def new_line_after_function(nvim: Any) -> str:
    """Keys that open a new function body at the end of the file."""
    return "Go<CR>def median(values: list[float]) -> float:<CR>"


def test_ghost_text_appears_after_typing_and_tab_accepts_it(nvim: Any, buffer: Path) -> None:
    shown = type_and_wait_for_ghost(nvim, new_line_after_function(nvim))
    assert in_insert_mode(nvim)
    row, col = nvim.current.window.cursor
    assert (shown["row"], shown["col"]) == (row - 1, col), "ghost text sits at the cursor"
    before = lines(nvim)
    first_line = shown["text"].split("\n")[0]
    assert first_line.strip(), "the suggestion starts on the cursor's line"
    assert first_line not in before[row - 1], "ghost text is not in the buffer yet"

    nvim.input("<Tab>")
    expected_first = before[row - 1][:col] + first_line
    wait_for(lambda: lines(nvim)[row - 1] == expected_first, "the suggestion's first line inserted")
    text = "\n".join(lines(nvim))
    assert shown["text"].replace("\t", " " * 8) in text.replace("\t", " " * 8)
    assert "<<other-tab>>" not in text, "Tab accepted the suggestion instead of its old mapping"


def test_accepting_tells_the_server(nvim: Any, buffer: Path) -> None:
    """The item's command (flashcode.acceptCompletion) reaches the server, for its statistics."""
    before = accepted_count(nvim)
    type_and_wait_for_ghost(nvim, new_line_after_function(nvim))
    nvim.input("<Tab>")
    wait_for(lambda: accepted_count(nvim) > before, "the server to count the accepted suggestion")


def test_flashcode_stats_shows_the_accepted_suggestion_in_the_usage_report(
    nvim: Any, buffer: Path
) -> None:
    before = usage_accepted(nvim)
    type_and_wait_for_ghost(nvim, new_line_after_function(nvim))
    nvim.input("<Tab>")
    wait_for(lambda: usage_accepted(nvim) == before + 1, "the usage report to count the accept")
    nvim.input("<Esc>")
    nvim.exec_lua(
        """vim.g.stats_done = nil
           vim.api.nvim_create_autocmd("User", { pattern = "FlashcodeStats", once = true,
             callback = function() vim.g.stats_done = true end })"""
    )
    nvim.command("Flashcode stats")
    wait_for(lambda: nvim.exec_lua("return vim.g.stats_done"), "the stats split")
    report = lines(nvim)
    nvim.command("close")
    assert report[0].startswith("flashcode usage, "), report
    totals = next(line.split() for line in report if line.startswith("all "))
    assert int(totals[3]) == before + 1, "the accepted column counts the accept"
    assert any(line.startswith("python ") for line in report), "a row per language"
    assert any(line.startswith("cost avoided: ") for line in report)


def test_accept_word_inserts_one_word_and_keeps_the_rest(nvim: Any, buffer: Path) -> None:
    shown = type_and_wait_for_ghost(nvim, new_line_after_function(nvim))
    row, col = nvim.current.window.cursor
    nvim.input("<C-Right>")
    line = wait_for(
        lambda: (lambda s: s if len(s) > col else None)(lines(nvim)[row - 1]),
        "one word inserted",
    )
    inserted = line[col:]
    assert inserted.strip(), "a word was inserted"
    assert shown["text"].startswith(inserted)
    if len(inserted) < len(shown["text"]):
        rest = wait_for(lambda: ghost(nvim), "the rest of the suggestion still shown")
        assert shown["text"] == inserted + rest["text"]


def test_accept_line_inserts_up_to_the_end_of_the_line(nvim: Any, buffer: Path) -> None:
    shown = type_and_wait_for_ghost(nvim, new_line_after_function(nvim))
    row, _ = nvim.current.window.cursor
    first = shown["text"].split("\n")[0] or shown["text"].split("\n")[1]
    nvim.input("<C-Down>")
    wait_for(lambda: first in "\n".join(lines(nvim)[row - 1 :]), "the first line inserted")
    if "\n" in shown["text"].strip("\n"):
        assert shown["text"].split("\n", 2)[-1] not in "\n".join(lines(nvim)[row:]), (
            "only one line was accepted"
        )


def test_dismiss_hides_the_ghost_text_and_tab_falls_back(nvim: Any, buffer: Path) -> None:
    type_and_wait_for_ghost(nvim, new_line_after_function(nvim))
    before = lines(nvim)
    nvim.input("<C-]>")
    wait_for(lambda: ghost(nvim) is None, "the ghost text gone")
    assert lines(nvim) == before, "dismissing changes no text"
    row, _ = nvim.current.window.cursor

    # With nothing shown, <Tab> does what it did before setup(): here another plugin's mapping.
    nvim.input("<Tab>")
    wait_for(lambda: "<<other-tab>>" in lines(nvim)[row - 1], "the previous <Tab> mapping to run")


def test_leaving_insert_mode_clears_the_ghost_text(nvim: Any, buffer: Path) -> None:
    type_and_wait_for_ghost(nvim, new_line_after_function(nvim))
    before = lines(nvim)
    nvim.input("<Esc>")
    wait_for(lambda: ghost(nvim) is None, "the ghost text gone after <Esc>")
    # <Esc> drops the auto-indent of the empty line, nothing else.
    assert [line.rstrip() for line in lines(nvim)] == [line.rstrip() for line in before]


def test_status_names_the_model_and_device(nvim: Any, buffer: Path) -> None:
    status = nvim.exec_lua("return require('flashcode').status()")
    assert status["state"] == "ready"
    assert status["model"]
    assert status["device"]
    assert nvim.exec_lua("return require('flashcode').statusline()").startswith("flashcode")


def test_generate_tests_command_writes_a_test_file(
    nvim: Any, buffer: Path, workspace: Path
) -> None:
    existing = set(workspace.rglob("test_*.py"))
    nvim.exec_lua(
        """vim.g.tests_done = nil
           vim.api.nvim_create_autocmd("User", { pattern = "FlashcodeTestsDone", once = true,
             callback = function(ev) vim.g.tests_done = ev.data end })"""
    )
    nvim.command(f"call cursor({line_of('def area(')}, 5)")
    nvim.command("FlashcodeGenerateTests")

    def written() -> tuple[Path, str] | None:
        for path in set(workspace.rglob("test_*.py")) - existing:
            # The server may leave the new file in an unsaved buffer (workspace/applyEdit).
            number = nvim.funcs.bufnr(str(path))
            if number > 0 and nvim.api.buf_is_loaded(number):
                text = "\n".join(nvim.api.buf_get_lines(number, 0, -1, False))
            else:
                text = path.read_text()
            if "def test" in text:
                return path, text
        done = nvim.vars.get("tests_done")
        if done and (done.get("error") or not done["result"].get("written")):
            raise AssertionError(f"no tests were written: {done}")
        return None

    path, text = wait_for(written, "a test file with a test function", timeout=300)
    assert "area" in text, f"{path.name} tests the function under the cursor"


def test_docstring_code_action_inserts_a_docstring(nvim: Any, buffer: Path) -> None:
    nvim.command(f"call cursor({line_of('def mean(')}, 5)")  # mean() has no docstring
    before = lines(nvim)
    nvim.exec_lua(
        """vim.lsp.buf.code_action({
             filter = function(a) return a.title == "Insert docstring" end, apply = true })"""
    )
    after = wait_for(
        lambda: (lambda now: now if now != before else None)(lines(nvim)),
        "the docstring to be inserted",
        timeout=300,
    )
    start = after.index("def mean(values: list[float]) -> float:")
    assert after[start + 1].strip().startswith(('"""', "'''", 'r"""')), after[start : start + 4]


def test_checkhealth_reports_a_running_server(nvim: Any, buffer: Path) -> None:
    nvim.command("checkhealth flashcode")
    report = "\n".join(nvim.current.buffer[:])
    nvim.command("bwipeout")
    assert "server command" in report
    assert "server running" in report
    assert "status: ready" in report
    assert "ERROR" not in report


def test_setup_rejects_a_bad_option_by_name(nvim: Any) -> None:
    message = nvim.exec_lua(
        """local ok, err = pcall(require("flashcode.config").resolve,
             { suggestion = { debounce_ms = "soon" } })
           return ok and "" or tostring(err)"""
    )
    assert "debounce_ms" in message


def test_a_resting_cursor_tells_the_server_which_prompt_to_warm(nvim: Any, buffer: Path) -> None:
    """CursorHold sends flashcode/cursor: the server prefills the prompt at that cursor."""

    def settled() -> int | None:
        """The warms scheduled so far, once each has ended (the file's own, on open)."""
        warm = server_stats(nvim)["warm"]
        done = warm["scheduled"] >= 1 and warm["warmed"] + warm["dropped"] == warm["scheduled"]
        return int(warm["scheduled"]) if done else None

    before = wait_for(settled, "the warm of the file just opened")
    nvim.command("set updatetime=100")
    nvim.command(f"normal! {line_of('def scale')}G$")
    wait_for(
        lambda: int(server_stats(nvim)["warm"]["scheduled"]) > before,
        "the server to warm the prompt at the resting cursor",
    )
