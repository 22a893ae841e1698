"""The boundaries DESIGN.md draws, checked on the source: which package may import which, where
the protocol is spoken, no import cycle, no module too long to read."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("lsp_server", "prompts", "inference", "benchmarks")
EDGE = ("lsp_server.server", "lsp_server.transport", "lsp_server.features")
PROTOCOL = ("pygls", "lsprotocol")
MAX_LINES = 500


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    assert len(found) > 50, "the source tree was not found"
    return found


def _run_time_nodes(node: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:`, which only the type checker imports."""
    found: list[ast.AST] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING"):
            found += [n for other in child.orelse for n in (other, *_run_time_nodes(other))]
            continue
        found += [child, *_run_time_nodes(child)]
    return found


def imports_of(path: Path, *, run_time_only: bool = False) -> set[str]:
    """Modules a file imports; `run_time_only` leaves out the ones for type checking only."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = _run_time_nodes(tree) if run_time_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def under(name: str, *roots: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def test_prompts_and_inference_never_import_the_server_or_each_other() -> None:
    offenders = [
        (name, imported)
        for name, path in modules().items()
        for imported in imports_of(path)
        if (under(name, "prompts") and under(imported, "lsp_server", "inference"))
        or (under(name, "inference") and under(imported, "lsp_server", "prompts"))
    ]
    assert offenders == []


def test_only_the_edge_speaks_the_protocol() -> None:
    speaking = {
        name
        for name, path in modules().items()
        if under(name, "lsp_server") and any(under(i, *PROTOCOL) for i in imports_of(path))
    }
    assert speaking, "the edge imports pygls; the check must see it"
    assert {name for name in speaking if not under(name, *EDGE)} == set()


def test_the_server_package_has_no_import_cycle() -> None:
    found = modules()
    graph = {
        name: {
            target
            for imported in imports_of(path, run_time_only=True)
            for target in (imported, imported.rsplit(".", 1)[0])
            if target in found and target != name and under(target, "lsp_server")
        }
        for name, path in found.items()
        if under(name, "lsp_server")
    }
    # A package imports its own __init__ first; that edge is Python's, not ours.
    for name, targets in graph.items():
        targets -= {p for p in targets if under(name, p)}

    def cycle_from(start: str, node: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        for target in graph.get(node, ()):
            if target == start:
                return (*seen, target)
            if target not in seen:
                found_cycle = cycle_from(start, target, (*seen, target))
                if found_cycle:
                    return found_cycle
        return None

    cycles = [c for name in graph if (c := cycle_from(name, name, (name,)))]
    assert cycles == []


def test_no_module_is_longer_than_a_reader_can_hold() -> None:
    long = {
        name: lines
        for name, path in modules().items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
